"""bpttlab: learn Backpropagation Through Time by deriving it, computing it and checking one against the other.

>>> import bpttlab as bl
>>> net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=0)
"""
from __future__ import annotations

from . import registry
from .engine import BPTTResult, Trace, bptt, contributions, forward
from .gradcheck import gradcheck
from .grading import grade
from .network import Network, make
from .paths import bptt_all_paths
from .training import train

__version__ = "0.1.0"

__all__ = ["BPTTResult", "Network", "Trace", "bptt", "bptt_all_paths", "contributions", "forward", "grade",
           "gradcheck", "make", "registry", "train"]


def load_ipython_extension(ip) -> None:
    """``%load_ext bpttlab``: register the ``%bptt`` / ``%%bptt`` magics (see :mod:`bpttlab.magics`)."""
    from .magics import BPTTMagics

    ip.register_magics(BPTTMagics)
