"""Warm the Numba cache: load every compiled kernel of the built-in cells before the student needs it.

A ``@njit(cache=True)`` kernel is loaded from its on-disk cache on its first call in a process (compiled,
the first time ever). :func:`warm_up` makes those first calls on a tiny problem: full BPTT with each
built-in loss (the fused kernels differ by target type), truncated BPTT, the per-loss chains behind
``by_loss`` and :func:`~bpttlab.contributions`, and a TBPTT update.

The kernel runs it in two phases (:func:`start_warm_up`): first what a first ``%bptt grad`` on an Elman
network needs (most of it is Numba's own one-off set-up), then, after a pause that leaves the
interpreter to a cell run straight away, everything else.
"""
from __future__ import annotations

import threading
import time

import numpy as np

#: the cell a first gradient most likely uses, warmed in the first phase
FIRST = "elman"
#: seconds between the two phases, so that a cell run at once does not share the interpreter with phase 2
PAUSE = 2.0


def _builtin_cells() -> list[str]:
    import bpttlab as bl

    return [name for name, cell in bl.registry.cells.items() if type(cell).__module__.startswith("bpttlab.")]


def warm_first_gradient() -> float:
    """Load what ``%bptt grad`` needs for a small Elman network (full BPTT, mse, the per-step table).

    Returns:
        the seconds it took.
    """
    import bpttlab as bl
    from bpttlab.reports import gradient_report

    start = time.perf_counter()
    net = bl.make(FIRST, n_in=1, n_hidden=2, n_out=2, seed=0)
    gradient_report(net, np.linspace(-1.0, 1.0, 3).reshape(3, 1), np.zeros((3, 2)))
    return time.perf_counter() - start


def warm_up(cells: list[str] | None = None) -> dict[str, float]:
    """Run each built-in cell (or the given ones) once through every engine path.

    Returns:
        cell name -> seconds it took (loading from the cache, or compiling when there is none).
    """
    import bpttlab as bl

    xs = np.linspace(-1.0, 1.0, 3).reshape(3, 1)
    mse_targets = np.zeros((3, 2))
    classes = np.array([0, 1, 0])
    seconds = {}
    for name in _builtin_cells() if cells is None else cells:
        start = time.perf_counter()
        net = bl.make(name, n_in=1, n_hidden=2, n_out=2, seed=0)
        bl.bptt(net, xs, mse_targets)
        bl.bptt(net, xs, classes, loss="cross_entropy")
        res = bl.bptt(net, xs, mse_targets, k2=2)
        res.by_loss  # noqa: B018 - the per-loss chain kernels
        bl.contributions(net, xs, mse_targets, "V")
        bl.train(net, xs, mse_targets, k1=2, k2=3, lr=1e-3, progress=False)
        seconds[name] = time.perf_counter() - start
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
