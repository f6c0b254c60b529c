"""When a cell's compiled tier may be used, and getting it compiled without making anyone wait.

Numba compiles a kernel on its first call in a process (or loads it from the on-disk cache, which is
quicker but not free). The engine never makes a result wait for that: a cell whose kernels are not
ready runs on the per-copy NumPy tier (:class:`bpttlab.engine.tiers.PerCopy`), and its kernels are
compiled meanwhile in a daemon thread; the calls made after they are ready use them. A kernel is only
ever called by the engine after the thread that compiled it has finished, so a call never blocks on the
compiler, and a call that races with the compilation simply takes the per-copy tier.

The environment variable ``BPTTLAB_COMPILE`` (read when bpttlab is imported; :func:`set_mode` changes it
later) chooses:

* ``background`` (default): as above;
* ``eager``: compile on first use and wait for it (the behaviour of earlier versions);
* ``off``: never use compiled kernels (the per-copy tier only).

``bpttlab warm`` compiles every built-in cell ahead of time, filling the Numba cache so that later
processes only load it. The BPTT Lab kernel runs it in a child process at start (on another core, so the
compiler never competes with the student's cells for this interpreter) and meanwhile holds this
process's background compilations (:func:`hold`): released, they load what the child compiled.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Hashable

ENV = "BPTTLAB_COMPILE"
MODES = ("background", "eager", "off")

_ready: set = set()
_threads: dict[Hashable, threading.Thread] = {}
_locks: dict[Hashable, threading.Lock] = {}
_guard = threading.Lock()
_released = threading.Event()  # background compilations wait for it (see hold)
_released.set()


def checked(value: str) -> str:
    """``value`` if it is a compilation mode (ValueError naming ``BPTTLAB_COMPILE`` otherwise)."""
    if value not in MODES:
        raise ValueError(f"{ENV} must be one of {', '.join(MODES)}, got {value!r}")
    return value


_mode = os.environ.get(ENV) or "background"  # an unknown value is reported at the first engine call


def mode() -> str:
    """The compilation mode in force."""
    return checked(_mode)


#: How many times :func:`set_mode` ran: what was decided under one mode holds while this is unchanged.
mode_changes = 0


def set_mode(value: str) -> str:
    """Change the compilation mode of this process; returns the previous one."""
    global _mode, mode_changes
    previous, _mode = _mode, checked(value)
    mode_changes += 1
    return previous


def is_ready(key: Hashable) -> bool:
    """Whether the kernels of ``key`` are compiled in this process."""
    return key in _ready


def ready(key: Hashable, work: Callable[[], None]) -> bool:
    """Whether the kernels of ``key`` may be used now. If they are not compiled yet: in "background" mode
    start ``work`` (which compiles them) in a thread and return False at once; in "eager" mode run it
    here and return True; in "off" mode return False (even when they are compiled)."""
    chosen = mode()
    if chosen == "off":
        return False
    if key in _ready:
        return True
    if chosen == "eager":
        compile_now(key, work)
        return True
    if chosen == "background":
        start(key, work)
    return False


def start(key: Hashable, work: Callable[[], None]) -> threading.Thread | None:
    """Compile in a daemon thread (once per key); returns the thread, or None when already compiled."""
    if key in _ready:
        return None
    with _guard:
        thread = _threads.get(key)
        if thread is None:
            thread = _threads[key] = threading.Thread(target=_quietly, args=(key, work), daemon=True,
                                                      name=f"bpttlab-compile-{key}")
            thread.start()
    return thread


def hold() -> None:
    """Make background compilations wait (on the per-copy tier meanwhile) until :func:`release`: for
    while another process fills the Numba cache, which they will then only load."""
    _released.clear()


def release() -> None:
    """Let the background compilations held by :func:`hold` run."""
    _released.set()


def _quietly(key: Hashable, work: Callable[[], None]) -> None:
    """A background compilation, once released (:func:`hold`): a failure leaves the per-copy tier in use
    (never raised)."""
    _released.wait()
    try:
        compile_now(key, work)
    except Exception:  # noqa: BLE001 - the per-copy tier gives the same numbers
        pass


def compile_now(key: Hashable, work: Callable[[], None]) -> float:
    """Run ``work`` (once per key and process; a concurrent caller waits for the first) and mark the key
    ready; returns the seconds this call waited or worked."""
    start_time = time.perf_counter()
    if key in _ready:
        return 0.0
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _ready:
            work()
            _ready.add(key)
    return time.perf_counter() - start_time
