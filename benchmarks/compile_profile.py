"""What `bpttlab warm` spends its time on: compile time per cell and per Numba dispatcher.

Run (with an empty cache, to see compilation rather than loading)::

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_profile.py [CELL ...] [--depth N]

Warms the named cells (default: the four built-ins) in this order in one process, as ``bpttlab warm``
does, and prints per cell the CPU seconds (``time.process_time``, which a busy machine inflates much less
than the wall clock; Numba's import and one-off set-up land on the first cell) and the wall seconds. Then
the tree of compilations Numba reported (``numba:compile`` events of :mod:`numba.core.event`): each
dispatcher compiled, with its argument types and its inclusive wall seconds, nested under the one whose
compilation needed it, down to ``--depth`` (default 2), leaving out those under 0.05 s. A kernel listed
twice with other argument types is a second specialisation.
"""
from __future__ import annotations

import argparse
import time

from numba.core import event


class CompileTree(event.Listener):
    """Records every compilation as (depth, dispatcher and argument types, inclusive seconds)."""

    def __init__(self) -> None:
        self.rows: list[list] = []
        self._open: list[tuple[float, int]] = []

    def on_start(self, ev) -> None:
        f = ev.data["dispatcher"].py_func
        self._open.append((time.perf_counter(), len(self.rows)))
        self.rows.append([len(self._open) - 1, f"{f.__module__}.{f.__qualname__} {ev.data.get('args')}", 0.0])

    def on_end(self, ev) -> None:
        started, row = self._open.pop()
        self.rows[row][2] = time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", default=["elman", "gru", "jordan", "lstm"])
    parser.add_argument("--depth", type=int, default=2, help="deepest nesting printed (default 2)")
    args = parser.parse_args()
    tree = CompileTree()
    event.register("numba:compile", tree)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    from bpttlab.engine import warm

    print("| cell | CPU s | wall s |\n| --- | ---: | ---: |")
    for name in args.cells:
        cpu, wall = time.process_time(), time.perf_counter()
        warm(name)
        print(f"| {name} | {time.process_time() - cpu:.2f} | {time.perf_counter() - wall:.2f} |")
    print(f"| total | {time.process_time() - cpu0:.2f} | {time.perf_counter() - wall0:.2f} |\n")
    for depth, name, seconds in tree.rows:
        if depth <= args.depth and seconds >= 0.05:
            print(f"{'  ' * depth}{seconds:6.2f} s  {name[:160]}")


if __name__ == "__main__":
    main()
