"""bpttlab: learn Backpropagation Through Time by deriving it, computing it and checking one against the other.

>>> import bpttlab as bl
>>> net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=0)
"""
from __future__ import annotations

import importlib

from . import registry
from .claims import claim
from .engine import BPTTResult, Trace, bptt, bptt_all_paths, contributions, forward, gradcheck, train
from .network import Network, make

__version__ = "0.1.0"

__all__ = ["BPTTResult", "Network", "Trace", "bptt", "bptt_all_paths", "check", "claim", "contributions",
           "derive", "forward", "grade", "gradcheck", "make", "registry", "train"]


#: attribute -> module, imported on first use so that ``import bpttlab`` (and so the BPTT Lab kernel's
#: start) loads neither the symbolic derivations nor the grader nor ipywidgets.
_LAZY = {"check": ("agreement", "check"), "derive": ("symbolic", "derive"), "grade": ("grading", "grade"),
         "widgets": ("widgets", None), "flow": ("engine.flow", None)}


def __getattr__(name: str):
    """``bl.check``, ``bl.derive``, ``bl.grade``, ``bl.widgets`` and ``bl.flow`` on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def load_ipython_extension(ip) -> None:
    """``%load_ext bpttlab``: register the ``%bptt`` / ``%%bptt`` magics (see :mod:`bpttlab.magics`)."""
    from .magics import BPTTMagics

    ip.register_magics(BPTTMagics)
