"""The engine benchmark of BENCHMARKS.md: bpttlab, its NumPy reference, PyTorch and JAX side by side.

Run::

    python benchmarks/bench_engine.py [--rounds 3] [--quick] [--frameworks-python /tmp/venv-fw/bin/python]
    python benchmarks/bench_engine.py --small-only [--repeat 300]

Each round runs ``bpttlab bench --json`` (bpttlab and the NumPy reference, one thread, see
:mod:`bpttlab.benchmark`) and then ``benchmarks/bench_frameworks.py --json`` in the Python given by
``--frameworks-python`` (a separate environment with PyTorch and JAX; that script's docstring says how to
make it; without the option those columns are left out). Alternating rounds and taking, per size and
column, the median over rounds of the per-round medians keeps a burst of load on a shared machine from
favouring one column. Prints the Markdown tables of BENCHMARKS.md, wall-clock and CPU time, with the
speedup of bpttlab over the faster of PyTorch and JAX, then the first-call time, the versions and the
load averages seen, and last the smallest size against a bare Numba loop (:func:`small_size`; alone with
``--small-only``).
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
SMALL = (1, 3, 1, 10, 1)


def bare_loop():
    """The least a compiled full-BPTT gradient costs from Python: one ``@njit`` function of the seven
    arrays (weights, inputs (T, D), targets (T, O)) that loops over time and returns the mse loss and the
    five gradients W, U, b, V, c (Elman, tanh, the engine's arithmetic, written out as scalar loops)."""
    import numpy as np
    from numba import njit

    @njit(cache=True)
    def bare(W, U, b, V, c, X, Y):
        T, D = X.shape
        H, O = W.shape[0], V.shape[0]
        Hs, dO, loss = np.zeros((T + 1, H)), np.empty((T, O)), 0.0
        for t in range(T):
            for i in range(H):
                a = b[i]
                for j in range(H):
                    a += W[i, j] * Hs[t, j]
                for j in range(D):
                    a += U[i, j] * X[t, j]
                Hs[t + 1, i] = np.tanh(a)
            for k in range(O):
                o = c[k]
                for j in range(H):
                    o += V[k, j] * Hs[t + 1, j]
                dO[t, k] = o - Y[t, k]
                loss += 0.5 * dO[t, k] * dO[t, k]
        gW, gU, gb, gV, gc = np.zeros((H, H)), np.zeros((H, D)), np.zeros(H), np.zeros((O, H)), np.zeros(O)
        dh, da = np.zeros(H), np.empty(H)
        for t in range(T - 1, -1, -1):
            for k in range(O):
                gc[k] += dO[t, k]
                for j in range(H):
                    gV[k, j] += dO[t, k] * Hs[t + 1, j]
                    dh[j] += V[k, j] * dO[t, k]
            for i in range(H):
                da[i] = dh[i] * (1.0 - Hs[t + 1, i] * Hs[t + 1, i])
                gb[i] += da[i]
                for j in range(H):
                    gW[i, j] += da[i] * Hs[t, j]
                for j in range(D):
                    gU[i, j] += da[i] * X[t, j]
            for j in range(H):
                dh[j] = 0.0
                for i in range(H):
                    dh[j] += W[i, j] * da[i]
        return loss, gW, gU, gb, gV, gc

    return bare


def small_size(repeat: int, number: int = 200) -> dict:
    """Seconds per call at SMALL of the bare loop, of ``bl.bptt(net, xs, ys)`` and of
    ``bl.bptt(net, xs, ys).grads`` (its result's arrays are made on first access), each the minimum over
    ``repeat`` runs of ``number`` calls, the three interleaved run by run so that load hits them alike
    (the minimum is the figure least disturbed by other jobs). The gradients are compared first."""
    import timeit

    import bpttlab as bl
    from bpttlab.benchmark import AGREEMENT, data, max_rel_diff

    D, H, O, _, _ = SMALL
    net = bl.make("elman", n_in=D, n_hidden=H, n_out=O, seed=0)
    xs, ys = data(SMALL)
    bl.engine.warm("elman")
    bare = bare_loop()
    W, U, b, V, c = (net.params[k] for k in ("W", "U", "b", "V", "c"))
    loss, *grads = bare(W, U, b, V, c, xs, ys)
    grads = dict(zip(("W", "U", "b", "V", "c"), grads))
    res = bl.bptt(net, xs, ys)
    diff = max(max_rel_diff(res.grads, grads), abs(res.loss - loss) / abs(loss))
    if diff > AGREEMENT:
        raise RuntimeError(f"bl.bptt and the bare loop disagree: relative difference {diff:.2e}")
    calls = {"bare_s": lambda: bare(W, U, b, V, c, xs, ys), "bptt_s": lambda: bl.bptt(net, xs, ys),
             "bptt_grads_s": lambda: bl.bptt(net, xs, ys).grads}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for key, fn in calls.items():
            best[key] = min(best[key], timeit.timeit(fn, number=number) / number)
    return best | {"load_average": list(os.getloadavg())}


def _print_small(small: dict, repeat: int) -> None:
    bare, call, grads = small["bare_s"], small["bptt_s"], small["bptt_grads_s"]
    print(f"Smallest size {SMALL} against a bare Numba loop (minimum of {repeat} interleaved runs of 200 calls, "
          f"1-minute load {small['load_average'][0]:.1f}): bare loop {_time(bare)}, `bl.bptt` {_time(call)} "
          f"({call / bare:.2f}x), `bl.bptt(...).grads` {_time(grads)} ({grads / bare:.2f}x).")


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
    parser.add_argument("--small-only", action="store_true", help="only the smallest size against a bare loop")
    parser.add_argument("--repeat", type=int, default=300, help="runs of the smallest size (default 300)")
    parser.add_argument("--small-json", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.small_json:
        print(json.dumps(small_size(args.repeat)))
        return
    small = [sys.executable, str(Path(__file__).resolve()), "--small-json", "--repeat", str(args.repeat)]
    if args.small_only:
        _print_small(_json(small), args.repeat)
        return
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
          f"{min(loads):.1f}-{max(loads):.1f} during the runs.\n")
    _print_small(_json(small), args.repeat)


if __name__ == "__main__":
    main()
