r"""Exercise cells in notebooks: finding them, taking the graded function's source out, and releasing
student versions of teacher notebooks.

An exercise cell is a code cell that names its exercise in any of three ways (the first found wins):

* cell metadata ``{"bpttlab": {"exercise": "grad-W"}}`` (what ``bpttlab release`` writes);
* a tag ``exercise:grad-W``;
* a first line ``%%bptt exercise grad-W`` (the magic that grades the cell in the notebook).

The batch grader runs only the *definitions* of an exercise cell: its imports, ``def`` and ``class``
statements, assignments of literal constants and assignments to the graded name. Other top-level
statements (calls, prints, loops, anything that patches a module) are blanked out, keeping line numbers,
so a cell's side effects cannot reach the grading of its function. The definitions of the code cells
above an exercise cell run first (:func:`definitions`), so helpers defined there are available.

A teacher notebook marks solutions between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines (any case;
``<!-- BEGIN SOLUTION -->`` in Markdown); :func:`release` replaces each region by a stub, refuses an
exercise cell without markers, and drops outputs, attachments and metadata a student does not need.
"""
from __future__ import annotations

import ast
import copy
import re

MAGIC = re.compile(r"^\s*%%bptt\s+exercise\s+(\S+)")
TAG = "exercise:"
BEGIN = re.compile(r"^(?P<indent>\s*)(?:#+|<!--)?\s*BEGIN SOLUTION\b", re.IGNORECASE)
END = re.compile(r"^\s*(?:#+|<!--)?\s*END SOLUTION\b", re.IGNORECASE)
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = ("YOUR ANSWER HERE",)
#: The notebook metadata a released notebook keeps (which kernel, which language); the rest (saved widget
#: state, the teacher's tool settings) is dropped.
NOTEBOOK_METADATA = ("kernelspec", "language_info")
#: The cell metadata a released notebook keeps: what grading and nbgrader read, and cell locks.
CELL_METADATA = ("bpttlab", "deletable", "editable", "nbgrader", "tags")


class SourceError(ValueError):
    """An exercise cell's source cannot be graded; ``status`` is the gradebook code."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def cell_exercise(cell) -> str | None:
    """The exercise id a cell belongs to, or None."""
    if cell.get("cell_type") != "code":
        return None
    meta = cell.get("metadata", {}).get("bpttlab", {})
    if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
        return meta["exercise"]
    for tag in cell.get("metadata", {}).get("tags", []) or []:
        if isinstance(tag, str) and tag.startswith(TAG):
            return tag[len(TAG):]
    match = MAGIC.match(_source(cell).split("\n", 1)[0])
    return match.group(1) if match else None


def exercise_cells(nb) -> dict[str, list[int]]:
    """Exercise id -> the indices of the cells that carry it, in notebook order."""
    found: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        ex = cell_exercise(cell)
        if ex is not None:
            found.setdefault(ex, []).append(index)
    return found


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def python_source(cell_source: str) -> str:
    """The cell as plain Python: a leading ``%%bptt`` line made a comment (so that line numbers stay those of
    the cell), other IPython syntax translated."""
    lines = cell_source.split("\n")
    if lines and MAGIC.match(lines[0]):
        lines[0] = "#"
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell("\n".join(lines))


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise SourceError("syntax-error", f"the cell has a syntax error on line {exc.lineno}: {exc.msg}") from None


def defines(cell_source: str, name: str) -> bool:
    """Whether the cell defines ``name`` at top level (a def, or an assignment to it)."""
    try:
        tree = _parse(python_source(cell_source))
    except SourceError:
        return False
    return any(_binds(node, name) for node in tree.body)


def _binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def _is_definition(node: ast.stmt, name: str | None) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if name is not None and _binds(node, name):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        try:
            ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return True
    return False


def function_source(cell_source: str, name: str) -> str:
    """The definitions of an exercise cell, with every other top-level statement blanked out.

    Raises:
        SourceError: the cell has a syntax error ("syntax-error") or does not define ``name``
            ("no-function").
    """
    source = python_source(cell_source)
    tree = _parse(source)
    if not any(_binds(node, name) for node in tree.body):
        raise SourceError("no-function", f"the cell does not define a function named {name}")
    return _keep_definitions(source, tree, name)


def definitions(cell_source: str) -> str:
    """The definitions of any code cell (imports, ``def``, ``class``, literal constants), other top-level
    statements blanked; "" for a cell that is not valid Python. The batch grader runs those of the cells
    before an exercise cell first, so the exercise's function can use the helpers they define."""
    try:
        source = python_source(cell_source)
        return _keep_definitions(source, _parse(source), None)
    except (SourceError, ValueError):
        return ""


