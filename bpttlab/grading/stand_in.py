"""Watching a graded function for use of bpttlab itself, at run time (standard library only).

A graded function must compute its answer; returning what ``bl.bptt`` (or any other part of the
library) computes is not an answer. Two watches run while the function is called, one call at a time
(:func:`watched`):

* a profile hook (``sys.setprofile``, and ``threading.setprofile`` for threads it starts) notes every
  Python frame that starts in a file of the bpttlab package: ``bl.bptt``, ``bl.contributions``, an
  internal module, the ``%bptt`` magics reached through ``get_ipython()``, whatever the route;
* in the batch grader's sandbox child, which never imports bpttlab, :func:`install` puts a stand-in
  ``bpttlab`` package first on ``sys.meta_path`` and in ``sys.modules``: notebooks can still run
  ``import bpttlab as bl`` in their definitions, but anything of it the function touches while it runs
  is recorded, and calling it raises :class:`LibraryUsed`.

After the call, if anything was noted (or the function switched the profile hook off), the call raises
:class:`LibraryUsed`; the grader (:mod:`bpttlab.grading.library_use`) turns that into the diagnosis
"uses the library's gradient" and a score of 0. This file is loaded by path in the sandbox child, so it
must import nothing from bpttlab.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
import types
from typing import Any, Callable

#: The package whose use is watched.
LIBRARY = "bpttlab"
#: The package's folder: a frame whose code lives under it is the library's. None when this file is not
#: bpttlab/grading/stand_in.py (a sandbox may run a copy of it elsewhere): then only the stand-in watches.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if os.path.basename(PACKAGE_DIR) != LIBRARY:
    PACKAGE_DIR = None
#: The start of the error message a flagged call produces (``describe_exception`` writes the type first).
MARKER = "LibraryUsed"

_noted: list[str] = []
_running = False


class LibraryUsed(Exception):
    """A graded function used bpttlab; the message says what it used."""


def _note(what: str) -> None:
    if _running and what not in _noted:
        _noted.append(what)


# -- the profile hook -------------------------------------------------------------------------------


def _library_code(filename: str, cache: dict[str, bool]) -> bool:
    found = cache.get(filename)
    if found is None:
        path = os.path.realpath(filename)
        found = cache[filename] = (PACKAGE_DIR is not None and path.startswith(PACKAGE_DIR + os.sep)
                                   and path != os.path.realpath(__file__))
    return found


def _profile_hook() -> Callable:
    cache: dict[str, bool] = {}

    def hook(frame, event: str, arg: Any) -> None:
        if event == "call" and _library_code(frame.f_code.co_filename, cache):
            module = frame.f_globals.get("__name__", LIBRARY)
            _note(f"{module}.{frame.f_code.co_name}" if frame.f_code.co_name != "<module>" else f"import {module}")

    return hook


def watched(fn: Callable) -> Callable:
    """``fn`` wrapped so that a call raises :class:`LibraryUsed` when it used bpttlab (see the module)."""

    def graded_call(*args, **kwargs):
        global _running
        hook = _profile_hook()
        _noted.clear()
        previous, previous_threads = sys.getprofile(), threading.getprofile()
        _running = True
        sys.setprofile(hook)
        threading.setprofile(hook)
        try:
            value = fn(*args, **kwargs)
        finally:
            switched_off = sys.getprofile() is not hook
            sys.setprofile(previous)
            threading.setprofile(previous_threads)
            _running = False
        if switched_off:
            _noted.append("sys.setprofile (it switched off the grader's watch)")
        if _noted:
            raise LibraryUsed(f"the function used {', '.join(_noted)} while it was graded")
        return value

    return graded_call


# -- the stand-in package (sandbox child) -----------------------------------------------------------


class _Attribute:
    """Anything reached through the stand-in: recorded when touched during a graded call; calling it
    raises, since the library is not there."""

    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name: str) -> "_Attribute":
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        _note(f"{self._path}.{name}")
        return _Attribute(f"{self._path}.{name}")

    def __call__(self, *args, **kwargs):
        _note(self._path)
        raise LibraryUsed(f"{self._path} is not available to a graded function")


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> _Attribute:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        _note(f"{self.__name__}.{name}")
        return _Attribute(f"{self.__name__}.{name}")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every import of bpttlab or one of its modules with a stand-in module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == LIBRARY or fullname.startswith(LIBRARY + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        _note(f"import {spec.name}")
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        return None


def install() -> None:
    """Put the stand-in first on ``sys.meta_path`` and drop any real bpttlab from ``sys.modules``."""
    for name in [n for n in sys.modules if n == LIBRARY or n.startswith(LIBRARY + ".")]:
        del sys.modules[name]
    sys.meta_path.insert(0, _StandInFinder())
