"""Get the compiled tier ready in the BPTT Lab kernel, in the background, while the student starts.

A ``@njit(cache=True)`` kernel is loaded from its on-disk cache on its first call in a process (compiled,
the first time ever). Nothing waits for it: until a cell's kernels are ready the engine runs that cell on
the per-copy NumPy tier (:mod:`bpttlab.engine.compilation`). :func:`warm_up` makes the first calls of
every kernel on a tiny problem (:func:`bpttlab.engine.warm`), which ``bpttlab warm`` also runs, at
image-build time, to fill the cache.

The kernel does it in three phases (:func:`start_warm_up`):

1. ``bpttlab warm`` in a child process at low priority (:func:`fill_cache`) compiles whatever the cache
   lacks. Compiling holds the interpreter that runs it most of the time, so in the kernel's own process it
   slowed the student's first cells (a cold start took 2.3 s to the first gradient); in a child it runs
   on another core. Meanwhile the kernel's background compilations are held
   (:func:`bpttlab.engine.compilation.hold`): cells run on the per-copy tier.
2. The kernel loads the Elman kernels from the cache, the cell a first ``%bptt grad`` most likely uses.
3. After a pause that leaves the interpreter to a cell run straight away, it loads the other cells.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time

from ..engine import compilation

#: the cell a first gradient most likely uses, loaded in the second phase
FIRST = "elman"
#: seconds between the last two phases, so that a cell run at once does not share the interpreter
PAUSE = 2.0
#: seconds after which the child of the first phase is given up (the kernel then compiles in-process)
FILL_TIMEOUT = 900.0


def _builtin_cells() -> list[str]:
    import bpttlab as bl

    return [name for name, cell in bl.registry.cells.items() if type(cell).__module__.startswith("bpttlab.")]


def fill_cache() -> subprocess.Popen:
    """Start ``bpttlab warm`` in a child process (:func:`fill_as_child`), which compiles into the Numba
    cache every built-in kernel it lacks."""
    code = f"import sys; from bpttlab.kernel.warmup import fill_as_child; sys.exit(fill_as_child({os.getpid()}))"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    atexit.register(lambda: child.poll() is None and child.kill())
    return child


def fill_as_child(parent: int) -> int:
    """The child of :func:`fill_cache`: ``bpttlab warm`` at a lower priority than the kernel, given up as
    soon as the kernel ``parent`` is gone (a kernel that is killed runs no exit handler). Returns the
    exit status."""
    from ..cli import main

    if hasattr(os, "nice"):
        os.nice(10)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="bpttlab-parent-watch", daemon=True).start()
    return main(["warm"])


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


def _fill_then_release(log) -> None:
    """The first phase: :func:`fill_cache` and wait for the child (at most ``FILL_TIMEOUT`` seconds), then
    release the compilations held meanwhile. A child that fails is logged: the kernel then compiles in
    its own process, as without a child."""
    try:
        filler = fill_cache()
        try:
            errors = filler.communicate(timeout=FILL_TIMEOUT)[1]
        except subprocess.TimeoutExpired:
            filler.kill()
            errors = filler.communicate()[1] + b"given up after %.0f s" % FILL_TIMEOUT
    finally:
        compilation.release()
    if filler.returncode != 0 and log is not None:
        log.warning("bpttlab: bpttlab warm failed in a child process: %s", errors.decode(errors="replace")[-2000:])


def start_warm_up(log=None, pause: float = PAUSE, child: bool = True) -> threading.Thread:
    """The three phases of the module's description in a daemon thread: :func:`fill_cache` (with
    ``child``, in the default "background" compilation mode), :func:`warm_first_gradient`, then after
    ``pause`` seconds :func:`warm_up`. A failure is logged (to the kernel's log), never raised."""
    child = child and compilation.mode() == "background"
    if child:
        compilation.hold()  # before the first cell can start a compilation in this process

    def run():
        try:
            if child:
                _fill_then_release(log)
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