def _keep_definitions(source: str, tree: ast.Module, name: str | None) -> str:
    kept = [node for node in tree.body if _is_definition(node, name)]
    dropped = [node for node in tree.body if not _is_definition(node, name)]
    kept_lines = {n for node in kept for n in _span(node)}
    if any(n in kept_lines for node in dropped for n in _span(node)):  # statements sharing a line (";")
        return ast.unparse(ast.Module(body=kept, type_ignores=[]))
    lines = source.split("\n")
    for node in dropped:
        for n in _span(node):
            lines[n - 1] = ""
    return "\n".join(lines)


def _span(node: ast.stmt) -> range:
    """The lines of a top-level statement, decorators included (1-based)."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return range(first, node.end_lineno + 1)


# -- release ------------------------------------------------------------------------------------------


def strip_solutions(source: str, stub: tuple[str, ...], where: str) -> tuple[str, bool]:
    """Replace each BEGIN SOLUTION .. END SOLUTION region (markers included) by ``stub``.

    Returns:
        (new source, whether a region was found).

    Raises:
        ValueError: unbalanced or nested markers, naming ``where``.
    """
    out: list[str] = []
    inside = False
    found = False
    for lineno, line in enumerate(source.split("\n"), 1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise ValueError(f"{where}: BEGIN SOLUTION on line {lineno} inside another solution")
            inside = found = True
            out.extend(begin.group("indent") + s for s in stub)
        elif end:
            if not inside:
                raise ValueError(f"{where}: END SOLUTION on line {lineno} without a BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION without an END SOLUTION")
    return "\n".join(out), found


def release(nb, known_ids=None, name: str = "notebook"):
    """The student version of a teacher notebook (a new notebook; the input is not changed).

    Solutions are replaced by stubs and exercise cells are tagged with their id in metadata. Nothing else
    that could carry an answer goes out: every output, execution count and attachment is dropped, and of
    the metadata only :data:`NOTEBOOK_METADATA` and :data:`CELL_METADATA` are kept (saved widget state,
    for one, holds the values the teacher's run displayed).

    Args:
        nb: the teacher notebook (nbformat v4).
        known_ids: exercise ids that exist; an exercise cell naming another id is an error.
        name: the notebook's name, for messages.

    Raises:
        ValueError: an exercise cell without solution markers (it would be released with its answer),
            unbalanced solution markers, or an unknown exercise id; the message names the notebook and the
            cell (1-based).
    """
    import nbformat

    out = copy.deepcopy(nb)
    out.metadata = nbformat.NotebookNode({k: v for k, v in out.metadata.items() if k in NOTEBOOK_METADATA})
    for index, cell in enumerate(out.cells, 1):
        where = f"{name}, cell {index}"
        ex = cell_exercise(cell)
        if ex is not None and known_ids is not None and ex not in known_ids:
            raise ValueError(f"{where}: unknown exercise {ex!r}; known: {', '.join(sorted(known_ids))}")
        stub = CODE_STUB if cell.cell_type == "code" else MARKDOWN_STUB
        source, stripped = strip_solutions(_source(cell), stub, where)
        if ex is not None and not stripped:
            raise ValueError(f"{where}: exercise cell {ex!r} has no solution markers (### BEGIN SOLUTION and "
                             "### END SOLUTION around the answer); it would be released with its answer")
        cell.source = source
        cell.metadata = nbformat.NotebookNode({k: v for k, v in cell.metadata.items() if k in CELL_METADATA})
        cell.pop("attachments", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if ex is not None:
            cell.metadata.setdefault("bpttlab", {})["exercise"] = ex
    nbformat.validate(out)
    return out
