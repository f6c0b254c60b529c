"""CPU time per ``bl.bptt`` on the compiled tier of each built-in cell, to check that a change to the kernels
leaves the steady state as fast (compare two versions in alternating runs on the same machine).

Run: ``python benchmarks/steady_cells.py`` (the kernels compile first if the cache is cold). Prints, per
case, the best ``time.process_time`` of one call over 30-2000 calls, after one untimed call, with BLAS on
one thread.
"""
from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

import bpttlab as bl
from bpttlab.engine import compilation

CASES = [("elman", (1, 3, 1, 10, 1), {}, 2000), ("elman", (8, 64, 8, 200, 32), {}, 30),
         ("elman", (4, 16, 4, 100, 1), {"loss": "cross_entropy"}, 500),
         ("lstm", (8, 64, 8, 200, 8), {}, 30), ("lstm", (8, 32, 8, 100, 4), {"k2": 10}, 30),
         ("gru", (8, 32, 8, 100, 4), {"k2": 10}, 30), ("jordan", (8, 32, 8, 100, 4), {"k2": 10}, 30)]


def best(call, n: int) -> float:
    """The least CPU seconds of one call over n calls, after one untimed call."""
    call()
    times = []
    for _ in range(n):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    threadpool_limits(1)  # BLAS threads that spin would count in the process time
    compilation.set_mode("eager")
    rng = np.random.default_rng(0)
    print("| cell | (D, H, O, T, B) | options | CPU per call |\n| --- | --- | --- | ---: |")
    for cell, (D, H, O, T, B), options, n in CASES:
        net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
        xs = rng.normal(size=(T, B, D))
        if options.get("loss") == "cross_entropy":
            y = rng.integers(0, O, size=(T, B))
        else:
            y = rng.normal(size=(T, B, O))
        seconds = best(lambda: bl.bptt(net, xs, y, **options), n)
        print(f"| {cell} | {(D, H, O, T, B)} | {options or ''} | {seconds * 1e6:.1f} us |", flush=True)


if __name__ == "__main__":
    main()
