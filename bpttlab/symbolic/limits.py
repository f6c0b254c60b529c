r"""How large a derivation can be, per cell: a clear error instead of a derivation that never ends.

A term :math:`C[t][k]` is a chain of :math:`t - k` step Jacobians, each an :math:`S \times S` matrix of
expressions (S the state size), so the expressions of :math:`\partial E_t/\partial\theta` grow with t
and, in vector mode, with the sizes. The limits below are where a derivation (with its LaTeX and its
check against the engine) still takes seconds on a laptop; they were measured, see BENCHMARKS.md.

==========  =============  =====================  ======================
cell        scalar: t <=   vector: D, H, O <=     vector: t <=
==========  =============  =====================  ======================
elman       12             3                      6
jordan      12             2                      6
gru         8              2                      4
lstm        8              2                      4
plugins     6              2                      4
==========  =============  =====================  ======================
"""
from __future__ import annotations

from typing import NamedTuple

from ..cells.base import Cell
from .names import Sizes


class Limit(NamedTuple):
    """The largest derivation of one cell: t in scalar mode, each of D, H, O and t in vector mode."""

    scalar_t: int
    vector_size: int
    vector_t: int


#: cell name -> its :class:`Limit`; cells not listed (plugins) get :data:`DEFAULT`.
LIMITS: dict[str, Limit] = {
    "elman": Limit(12, 3, 6),
    "jordan": Limit(12, 2, 6),
    "gru": Limit(8, 2, 4),
    "lstm": Limit(8, 2, 4),
}
DEFAULT = Limit(6, 2, 4)


def limit(cell: Cell) -> Limit:
    """The :class:`Limit` of ``cell`` (by its registry name)."""
    return LIMITS.get(cell.name, DEFAULT)


def check(cell: Cell, sizes: Sizes, t: int, what: str = "derive") -> None:
    """Raise unless a symbolic derivation of ``cell`` at ``sizes`` up to loss ``t`` is within its limit.

    Args:
        cell: the cell.
        sizes: (D, H, O).
        t: the latest loss E_t the derivation needs (the sequence length for a whole check).
        what: the caller, named in the message ("derive", "check").

    Raises:
        ValueError: the size or t is too large; the message gives the largest that works.
    """
    lim = limit(cell)
    if sizes.scalar:
        if t > lim.scalar_t:
            raise ValueError(f"{what}: t={t} is beyond what a symbolic derivation of the {cell.name} cell "
                             f"serves in scalar mode; the largest is t={lim.scalar_t} (use t <= "
                             f"{lim.scalar_t}, or bl.contributions for the numbers of a longer sequence)")
        return
    dims = (sizes.D, sizes.H, sizes.O)
    if max(dims) > lim.vector_size:
        largest = tuple(min(n, lim.vector_size) for n in dims)
        raise ValueError(f"{what}: size={dims} is beyond what a symbolic derivation of the {cell.name} cell "
                         f"serves; the largest is {lim.vector_size} per dimension (D, H, O <= "
                         f"{lim.vector_size}), e.g. size={largest}")
    if t > lim.vector_t:
        raise ValueError(f"{what}: t={t} is beyond what a symbolic derivation of the {cell.name} cell "
                         f"serves at size={dims}; the largest is t={lim.vector_t} (or use size='scalar', "
                         f"up to t={lim.scalar_t})")
