"""The gradebook (``gradebook.csv`` and ``gradebook.json``) and the student names it is keyed by.

Everything in it may come from a student (a file name, an exception message quoted in a diagnosis), so
every text field is cleaned before it is written:

* no control characters: a newline, carriage return, tab or other control character (and Unicode's line
  and paragraph separators) becomes a space, so that every line of the CSV file is one row for any tool;
* no formulas: a field starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
  apostrophe, as OWASP advises against CSV injection (a spreadsheet then shows it as text).

Student names come from file names (:func:`student_names`): characters other than letters, digits,
``.``, ``_`` and ``-`` become ``_``, and two files whose names clean to the same student are told apart
by a suffix.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Iterable

from .files import write_atomic

FIELDS = ("student", "exercise", "score", "max_score", "diagnosis", "detail")
#: The longest student name kept from a file name.
MAX_NAME = 100

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NOT_NAME = re.compile(r"[^\w.-]")


def clean_field(text: str) -> str:
    """``text`` as a safe gradebook field: control characters replaced by spaces, a leading formula
    character neutralised with an apostrophe."""
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return _CONTROL.sub(" ", text)


def clean_name(file_name: str) -> str:
    """The student name of a notebook's file name (``.ipynb`` dropped, unsafe characters replaced)."""
    stem = file_name[:-len(".ipynb")] if file_name.endswith(".ipynb") else file_name
    name = _NOT_NAME.sub("_", stem).lstrip(".-")[:MAX_NAME]
    return name or "_"


def student_names(paths: Iterable[Path]) -> dict[Path, str]:
    """Each submission's student name, unique within the run (``name``, ``name-2``, ...).

    Raises:
        ValueError: two submissions have the same file name (one student twice).
    """
    names: dict[Path, str] = {}
    by_file: dict[str, Path] = {}
    taken: set[str] = set()
    for path in paths:
        other = by_file.setdefault(path.name, path)
        if other != path:
            raise ValueError(f"two submissions belong to student {clean_name(path.name)!r}: {other} and {path}; "
                             "name each student's notebook differently")
        base = name = clean_name(path.name)
        n = 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        names[path] = name
    return names


def gradebook_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (student, exercise), sorted by student, exercises in grading order, text cleaned."""
    rows = []
    for record in sorted(records, key=lambda r: r["student"]):
        for ex in record["exercises"]:
            rows.append({"student": clean_field(record["student"]), "exercise": clean_field(ex["exercise"]),
                         "score": ex["score"], "max_score": ex["max_score"],
                         "diagnosis": clean_field(str(ex["diagnosis"])), "detail": clean_field(str(ex["detail"]))})
    return rows


def write_gradebook(out: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite ``out/gradebook.csv`` and ``out/gradebook.json`` from the results (each atomically)."""
    rows = gradebook_rows(records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "gradebook.csv", buffer.getvalue())
    write_atomic(out / "gradebook.json", json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
