"""The library is not the answer: finding a graded function that uses bpttlab to produce its answer.

The exercises ask for what the engine computes (``bl.bptt``'s gradient, ``bl.forward``'s states, ...), so
a function that calls the engine would pass every instance without the student writing anything. Such a
function is diagnosed as the mistake ``library_use`` ("uses the library's gradient") and scores 0, in
``%%bptt exercise`` and in the batch grader. Checking an answer against ``bl.bptt`` in another cell
stays allowed: only the graded function, and the helpers it calls, are looked at.

Two checks, each catching what the other can miss:

* static, before anything runs: the graded function and every helper it reaches (functions, classes and
  assignments of the notebook) must not name bpttlab. In the batch grader :func:`in_sources` reads the
  source (imports of ``bpttlab``, names bound to them, ``get_ipython``, ``__import__``, ``importlib``,
  strings that mention the package or a ``%bptt`` magic); in a notebook :func:`in_function` follows the
  live function's code objects, globals, closures and defaults, so ``from bpttlab import bptt as f`` or
  ``helper = bl.contributions`` are found whatever they are called;
* dynamic, while each call runs: :func:`bpttlab.grading.stand_in.watched` notes any frame of the bpttlab
  package (and, in the sandbox child, anything taken from the stand-in package), then makes the call
  fail with :data:`~bpttlab.grading.stand_in.MARKER`, which :func:`used_in_outcome` recognises.
"""
from __future__ import annotations

import ast
import re
import functools
import types
from typing import Any, Callable, Iterable

from .stand_in import LIBRARY, MARKER, watched

#: The catalogue key of the diagnosis.
MISTAKE = "library_use"
#: The rule, as the exercise prompts state it.
RULE = (f"Write this function yourself: a graded function that uses {LIBRARY} (bl.bptt, bl.contributions, "
        f"bl.forward, any other part of the library or a %bptt magic) to get its answer scores 0. Checking your "
        f"answer against bl.bptt in another cell is fine.")
#: Names whose only use in a gradient function is to reach the library another way.
INDIRECT = ("get_ipython", "__import__", "importlib")

__all__ = ["MISTAKE", "RULE", "in_function", "in_sources", "used_in_outcome", "watched"]


def _mentions_library(text: str) -> bool:
    return LIBRARY in text or "%bptt" in text or "%%bptt" in text


# -- static: source (batch grader) ------------------------------------------------------------------


def _library_import(node: ast.stmt) -> list[str]:
    """The names an import statement binds to bpttlab or a part of it."""
    if isinstance(node, ast.Import):
        return [(a.asname or a.name.split(".")[0]) for a in node.names
                if a.name == LIBRARY or a.name.startswith(LIBRARY + ".")]
    if isinstance(node, ast.ImportFrom) and node.module and (
            node.module == LIBRARY or node.module.startswith(LIBRARY + ".")):
        return [a.asname or a.name for a in node.names]
    return []


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    return []


def _dotted(node: ast.expr, parents: dict[ast.AST, ast.AST]) -> str:
    """``bl.engine.bptt`` for the Name ``bl`` at the root of that attribute chain."""
    parts = [node.id]
    while isinstance(parents.get(node), ast.Attribute):
        node = parents[node]
        parts.append(node.attr)
    return ".".join(parts)


def in_sources(sources: Iterable[str], function: str) -> list[str]:
    """What the graded function ``function`` uses of bpttlab, read from the notebook's source.

    Args:
        sources: the definitions of the cells the function can see, in notebook order, the exercise
            cell last (later definitions of a name win at run time; all of them are looked at).
        function: the graded function's name.

    Returns:
        one phrase per use, with its line ("bl.bptt (line 4)"); empty when there is none.
    """
    bindings: dict[str, list[ast.stmt]] = {}
    library: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            for name in _bound_names(node):
                bindings.setdefault(name, []).append(node)
            library.update(_library_import(node))
    found: list[str] = []
    todo, seen = [(function, node) for node in bindings.get(function, [])], set()
    while todo:
        name, node = todo.pop()  # a statement that binds ``name``
        if (name, id(node)) in seen:
            continue
        seen.add((name, id(node)))
        if isinstance(node, (ast.Import, ast.ImportFrom)):  # "import numpy as np, bpttlab" gives np innocently
            if name in _library_import(node):
                found.append(f"import of {LIBRARY} (line {node.lineno})")
            continue
        parents = {child: parent for parent in ast.walk(node) for child in ast.iter_child_nodes(parent)}
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)) and _library_import(sub):
                found.append(f"import of {LIBRARY} (line {sub.lineno})")
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and _mentions_library(sub.value):
                found.append(f"a string naming {LIBRARY} or a %bptt magic (line {sub.lineno})")
            elif isinstance(sub, ast.Name) and (sub.id in library or sub.id in INDIRECT):
                found.append(f"{_dotted(sub, parents)} (line {sub.lineno})")
            elif isinstance(sub, ast.Name) and sub.id in bindings:
                todo.extend((sub.id, bound) for bound in bindings[sub.id])
    return list(dict.fromkeys(found))


