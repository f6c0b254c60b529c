"""Heavy dependencies imported on first use, so that ``import bpttlab`` and a first gradient on the
NumPy tier load neither SymPy nor Numba (each cost about half a second)."""
from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands for a module and imports it when an attribute is first read: ``sp = LazyModule("sympy")``
    at the top of a module, then ``sp.tanh(a)`` inside a function imports SymPy on that call. Every read
    goes through :func:`importlib.import_module` (a dictionary look-up once imported), so keep it off
    hot paths."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def module(self) -> ModuleType:
        """The module itself (imported now if it was not)."""
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str):
        return getattr(self.module(), attribute)

    def __repr__(self) -> str:
        return f"<LazyModule {self._name!r}>"
