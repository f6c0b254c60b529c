r"""``bpttlab bench``: how long the engine takes for one full-BPTT gradient.

For each size (D, H, O, T, B) it times ``bl.bptt(net, xs, ys)`` (forward pass, mse loss summed over
time and batch, backward pass and every parameter gradient, float64, tanh) through the public API, and
the same gradient computed by :func:`numpy_bptt`, a vectorised NumPy implementation (one matrix product
per time step, NumPy's own BLAS), in the same process. Before timing, the two gradients are compared
(:func:`max_rel_diff`); a disagreement is an error, not a number.

Timing is timeit-style: the number of calls per run grows until one run takes at least 0.2 s (0.02 s
with ``--quick``), and the result is the median over ``--repeat`` runs of the time per call, wall-clock
and CPU (the CPU time is the steadier one on a machine shared with other work). The first call of a
fresh process (``import bpttlab`` and the first gradient, with the Numba cache already warm; that first
gradient runs on the NumPy tier while the kernels load in the background) is timed in subprocesses.

One thread: the benchmark runs with ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
and ``MKL_NUM_THREADS`` set to 1. These are read when the libraries load, so if the calling environment
does not already set them, :func:`main` runs the benchmark in a child process that does.

Run ``bpttlab bench --help`` for the options; ``benchmarks/bench_engine.py`` adds the PyTorch and JAX
columns of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from .argtypes import bench_size, positive_int

#: The sizes (D, H, O, T, B) of issue 2.
CONFIGS = ((1, 3, 1, 10, 1), (4, 16, 4, 100, 1), (8, 64, 8, 1000, 1), (16, 256, 16, 200, 1), (8, 64, 8, 200, 32))

#: Environment variables that pin Numba, OpenMP, OpenBLAS and MKL to one thread.
ONE_THREAD = {name: "1" for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS")}

#: Largest relative difference between the engine and the NumPy reference that counts as agreement.
AGREEMENT = 1e-10

# What a fresh process runs: import the package, build the network and time the first gradient.
_FIRST_CALL = """
import json, sys, time
t0 = time.perf_counter()
import bpttlab as bl
t1 = time.perf_counter()
from bpttlab.benchmark import data
cell, config = sys.argv[1], json.loads(sys.argv[2])
net = bl.make(cell, n_in=config[0], n_hidden=config[1], n_out=config[2], seed=0)
xs, ys = data(config)
t2 = time.perf_counter()
bl.bptt(net, xs, ys)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_call_s": t3 - t2}))
"""


@dataclass
class Row:
    """One size: median wall-clock and CPU seconds per gradient for the engine and the NumPy reference
    (None for a cell without a reference), the largest relative difference between their gradients, and
    the calls per timed run."""

    config: tuple[int, int, int, int, int]
    bpttlab_s: float
    bpttlab_cpu_s: float
    numpy_s: float | None
    numpy_cpu_s: float | None
    max_rel_diff: float | None
    calls: int


def data(config, seed: int = 0):
    """Inputs and mse targets for a size: (T, D) and (T, O) when B is 1, (T, B, D) and (T, B, O) otherwise."""
    D, _, O, T, B = config
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, D) if B > 1 else (T, D))
    ys = rng.normal(size=(T, B, O) if B > 1 else (T, O))
    return xs, ys


def numpy_bptt(params: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray):
    r"""Full BPTT of an Elman tanh network with mse loss (sum), vectorised over the batch in NumPy.

    .. math::

        a_t = W h_{t-1} + U x_t + b, \quad h_t = \tanh a_t, \quad o_t = V h_t + c, \quad
        E = \tfrac12 \sum_t \lVert o_t - y_t \rVert^2,

        \bar a_t = (1 - h_t^2) \odot \bigl(V^\top (o_t - y_t) + W^\top \bar a_{t+1}\bigr), \quad
        \frac{\partial E}{\partial W} = \sum_t \bar a_t h_{t-1}^\top, \quad
        \frac{\partial E}{\partial U} = \sum_t \bar a_t x_t^\top, \quad
        \frac{\partial E}{\partial V} = \sum_t (o_t - y_t) h_t^\top .

    Only the recurrence loops over time; the input and output layers and the weight gradients are one
    product each over all T*B copies.

    Args:
        params: W (H, H), U (H, D), b (H,), V (O, H), c (O,).
        xs: inputs (T, D) or (T, B, D).
        ys: targets (T, O) or (T, B, O).

    Returns:
        (E, grads): the loss and a dict of gradients named like ``params``.
    """
    W, U, b, V, c = (params[k] for k in ("W", "U", "b", "V", "c"))
    T, H = xs.shape[0], W.shape[0]
    X = xs.reshape(T, -1, xs.shape[-1])
    B = X.shape[1]
    A = X @ U.T + b
    Hs = np.zeros((T + 1, B, H))
    for t in range(T):
        A[t] += Hs[t] @ W.T
        Hs[t + 1] = np.tanh(A[t])
    dO = Hs[1:] @ V.T + c - ys.reshape(T, B, -1)
    G = dO @ V
    dA = np.empty_like(A)
    carry = np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        dA[t] = (G[t] + carry) * (1.0 - Hs[t + 1] ** 2)
        carry = dA[t] @ W
    dA2, dO2 = dA.reshape(T * B, H), dO.reshape(T * B, -1)
    grads = {"W": dA2.T @ Hs[:-1].reshape(T * B, H), "U": dA2.T @ X.reshape(T * B, -1), "b": dA2.sum(axis=0),
             "V": dO2.T @ Hs[1:].reshape(T * B, H), "c": dO2.sum(axis=0)}
    return 0.5 * float(np.sum(dO * dO)), grads


def max_rel_diff(grads: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    r"""The largest relative difference over parameters,
    :math:`\max_\theta \lVert g_\theta - r_\theta \rVert_\infty / \lVert r_\theta \rVert_\infty`
    (the denominator at least 1e-300)."""
    return max(float(np.max(np.abs(grads[k] - r)) / max(float(np.max(np.abs(r))), 1e-300))
               for k, r in reference.items())


def _seconds(fn, n: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) for n calls of fn()."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return time.perf_counter() - w0, time.process_time() - c0


def median_time(fn, repeat: int, min_time: float) -> tuple[float, float, int]:
    """Median wall-clock and CPU seconds per call of fn() over ``repeat`` runs of n calls each, n the first
    of 1, 2, 5, 10, 20, 50, ... for which one run lasts at least ``min_time`` seconds; returns
    (wall, cpu, n). On a loaded machine the CPU time is the steadier of the two."""
    n, scale = 0, 1
    while not n:
        n = next((k for k in (scale, 2 * scale, 5 * scale) if _seconds(fn, k)[0] >= min_time), 0)
        scale *= 10
    runs = [_seconds(fn, n) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs) / n, statistics.median(c for _, c in runs) / n, n


def bench_config(cell: str, config, repeat: int, min_time: float) -> Row:
    """Time one size (see the module docstring)."""
    import bpttlab as bl

    D, H, O, _, _ = config
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation="tanh", seed=0)
    xs, ys = data(config)
    bl.engine.warm(cell)  # time the compiled tier, not the NumPy tier that runs until it is ready
    res = bl.bptt(net, xs, ys)
    engine_s, engine_cpu_s, calls = median_time(lambda: bl.bptt(net, xs, ys), repeat, min_time)
    if cell != "elman":
        return Row(tuple(config), engine_s, engine_cpu_s, None, None, None, calls)
    loss, grads = numpy_bptt(net.params, xs, ys)
    diff = max(max_rel_diff(res.grads, grads), abs(res.loss - loss) / abs(loss))
    if diff > AGREEMENT:
        raise RuntimeError(f"the engine and the NumPy reference disagree at (D, H, O, T, B) = {config}: "
                           f"relative difference {diff:.2e} > {AGREEMENT:g}")
    numpy_s, numpy_cpu_s, _ = median_time(lambda: numpy_bptt(net.params, xs, ys), repeat, min_time)
    return Row(tuple(config), engine_s, engine_cpu_s, numpy_s, numpy_cpu_s, diff, calls)


def first_call(cell: str, config, repeat: int) -> dict[str, float]:
    """Median seconds for ``import bpttlab`` and for the first ``bl.bptt`` call in a fresh process, after
    one untimed process that fills the Numba cache."""
    cmd = [sys.executable, "-c", _FIRST_CALL, cell, json.dumps(list(config))]
    runs = []
    for i in range(repeat + 1):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        if i:
            runs.append(json.loads(out.stdout.splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def environment() -> dict:
    """What the numbers depend on: versions, cores, load and the thread settings."""
    import numba

    from . import __version__

    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "bpttlab": __version__,
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
            "threads": {k: os.environ.get(k) for k in ONE_THREAD}}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bpttlab bench",
        description="Time one full-BPTT gradient (bl.bptt: forward, mse loss, backward, all parameter "
                    "gradients; float64, tanh, one thread) at the sizes of issue 2, next to a vectorised NumPy "
                    "reference, and the first call in a fresh process with a warm Numba cache.")
    p.add_argument("--cell", default="elman",
                   help="a registered cell (default elman; the NumPy reference exists for elman only)")
    p.add_argument("--config", metavar="D,H,O,T,B", type=bench_size, action="append",
                   help="a size to time instead of the default five (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="a rough run: 3 repeats of at least 0.02 s, one fresh process (default: 7 of 0.2 s, 5)")
    p.add_argument("--repeat", type=positive_int, help="timed runs per measurement (the median is reported)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    return p


def run(args) -> dict:
    """The benchmark's results as a dict (what ``--json`` prints)."""
    repeat = args.repeat or (3 if args.quick else 7)
    min_time = 0.02 if args.quick else 0.2
    configs = args.config or CONFIGS
    rows = [bench_config(args.cell, c, repeat, min_time) for c in configs]
    first = first_call(args.cell, configs[0], 1 if args.quick else 5)
    return {"cell": args.cell, "rows": [asdict(r) for r in rows], "first_call": dict(first, config=configs[0]),
            "repeat": repeat, "min_time_s": min_time, "environment": environment()}


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def report(results: dict) -> str:
    """The results as a plain-text table."""
    from .reports import text_table

    rows = []
    for r in results["rows"]:
        speedup = f"{r['numpy_s'] / r['bpttlab_s']:.1f}x" if r["numpy_s"] else "n/a"
        diff = f"{r['max_rel_diff']:.1e}" if r["max_rel_diff"] is not None else "n/a"
        rows.append([str(tuple(r["config"])), _ms(r["bpttlab_s"]), _ms(r["bpttlab_cpu_s"]), _ms(r["numpy_s"]),
                     _ms(r["numpy_cpu_s"]), speedup, diff])
    env, first = results["environment"], results["first_call"]
    return "\n".join([
        f"bpttlab bench: {results['cell']} tanh, mse (sum), float64, one thread; median of "
        f"{results['repeat']} runs of >= {results['min_time_s']:g} s",
        text_table(["(D, H, O, T, B)", "bpttlab", "(CPU)", "NumPy reference", "(CPU)", "NumPy / bpttlab",
                    "max rel diff"], rows),
        f"fresh process, warm Numba cache, {tuple(first['config'])}: import bpttlab {first['import_s']:.2f} s, "
        f"first bl.bptt {_ms(first['first_call_s'])}",
        f"{env['date']}, Python {env['python']}, NumPy {env['numpy']}, Numba {env['numba']}, {env['cpus']} "
        f"CPUs ({env['machine']}), load average {env['load_average'][0]:.2f}",
    ])


def main(argv: list[str] | None = None) -> int:
    """``bpttlab bench ARGV``; returns the exit status (2 for bad arguments).

    Runs the benchmark in a child process with the variables of :data:`ONE_THREAD` set to 1 when the
    current environment does not set them (they take effect only when the libraries load)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from . import registry

    try:
        registry.cells.get(args.cell, "cell")
    except ValueError as exc:
        print(f"bpttlab bench: error: {exc}", file=sys.stderr)
        return 2
    if any(os.environ.get(k) != v for k, v in ONE_THREAD.items()):
        env = dict(os.environ, **ONE_THREAD)
        return subprocess.run([sys.executable, "-m", "bpttlab.benchmark", *argv], env=env).returncode
    results = run(args)
    print(json.dumps(results, indent=1) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
