"""First contact on an empty Numba cache: how long a fresh install makes a student (or an image build) wait.

Run::

    python benchmarks/cold_start.py [--repeat N] [--skip-chapter]

Every measurement runs in fresh processes whose ``NUMBA_CACHE_DIR`` is a new empty directory, which is
what a fresh virtual environment has (no compiled kernel anywhere), with the default compilation mode
(``BPTTLAB_COMPILE=background``: the engine answers on its NumPy tier while the kernels compile):

* ``import bpttlab`` and the first ``bl.bptt`` on a (1, 3, 1, 10, 1) Elman problem, timed inside the
  process;
* the BPTT Lab kernel from its start to the first gradient printed (``%bptt grad``), as in
  ``benchmarks/bench_kernel_start.py`` (needs the ``bpttlab`` kernelspec);
* chapter 01 top to bottom (``workbooks/execute.py --no-write --compile background``), kernel start
  included;
* ``bpttlab warm`` for the four built-in cells (what an image build runs once), then, in the cache it
  filled, ``import bpttlab`` and a first ``bl.bptt`` that uses the compiled tier.

Prints a Markdown table of the median (min-max) over ``--repeat`` runs and the load averages seen.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

FIRST = """
import time
t0 = time.perf_counter()
import numpy as np
import bpttlab as bl
t1 = time.perf_counter()
net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=0)
res = bl.bptt(net, np.ones((10, 1)), np.zeros((10, 1)))
t2 = time.perf_counter()
from bpttlab.engine.tiers import tier
print(t1 - t0, t2 - t1, int(tier(net.cell, net.activation).compiled))
"""


def _env(cache: str) -> dict[str, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    env.pop("BPTTLAB_COMPILE", None)
    return env


def _first_bptt(cache: str) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, "-c", FIRST], env=_env(cache), capture_output=True, text=True, check=True)
    a, b, compiled = out.stdout.split()
    return float(a), float(b), int(compiled)


def _timed(cmd: list[str], cache: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=_env(cache), capture_output=True, text=True, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def _kernel_first_gradient(cache: str) -> float:
    sys.path.insert(0, str(HERE))
    from bench_kernel_start import FIRST_CELL, start_to_first_gradient

    before = os.environ.get("NUMBA_CACHE_DIR")
    os.environ["NUMBA_CACHE_DIR"] = cache  # the kernel process inherits it
    try:
        return start_to_first_gradient("bpttlab", FIRST_CELL)[1]
    finally:
        if before is None:
            del os.environ["NUMBA_CACHE_DIR"]
        else:
            os.environ["NUMBA_CACHE_DIR"] = before


def _row(name: str, values: list[float], goal: str) -> str:
    return (f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f}-{max(values):.2f} s | {goal} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-chapter", action="store_true", help="leave out chapter 01 (the slow one)")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            imp, first, compiled = _first_bptt(cache)
            rows.setdefault("import bpttlab", []).append(imp)
            rows.setdefault("first bl.bptt (NumPy tier)" if not compiled else "first bl.bptt", []).append(first)
        with tempfile.TemporaryDirectory() as cache:
            rows.setdefault("kernel start to first gradient", []).append(_kernel_first_gradient(cache))
        if not args.skip_chapter:
            with tempfile.TemporaryDirectory() as cache:
                rows.setdefault("chapter 01 top to bottom", []).append(
                    _timed([sys.executable, "workbooks/execute.py", "--no-write", "--compile", "background",
                            "01-unfolding.ipynb"], cache))
        with tempfile.TemporaryDirectory() as cache:
            rows.setdefault("bpttlab warm (4 cells)", []).append(
                _timed([sys.executable, "-m", "bpttlab.cli", "warm"], cache))
            imp, first, compiled = _first_bptt(cache)
            rows.setdefault("after warm: import + first bl.bptt (compiled)", []).append(imp + first)
        loads.append(os.getloadavg()[0])
    goals = {"import bpttlab": "", "first bl.bptt (NumPy tier)": "< 1 s with the import",
             "kernel start to first gradient": "< 2 s", "chapter 01 top to bottom": "< 20 s",
             "bpttlab warm (4 cells)": "< 30 s"}
    print("| empty Numba cache | median | min-max | goal |\n| --- | ---: | ---: | --- |")
    for name, values in rows.items():
        print(_row(name, values, goals.get(name, "")))
    print(f"\n1-minute load averages seen: {', '.join(f'{x:.1f}' for x in loads)}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
