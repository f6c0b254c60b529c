"""Reused memory for the compiled kernels' work arrays and results (plain NumPy: no Numba needed to
import it, so the engine can release it without loading the compiler)."""
from __future__ import annotations

import math
import threading
import weakref

import numpy as np


class Scratch:
    """Work arrays reused from one kernel call to the next, so that large temporaries cost no fresh
    pages (a first touch of new memory costs more than the arithmetic done in it). Only for arrays that
    no result keeps; the kernels hold the GIL, so one call at a time uses them. Arrays under
    ``min_size`` numbers are simply fresh: the allocator serves them faster than the look-up."""

    def __init__(self, min_size: int = 1 << 14) -> None:
        self.min_size = min_size
        self._flat: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float64 array of this shape with undefined contents, backed by the buffer called ``name``."""
        n = math.prod(shape)
        if n < self.min_size:
            return np.empty(shape)
        flat = self._flat.get(name)
        if flat is None or flat.size < n:
            flat = self._flat[name] = np.empty(n)
        return flat[:n].reshape(shape)


_RECYCLERS: weakref.WeakSet = weakref.WeakSet()


def release_idle_memory() -> None:
    """Let every :class:`Recycler` return the memory blocks no result uses (e.g. before measuring the
    memory a computation needs, which recycled blocks would otherwise hide)."""
    for recycler in list(_RECYCLERS):
        recycler.clear()


class Recycler:
    """Result arrays carved out of buffers that are used again once no result refers to them.

    A large fresh array costs a page fault per 4 KiB page on first touch, which on a virtual machine is
    about as slow as the arithmetic done in it (a third of a full-BPTT call at T=200, B=32, H=64). The
    arrays a kernel returns (the forward trace) cannot come from :class:`Scratch`, since the caller
    keeps them; here they are views of one *lent* array, made afresh for each request over memory the
    recycler keeps. NumPy makes every view of a view refer to that lent array (it does not own its
    memory, and its base is not an array), so the lent array lives exactly as long as some view of it
    does; a :func:`weakref.finalize` on it marks the memory free again when it goes. Requests whose first
    array (put the largest first) has fewer than ``min_size`` numbers get fresh arrays: the allocator
    serves small ones from memory it already has, without faults. At most ``keep`` memory blocks are
    kept, none over ``max_size`` numbers (a larger request gets fresh memory): by default at most
    3 x 32 MiB stay allocated. :meth:`clear` lets every idle block go.
    """

    def __init__(self, min_size: int = 1 << 14, max_size: int = 1 << 22, keep: int = 3) -> None:
        self.min_size, self.max_size, self.keep = min_size, max_size, keep
        self._buffers: list[np.ndarray] = []
        self._busy: set[int] = set()  # ids of the blocks lent out now
        self._lock = threading.RLock()  # a finalizer may run while take() holds it
        _RECYCLERS.add(self)

    def take(self, *shapes: tuple[int, ...]) -> list[np.ndarray]:
        """Float64 arrays of these shapes with undefined contents, none sharing memory with another."""
        if math.prod(shapes[0]) < self.min_size:
            return [np.empty(s) for s in shapes]
        sizes = [math.prod(s) for s in shapes]
        total = sum(-(-n // 8) * 8 for n in sizes)  # each array starts 64 bytes after the one before
        with self._lock:
            block = self._block(total)
            kept = any(b is block for b in self._buffers)
            if kept:
                self._busy.add(id(block))
        lent = np.frombuffer(memoryview(block), dtype=np.float64, count=total)
        if kept:
            weakref.finalize(lent, self._release, id(block))
        out, start = [], 0
        for shape, n in zip(shapes, sizes):
            out.append(lent[start:start + n].reshape(shape))
            start += -(-n // 8) * 8
        return out

    def _release(self, key: int) -> None:
        with self._lock:
            self._busy.discard(key)

    def clear(self) -> None:
        """Let go of every block that is not lent out (they return to the allocator)."""
        with self._lock:
            self._buffers = [b for b in self._buffers if id(b) in self._busy]

    def _block(self, total: int) -> np.ndarray:
        """The smallest kept block of at least ``total`` numbers that is not lent out, or a new one, kept
        (in place of the smallest idle block when ``keep`` are kept already) if it may be."""
        idle = [i for i, b in enumerate(self._buffers) if id(b) not in self._busy]
        fits = [i for i in idle if self._buffers[i].size >= total]
        if fits:
            return self._buffers[min(fits, key=lambda i: self._buffers[i].size)]
        block = np.empty(total)
        if total > self.max_size:
            return block
        if len(self._buffers) >= self.keep and idle:
            del self._buffers[min(idle, key=lambda i: self._buffers[i].size)]
        if len(self._buffers) < self.keep:
            self._buffers.append(block)
        return block
