"""argparse types shared by the ``%bptt`` magics and the ``bpttlab`` command.

Each converts one command-line word or raises :class:`argparse.ArgumentTypeError` with what was expected,
which argparse reports as ``argument --x: expected ..., got '...'``.
"""
from __future__ import annotations

import argparse
import keyword

from . import validation


def _integer(text: str, lowest: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = lowest - 1
    if value < lowest:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (sizes, T, k1, k2, epochs)."""
    return _integer(text, 1, "a positive integer")


def seed(text: str) -> int:
    """An integer >= 0 (NumPy seeds)."""
    return _integer(text, 0, "a non-negative integer")


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, tolerances)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def identifier(text: str) -> str:
    """A Python variable name."""
    if not text.isidentifier() or keyword.iskeyword(text):
        raise argparse.ArgumentTypeError(f"expected a Python variable name, got {text!r}")
    return text


def _positive_ints(text: str, names: str, count: str) -> tuple[int, ...]:
    """``text`` as comma-separated positive integers, one per letter of ``names``."""
    try:
        values = tuple(int(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) != len(names) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected {','.join(names)}: {count} positive integers, got {text!r}")
    return values


def sizes(text: str) -> tuple[int, int, int]:
    """``D,H,O``: three positive integers."""
    return _positive_ints(text, "DHO", "three")


def bench_size(text: str) -> tuple[int, int, int, int, int]:
    """``D,H,O,T,B``: five positive integers (a size of ``bpttlab bench``)."""
    return _positive_ints(text, "DHOTB", "five")


def clip(text: str) -> tuple[str, float]:
    """``MODE:TAU`` -> (mode, tau) for :func:`bpttlab.bptt`'s ``clip``."""
    mode, _, tau = text.partition(":")
    try:
        return validation.clip((mode, float(tau)))
    except ValueError:
        modes = "|".join(validation.CLIP_MODES)
        message = f"expected MODE:TAU with MODE {modes} and TAU > 0, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
