"""Derive + check time for Elman networks: SymPy's per-timestep terms, evaluated and compared with the engine.

Run: ``python benchmarks/bench_symbolic.py [--repeat N]``. Each configuration runs N times, each time in a
fresh Python process, so nothing SymPy builds is cached from a previous run. In the process, untimed:
import bpttlab and run the engine once on the same network (loading its Numba kernels from the on-disk
cache; that start-up cost is measured in bench_kernel_start.py). Timed:

* derive: ``bl.derive("elman", T=T, wrt=name, size=...)`` and its ``.total`` for every parameter;
* check: ``bl.check(net, xs, ys)`` on a random sequence of length T (every C[t][k], explicit, implicit
  and total, for every parameter and t, against the engine, plus finite differences).

Prints a Markdown table of the medians (and min-max) in seconds: wall time per phase, and the process's
CPU time for both (less sensitive to other load on the machine; the 1-minute load average is printed
before and after). The goals (wall time) are judged on the median.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = [("scalar", 4), ("scalar", 8), ("scalar", 12), ((2, 2, 1), 4), ((2, 2, 1), 6)]
GOALS = {("scalar", 8): 1.0, ((2, 2, 1), 6): 3.0}


def one(size, T: int) -> dict[str, float]:
    """Derive + check once, in this process; seconds per phase."""
    import numpy as np

    import bpttlab as bl

    D, H, O = (1, 1, 1) if size == "scalar" else size
    net = bl.make("elman", n_in=D, n_hidden=H, n_out=O, seed=0)
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(T, D)), rng.normal(size=(T, O))
    bl.bptt(net, xs, ys).by_loss, bl.contributions(net, xs, ys, "W")  # untimed: the engine's kernels
    t0, c0 = time.perf_counter(), time.process_time()
    for name in net.shapes:
        bl.derive("elman", T=T, wrt=name, size=size).total
    t1 = time.perf_counter()
    report = bl.check(net, xs, ys)
    t2, c2 = time.perf_counter(), time.process_time()
    if not report.passed:
        raise RuntimeError(f"check failed for size {size}, T={T}:\n{report}")
    return {"derive": t1 - t0, "check": t2 - t1, "total": t2 - t0, "cpu": c2 - c0}


def fresh(size, T: int) -> dict[str, float]:
    arg = "scalar" if size == "scalar" else ",".join(map(str, size))
    out = subprocess.run([sys.executable, __file__, "--one", arg, str(T)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the run for size {size}, T={T} failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def _size(arg: str):
    return "scalar" if arg == "scalar" else tuple(int(n) for n in arg.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per configuration (default 5)")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(_size(args.one[0]), int(args.one[1]))))
        return
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| size (D, H, O) | T | derive (s) | check (s) | derive + check (s) | CPU time (s) | goal |")
    print("|---|---|---|---|---|---|---|")
    for size, T in CONFIGS:
        runs = [fresh(size, T) for _ in range(args.repeat)]
        cols = []
        for phase in ("derive", "check", "total", "cpu"):
            v = [r[phase] for r in runs]
            cols.append(f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})")
        goal = GOALS.get((size, T))
        met = ""
        if goal is not None:
            met = f"< {goal:g} s: {'met' if statistics.median(r['total'] for r in runs) < goal else 'MISSED'}"
        name = "scalar (1, 1, 1)" if size == "scalar" else str(size)
        print(f"| {name} | {T} | {' | '.join(cols)} | {met} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
