"""The engine benchmark's gradient in PyTorch (CPU, nn.RNN with autograd) and JAX (jit, lax.scan).

The same problem as ``bpttlab bench`` at the same sizes (D, H, O, T, B): an Elman tanh network
(h_t = tanh(W h_{t-1} + U x_t + b), o_t = V h_t + c), mse loss 0.5 sum ||o_t - y_t||^2 over time and
batch, float64, one thread; one timed call = forward pass, loss, backward pass and every parameter
gradient. Times are medians over repeated runs, wall-clock and CPU, timeit-style (as in
``bpttlab.benchmark.median_time``, repeated here because this script runs without bpttlab). The two
frameworks' gradients are compared with each other on the same weights before timing.

Neither framework is a dependency of bpttlab, and no test needs this script. Set up its own
environment (Python 3.11) once::

    python3.11 -m venv /tmp/venv-fw
    /tmp/venv-fw/bin/pip install torch==2.13.0 numpy jax jaxlib

and run::

    /tmp/venv-fw/bin/python benchmarks/bench_frameworks.py [--quick] [--json]

The script pins one thread itself: it sets OMP/MKL/OpenBLAS thread counts and XLA's CPU flags before
importing the frameworks, and calls ``torch.set_num_threads(1)``.
"""
from __future__ import annotations

import os

os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                           "intra_op_parallelism_threads=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402  (the thread settings above must come before the frameworks load)
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

CONFIGS = ((1, 3, 1, 10, 1), (4, 16, 4, 100, 1), (8, 64, 8, 1000, 1), (16, 256, 16, 200, 1), (8, 64, 8, 200, 32))


def problem(config, seed: int = 0):
    """Weights (scaled normal, like ``bl.make``'s default), inputs (T, B, D) and targets (T, B, O)."""
    D, H, O, T, B = config
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(H, H)) / np.sqrt(H), "U": rng.normal(size=(H, D)) / np.sqrt(D),
              "b": np.zeros(H), "V": rng.normal(size=(O, H)) / np.sqrt(H), "c": np.zeros(O)}
    return params, rng.normal(size=(T, B, D)), rng.normal(size=(T, B, O))


def _seconds(fn, n: int) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return time.perf_counter() - w0, time.process_time() - c0


def median_time(fn, repeat: int, min_time: float) -> tuple[float, float]:
    """Median wall-clock and CPU (all threads of the process) seconds per call over ``repeat`` runs of n
    calls, n the first of 1, 2, 5, 10, ... for which a run lasts ``min_time`` seconds."""
    n, scale = 0, 1
    while not n:
        n = next((k for k in (scale, 2 * scale, 5 * scale) if _seconds(fn, k)[0] >= min_time), 0)
        scale *= 10
    runs = [_seconds(fn, n) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs) / n, statistics.median(c for _, c in runs) / n


def torch_gradient(params, xs, ys):
    """A function computing the gradient with nn.RNN + nn.Linear and autograd, and the gradient it gives
    (numpy arrays named W, U, b, V, c; nn.RNN's two biases both play b)."""
    import torch

    torch.set_num_threads(1)
    H, D = params["U"].shape
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", dtype=torch.float64)
    out = torch.nn.Linear(H, params["V"].shape[0], dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.from_numpy(params["W"]))
        rnn.weight_ih_l0.copy_(torch.from_numpy(params["U"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(torch.from_numpy(params["V"]))
        out.bias.copy_(torch.from_numpy(params["c"]))
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    weights = [rnn.weight_hh_l0, rnn.weight_ih_l0, rnn.bias_ih_l0, out.weight, out.bias]

    def grad():
        for w in (*weights, rnn.bias_hh_l0):
            w.grad = None
        hs, _ = rnn(x)
        loss = 0.5 * ((out(hs) - y) ** 2).sum()
        loss.backward()

    grad()
    return grad, {k: w.grad.numpy().copy() for k, w in zip("W U b V c".split(), weights)}


def jax_gradient(params, xs, ys):
    """A function computing the gradient with jax.grad of a lax.scan, jitted, and the gradient it gives."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def loss(p, x, y):
        def step(h, xt):
            h = jnp.tanh(h @ p["W"].T + xt @ p["U"].T + p["b"])
            return h, h

        _, hs = jax.lax.scan(step, jnp.zeros((x.shape[1], p["W"].shape[0])), x)
        return 0.5 * jnp.sum((hs @ p["V"].T + p["c"] - y) ** 2)

    g = jax.jit(jax.grad(loss))
    p = {k: jnp.asarray(v) for k, v in params.items()}
    x, y = jnp.asarray(xs), jnp.asarray(ys)

    def grad():
        jax.block_until_ready(g(p, x, y))

    return grad, {k: np.asarray(v) for k, v in g(p, x, y).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of >= 0.02 s (default 7 of 0.2 s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args()
    repeat, min_time = (3, 0.02) if args.quick else (7, 0.2)
    rows = []
    for config in CONFIGS:
        params, xs, ys = problem(config)
        torch_fn, torch_g = torch_gradient(params, xs, ys)
        jax_fn, jax_g = jax_gradient(params, xs, ys)
        diff = max(float(np.max(np.abs(torch_g[k] - jax_g[k])) / np.max(np.abs(jax_g[k]))) for k in jax_g)
        if diff > 1e-10:
            raise RuntimeError(f"PyTorch and JAX disagree at {config}: relative difference {diff:.1e}")
        torch_s, torch_cpu_s = median_time(torch_fn, repeat, min_time)
        jax_s, jax_cpu_s = median_time(jax_fn, repeat, min_time)
        rows.append({"config": config, "torch_s": torch_s, "torch_cpu_s": torch_cpu_s, "jax_s": jax_s,
                     "jax_cpu_s": jax_cpu_s, "max_rel_diff": diff})
    if args.json:
        import jax
        import torch

        print(json.dumps({"rows": rows, "torch": torch.__version__, "jax": jax.__version__,
                          "load_average": list(os.getloadavg())}, indent=1))
        return
    print("| (D, H, O, T, B) | PyTorch | (CPU) | JAX | (CPU) |\n| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        times = " | ".join(f"{r[k] * 1e3:.3f} ms" for k in ("torch_s", "torch_cpu_s", "jax_s", "jax_cpu_s"))
        print(f"| {tuple(r['config'])} | {times} |")


if __name__ == "__main__":
    main()
