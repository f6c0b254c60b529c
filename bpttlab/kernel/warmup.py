"""Get the compiled tier ready in the BPTT Lab kernel, in the background, while the student starts.

A ``@njit(cache=True)`` kernel is loaded from its on-disk cache on its first call in a process (compiled,
the first time ever). Nothing waits for it: until a cell's kernels are ready the engine runs that cell on
the per-copy NumPy tier (:mod:`bpttlab.engine.compilation`). :func:`warm_up` makes the first calls of
every kernel on a tiny problem (:func:`bpttlab.engine.warm`), which ``bpttlab warm`` also runs, at
image-build time, to fill the cache.

The kernel runs it in two phases (:func:`start_warm_up`): first the Elman cell, the one a first
``%bptt grad`` most likely uses (most of that time is Numba's own one-off set-up), then, after a pause
that leaves the interpreter to a cell run straight away, the other cells.
"""
from __future__ import annotations

import threading
import time


#: the cell a first gradient most likely uses, warmed in the first phase
FIRST = "elman"
#: seconds between the two phases, so that a cell run at once does not share the interpreter with phase 2
PAUSE = 2.0


def _builtin_cells() -> list[str]:
    import bpttlab as bl

    return [name for name, cell in bl.registry.cells.items() if type(cell).__module__.startswith("bpttlab.")]


def warm_first_gradient() -> float:
    """Compile (or load from the Numba cache) the kernels of the cell a first ``%bptt grad`` most likely
    uses. Until they are ready a gradient runs on the per-copy tier, so nothing waits for this.

    Returns:
        the seconds it took.
    """
    from bpttlab.engine import warm

    start = time.perf_counter()
    warm(FIRST)
    return time.perf_counter() - start


def warm_up(cells: list[str] | None = None) -> dict[str, float]:
    """Compile (or load) the kernels of each built-in cell, or of the given ones.

    Returns:
        cell name -> seconds it took (loading from the cache, or compiling when there is none).
    """
    from bpttlab.engine import warm

    seconds = {}
    for name in _builtin_cells() if cells is None else cells:
        seconds[name] = warm(name)
    return seconds


def start_warm_up(log=None, pause: float = PAUSE) -> threading.Thread:
    """:func:`warm_first_gradient`, then after ``pause`` seconds :func:`warm_up`, in a daemon thread; a
    failure is logged (to the kernel's log), never raised."""

    def run():
        try:
            first = warm_first_gradient()
            time.sleep(pause)
            seconds = warm_up()
        except Exception:  # the kernel must work without a warm cache
            if log is not None:
                log.warning("bpttlab: warming the Numba cache failed", exc_info=True)
            return
        if log is not None:
            log.info("bpttlab: Numba cache warm (first gradient %.2fs; %s)", first,
                     ", ".join(f"{k} {v:.2f}s" for k, v in seconds.items()))

    thread = threading.Thread(target=run, name="bpttlab-warm-up", daemon=True)
    thread.start()
    return thread
