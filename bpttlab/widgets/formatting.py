"""Numbers as short, deterministic text and HTML, for the drawings, the panels and the text reprs.

Every number is printed with a fixed number of significant digits, and a negative zero prints as 0, so the
same pass always gives the same text (nbval compares it).

>>> number(-0.0), number(3.14159), number(float("inf"))
('0', '3.142', 'inf')
>>> compact(np.array([0.5, -1.25]))
'[0.5, -1.25]'
"""
from __future__ import annotations

import html

import numpy as np

DIGITS = 4


def number(x: float, digits: int = DIGITS) -> str:
    """One number with ``digits`` significant digits; "-0" becomes "0"."""
    x = float(x)
    if not np.isfinite(x):
        return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    s = f"{x:.{digits}g}"
    return "0" if float(s) == 0.0 else s


def compact(a, digits: int = 3, max_len: int = 2) -> str:
    """A label short enough for a node of the drawing: the value, or its norm when it is long.

    Scalars and vectors of up to ``max_len`` entries are written out; anything larger as ``|.|=norm``.
    """
    arr = np.asarray(a, dtype=float)
    if arr.size == 1:
        return number(arr.reshape(()), digits)
    if arr.ndim == 1 and arr.size <= max_len:
        return "[" + ", ".join(number(v, digits) for v in arr) + "]"
    return f"|.|={number(np.sqrt(np.sum(arr * arr)), digits)}"


def text(a, digits: int = DIGITS) -> str:
    """A scalar, vector or matrix as plain text: ``0.5``, ``[0.5, 1]``, ``[[1, 0], [0, 1]]``."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 0:
        return number(arr, digits)
    return "[" + ", ".join(text(row, digits) for row in arr) + "]"


def array_html(a, digits: int = DIGITS) -> str:
    """A scalar, vector (one row) or matrix as a small HTML table of right-aligned numbers."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 0:
        return f"<code>{number(arr, digits)}</code>"
    rows = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)
    body = "".join("<tr>" + "".join(f'<td style="text-align:right;padding:0 4px">{number(v, digits)}</td>'
                                    for v in row) + "</tr>" for row in rows)
    return f'<table class="bpttlab-array" style="display:inline-table;border-collapse:collapse">{body}</table>'


def escape(s: str) -> str:
    """HTML-escape a string (quotes included)."""
    return html.escape(s, quote=True)
