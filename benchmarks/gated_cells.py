"""GRU and LSTM gradient times (full BPTT, mse, sum) next to the Elman cell, at the sizes of issue 6.

Run: ``python benchmarks/gated_cells.py [--repeat N]``. Prints a Markdown table: the best of N timed
calls of ``bl.bptt`` (forward pass, loss, backward pass and parameter gradients) and of ``bl.forward``,
after one untimed call that compiles (or loads) the Numba kernels.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import bpttlab as bl

SIZES = [(8, 64, 8, 1000, 1), (8, 64, 8, 200, 32)]  # (D, H, O, T, B)


def best_of(fn, repeat: int) -> float:
    """The shortest of ``repeat`` wall-clock times of fn(), in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print("| cell | (D, H, O, T, B) | bl.bptt (ms) | bl.forward (ms) |")
    print("| --- | --- | ---: | ---: |")
    for D, H, O, T, B in SIZES:
        rng = np.random.default_rng(0)
        xs, ys = rng.normal(size=(T, B, D)), rng.normal(size=(T, B, O))
        for cell in ("elman", "gru", "lstm"):
            net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
            bl.bptt(net, xs, ys)
            grad = best_of(lambda: bl.bptt(net, xs, ys), args.repeat)
            fwd = best_of(lambda: bl.forward(net, xs), args.repeat)
            print(f"| {cell} | ({D}, {H}, {O}, {T}, {B}) | {grad:.2f} | {fwd:.2f} |")


if __name__ == "__main__":
    main()
