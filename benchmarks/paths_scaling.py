"""Linear versus quadratic time: the backward recursion (``bl.bptt``) against the direct sum over all
paths (``bl.bptt_all_paths``), for the gated cells as T doubles.

Run: ``python benchmarks/paths_scaling.py [--repeat N]``. Prints a Markdown table of the best of N
calls of each at D=8, H=64, O=8, B=1, and the slope of log(time) against log(T) fitted over the rows
(1 for linear, 2 for quadratic time), from
the CPU times.
"""
from __future__ import annotations

import os

# one BLAS thread, as BENCHMARKS.md says: set before NumPy loads OpenBLAS (on a busy 2-core machine its
# threads wait for each other, and a 64 x 64 product can take 100 times longer)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse

import numpy as np

import bpttlab as bl
from gated_cells import best_of

D, H, O = 8, 64, 8
LENGTHS = (100, 200, 400, 800, 1600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for cell in ("gru", "lstm"):
        net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
        rng = np.random.default_rng(0)
        xs, ys = rng.normal(size=(LENGTHS[-1], D)), rng.normal(size=(LENGTHS[-1], O))
        bl.bptt(net, xs[:5], ys[:5])
        bl.bptt_all_paths(net, xs[:5], ys[:5])
        linear, quadratic = [], []
        print(f"\n{cell} (D={D}, H={H}, O={O}, B=1), best of N; wall clock / process CPU time\n")
        print("| T | O(T) recursion, bl.bptt (ms) | O(T^2) all paths, bl.bptt_all_paths (ms) | ratio (CPU) |")
        print("| ---: | ---: | ---: | ---: |")
        for T in LENGTHS:
            linear.append(best_of(lambda: bl.bptt(net, xs[:T], ys[:T]), max(args.repeat, 10)))
            quadratic.append(best_of(lambda: bl.bptt_all_paths(net, xs[:T], ys[:T]), args.repeat))
            print(f"| {T} | {linear[-1][0]:.2f} / {linear[-1][1]:.2f} | {quadratic[-1][0]:.1f} / "
                  f"{quadratic[-1][1]:.1f} | {quadratic[-1][1] / linear[-1][1]:.0f} |", flush=True)
        logT = np.log(LENGTHS)
        slope = [np.polyfit(logT, np.log([t[1] for t in times]), 1)[0] for times in (linear, quadratic)]
        print(f"| slope of log CPU time vs log T | {slope[0]:.2f} | {slope[1]:.2f} | |")


if __name__ == "__main__":
    main()
