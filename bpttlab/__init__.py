"""bpttlab: learn Backpropagation Through Time by deriving it, computing it and checking one against the other.

>>> import bpttlab as bl
>>> net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=0)
"""
from __future__ import annotations

import importlib
import sys
import types

from . import registry
from .claims import claim
from .engine import BPTTResult, Trace, bptt, contributions, forward
from .gradcheck import gradcheck
from .network import Network, make
from .paths import bptt_all_paths
from .training import train

__version__ = "0.1.0"

__all__ = ["BPTTResult", "Network", "Trace", "bptt", "bptt_all_paths", "check", "claim", "contributions",
           "derive", "forward", "grade", "gradcheck", "make", "registry", "train"]


#: attribute -> module, imported on first use so that ``import bpttlab`` (and so the BPTT Lab kernel's
#: start) loads neither the symbolic derivations nor the grader nor ipywidgets.
_LAZY = {"check": "check", "derive": "symbolic", "grade": "grading", "widgets": None, "flow": None}


def __getattr__(name: str):
    """``bl.check``, ``bl.derive``, ``bl.grade``, ``bl.widgets`` and ``bl.flow`` on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name] or name}")
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The package module, which keeps ``bl.check`` the function when the submodule ``bpttlab.check`` is
    imported (the import system binds a submodule to its parent's attribute of the same name)."""

    def __setattr__(self, name: str, value) -> None:
        if name == "check" and isinstance(value, types.ModuleType):
            value = value.check
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def load_ipython_extension(ip) -> None:
    """``%load_ext bpttlab``: register the ``%bptt`` / ``%%bptt`` magics (see :mod:`bpttlab.magics`)."""
    from .magics import BPTTMagics

    ip.register_magics(BPTTMagics)