# -- static: a live function (notebook) -------------------------------------------------------------


def _from_library(obj: Any) -> bool:
    if isinstance(obj, types.ModuleType):
        name = obj.__name__
    elif isinstance(obj, type) or callable(obj):
        name = getattr(obj, "__module__", None) or type(obj).__module__
    else:
        return False
    return isinstance(name, str) and (name == LIBRARY or name.startswith(LIBRARY + "."))


def _codes(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def in_function(fn: Callable) -> list[str]:
    """What ``fn`` and the notebook helpers it reaches use of bpttlab, found from the live objects.

    A helper is a function or class defined in the same namespace as ``fn`` (the notebook), or a
    ``functools.partial`` of one; library functions (NumPy's) are not looked into.

    Returns:
        one phrase per use ("bl (the bpttlab module), used by grad_W"); empty when there is none.
    """
    home = getattr(fn, "__globals__", {}).get("__name__")  # the notebook's namespace (None: no Python function)
    found: list[str] = []
    todo: list[tuple[str, Any, str]] = [(getattr(fn, "__name__", "the function"), fn, "the notebook")]
    seen: set[int] = set()
    while todo:
        name, obj, user = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if _from_library(obj):
            what = "module" if isinstance(obj, types.ModuleType) else "function"
            found.append(f"{name} (the {LIBRARY} {what}), used by {user}")
            continue
        if isinstance(obj, functools.partial):
            todo.append((name, obj.func, user))
            todo.extend((name, arg, user) for arg in (*obj.args, *obj.keywords.values()))
        elif isinstance(obj, types.MethodType):
            todo.append((name, obj.__func__, user))
        elif isinstance(obj, type) and obj.__module__ == home:
            todo.extend((f"{obj.__name__}.{k}", v, name) for k, v in vars(obj).items())
        elif isinstance(obj, (classmethod, staticmethod)):
            todo.append((name, obj.__func__, user))
        elif isinstance(obj, types.FunctionType) and obj.__globals__.get("__name__") == home:
            refs, indirect = _references(obj)
            todo.extend(refs)
            found.extend(indirect)
        elif callable(obj) and type(obj).__module__ == home:  # an instance of a notebook class
            todo.append((type(obj).__name__, type(obj), name))
    return list(dict.fromkeys(found))


def _references(fn: types.FunctionType) -> tuple[list[tuple[str, Any, str]], list[str]]:
    """What a notebook function refers to (its globals, closure cells and defaults, to look at next), and
    its indirect routes to the library (get_ipython, __import__, importlib, a string naming it)."""
    refs: list[tuple[str, Any, str]] = []
    indirect: list[str] = []
    for code in _codes(fn.__code__):
        if any(isinstance(c, str) and _mentions_library(c) for c in code.co_consts):
            indirect.append(f"a string naming {LIBRARY} or a %bptt magic, in {fn.__name__}")
        for name in code.co_names:
            if name in INDIRECT:
                indirect.append(f"{name}, used by {fn.__name__}")
            elif name in fn.__globals__:
                refs.append((name, fn.__globals__[name], fn.__name__))
    cells = zip(fn.__code__.co_freevars, fn.__closure__ or ())
    refs.extend((name, cell.cell_contents, fn.__name__) for name, cell in cells if _filled(cell))
    refs.extend((f"a default of {fn.__name__}", v, fn.__name__) for v in (fn.__defaults__ or ()))
    return refs, indirect


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


# -- dynamic ----------------------------------------------------------------------------------------


def used_in_outcome(outcome: dict[str, Any]) -> str | None:
    """The message of a call that :func:`~bpttlab.grading.stand_in.watched` stopped, else None."""
    error = outcome.get("error")
    if isinstance(error, str) and error.startswith(MARKER + ":"):
        return re.sub(r" \(line \d+, in \w+\)$", "", error[len(MARKER) + 1:].strip())
    return None
