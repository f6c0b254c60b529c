"""GRU and LSTM gradient times (full BPTT, mse, sum) next to the Elman cell, at the sizes of issue 6.

Run: ``python benchmarks/gated_cells.py [--repeat N]``. Prints a Markdown table: the best of N timed
calls of ``bl.bptt`` (forward pass, loss, backward pass and parameter gradients) and of ``bl.forward``,
after one untimed call that compiles (or loads) the Numba kernels. Each time is given twice: wall clock,
and the CPU time of the process (one thread), which a busy machine inflates much less.
"""
from __future__ import annotations

import os

# one BLAS thread, as BENCHMARKS.md says: set before NumPy loads OpenBLAS (on a busy 2-core machine its
# threads wait for each other, and a 64 x 64 product can take 100 times longer)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time

import numpy as np

import bpttlab as bl

SIZES = [(8, 64, 8, 1000, 1), (8, 64, 8, 200, 32)]  # (D, H, O, T, B)


def best_of(fn, repeat: int) -> tuple[float, float]:
    """The shortest wall-clock time and the shortest process CPU time of ``repeat`` calls of fn(), in ms."""
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return 1e3 * min(wall), 1e3 * min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print("| cell | (D, H, O, T, B) | bl.bptt, wall / CPU (ms) | bl.forward, wall / CPU (ms) |")
    print("| --- | --- | ---: | ---: |")
    for D, H, O, T, B in SIZES:
        rng = np.random.default_rng(0)
        xs, ys = rng.normal(size=(T, B, D)), rng.normal(size=(T, B, O))
        for cell in ("elman", "gru", "lstm"):
            net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
            bl.bptt(net, xs, ys)
            grad = best_of(lambda: bl.bptt(net, xs, ys), args.repeat)
            fwd = best_of(lambda: bl.forward(net, xs), args.repeat)
            print(f"| {cell} | ({D}, {H}, {O}, {T}, {B}) | {grad[0]:.2f} / {grad[1]:.2f} | "
                  f"{fwd[0]:.2f} / {fwd[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
