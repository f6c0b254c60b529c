"""The numeric core of bpttlab: forward pass, BPTT and its per-timestep decomposition, the all-paths
algorithm, TBPTT training, checkpointing, gradient flow and the finite-difference check.

Modules, each importing only the ones listed before it:

* :mod:`.results`: :class:`Trace` and :class:`BPTTResult`, what the engine hands back;
* :mod:`.compilation`: when a cell's compiled kernels may be used, and compiling them in the background;
* :mod:`.tiers`: the per-copy tier (any cell, from its step and vjp) and the compiled tier, one interface:
  forward, a backward window, truncation, the per-loss chains;
* :mod:`.passes`: one validated pass and the backward operations the public functions are built from;
* :mod:`.checkpoint`: checkpointed BPTT; :mod:`.core`: :func:`forward`, :func:`bptt`, :func:`contributions`;
* :mod:`.paths`, :mod:`.training`, :mod:`.flow`, :mod:`.finite_differences`: the algorithms built on them.
"""
from .core import bptt, contribution_tables, contributions, forward
from .finite_differences import GradCheck, gradcheck, total_loss
from .paths import bptt_all_paths
from .results import BPTTResult, Trace
from .training import History, train


def warm(cell) -> float:
    """Compile (or load from the Numba cache) the compiled kernels of a cell (a registered name or a Cell)
    now, waiting for them; returns the seconds it took (0 for a cell without kernels, or one already
    compiled in this process). The engine never needs this: it is for images, CI and benchmarks."""
    from .. import registry
    from .tiers import warm as warm_cell

    return warm_cell(cell if not isinstance(cell, str) else registry.cells.get(cell, "cell"))

__all__ = ["BPTTResult", "GradCheck", "History", "Trace", "bptt", "bptt_all_paths", "contribution_tables",
           "contributions", "forward", "gradcheck", "total_loss", "train", "warm"]
