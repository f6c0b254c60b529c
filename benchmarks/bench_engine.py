"""The engine benchmark of BENCHMARKS.md: bpttlab, its NumPy reference, PyTorch and JAX side by side.

Run::

    python benchmarks/bench_engine.py [--rounds 3] [--quick] [--frameworks-python /tmp/venv-fw/bin/python]

Each round runs ``bpttlab bench --json`` (bpttlab and the NumPy reference, one thread, see
:mod:`bpttlab.benchmark`) and then ``benchmarks/bench_frameworks.py --json`` in the Python given by
``--frameworks-python`` (a separate environment with PyTorch and JAX; that script's docstring says how to
make it; without the option those columns are left out). Alternating rounds and taking, per size and
column, the median over rounds of the per-round medians keeps a burst of load on a shared machine from
favouring one column. Prints the Markdown tables of BENCHMARKS.md, wall-clock and CPU time, with the
speedup of bpttlab over the faster of PyTorch and JAX, then the first-call time, the versions and the
load averages seen.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bpttlab.benchmark import ONE_THREAD

HERE = Path(__file__).resolve().parent


def _json(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **ONE_THREAD))
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to both benchmarks")
    parser.add_argument("--frameworks-python", metavar="PYTHON",
                        help="a Python with torch and jax installed (see bench_frameworks.py)")
    args = parser.parse_args()
    quick = ["--quick"] if args.quick else []
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(_json([sys.executable, "-m", "bpttlab.benchmark", "--json", *quick]))
        if args.frameworks_python:
            theirs.append(_json([args.frameworks_python, str(HERE / "bench_frameworks.py"), "--json", *quick]))
        print(f"round {len(ours)} of {args.rounds} done", file=sys.stderr, flush=True)

    def median(results, i, key):
        values = [r["rows"][i][key] for r in results]
        return statistics.median(values) if values and None not in values else None

    for title, suffix in (("Wall-clock", "_s"), ("CPU", "_cpu_s")):
        print(f"{title} time per gradient (median):\n")
        print("| (D, H, O, T, B) | bpttlab | NumPy reference | PyTorch | JAX | best of PyTorch, JAX / bpttlab |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for i, row in enumerate(ours[0]["rows"]):
            engine, ref = median(ours, i, "bpttlab" + suffix), median(ours, i, "numpy" + suffix)
            torch, jax = median(theirs, i, "torch" + suffix), median(theirs, i, "jax" + suffix)
            speedup = f"{min(torch, jax) / engine:.1f}x" if theirs else "-"
            print(f"| {tuple(row['config'])} | {_time(engine)} | {_time(ref)} | {_time(torch)} | {_time(jax)} "
                  f"| {speedup} |")
        print()
    first = {k: statistics.median(r["first_call"][k] for r in ours) for k in ("import_s", "first_call_s")}
    env = ours[-1]["environment"]
    print(f"First call in a fresh process, warm Numba cache, {tuple(ours[0]['first_call']['config'])}: "
          f"`import bpttlab` {first['import_s']:.2f} s, first `bl.bptt` {_time(first['first_call_s'])} "
          f"(median of {len(ours)} rounds).")
    versions = f"Python {env['python']}, NumPy {env['numpy']}, Numba {env['numba']}"
    if theirs:
        versions += f", PyTorch {theirs[-1]['torch']}, JAX {theirs[-1]['jax']}"
    loads = [r["environment"]["load_average"][0] for r in ours] + [r["load_average"][0] for r in theirs]
    print(f"{env['date']}; {versions}; {env['cpus']} CPUs ({env['machine']}); 1-minute load average "
          f"{min(loads):.1f}-{max(loads):.1f} during the runs.")


if __name__ == "__main__":
    main()
