"""Claims: the sentences of a chapter that a cell checks.

A chapter that says "the clipped step lands higher than the plain one" computes both numbers in the cell
beside that sentence and states the comparison with :func:`claim`. The claim prints one line with a tick,
so the reader sees what was checked, and raises :class:`ClaimFailed` when the comparison is false, so a
change of numbers (another seed, another constant, another engine) fails the notebook tests instead of
leaving a wrong sentence behind.

>>> claim("2 + 2 = 4", 2 + 2 == 4)
✔ 2 + 2 = 4
"""
from __future__ import annotations

import numpy as np

TICK = "✔"


class ClaimFailed(AssertionError):
    """A sentence of the course is contradicted by the numbers computed beside it."""


def claim(statement: str, holds) -> None:
    """Print ``✔ statement`` when ``holds`` is true; raise :class:`ClaimFailed` naming it when false.

    Args:
        statement: the sentence of the prose, as the reader should see it checked (values may be
            formatted into it).
        holds: the comparison that makes the sentence true: a Python or NumPy boolean (a NumPy array must
            be reduced first, with ``.all()`` or ``.any()``, so that the claim says which it means).

    Raises:
        TypeError: ``statement`` is not a non-empty string, or ``holds`` is not a single boolean.
        ClaimFailed: ``holds`` is false.
    """
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError(f"statement must be a non-empty string, got {statement!r}")
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"holds must be a single boolean (reduce an array with .all() or .any()), "
                        f"got {type(holds).__name__}")
    if not holds:
        raise ClaimFailed(f"this claim of the text is false for the numbers computed here: {statement}")
    print(f"{TICK} {statement}")
