"""Peak memory and time of checkpointed BPTT against stored-everything BPTT at T = 100,000, H = 64.

Run: ``python benchmarks/checkpoint_memory.py [--T 100000] [--repeat N]``. For each cell, full BPTT with
D=8, O=8, B=1, mse: the peak of the memory the call allocates (``tracemalloc``: NumPy arrays and Python
objects, not the inputs, which exist before the call) and the best of N wall-clock times (measured with
tracemalloc off), for plain ``bl.bptt`` and for ``checkpoint="sqrt"``; then, for the LSTM, the same as
the number of checkpoints n varies.
"""
from __future__ import annotations

import argparse
import tracemalloc

import numpy as np

import bpttlab as bl
from bpttlab.checkpoint import n_checkpoints
from gated_cells import best_of

D, H, O = 8, 64, 8


def peak_mib(fn) -> float:
    """The peak traced allocation of fn(), in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    T = args.T
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(T, D)), rng.normal(size=(T, O))
    print(f"T={T}, D={D}, H={H}, O={O}, B=1; checkpoint='sqrt' stores {n_checkpoints('sqrt', T)} "
          "states\n")
    print("| cell | plain peak (MiB) | checkpointed peak (MiB) | memory ratio | plain time (s) | "
          "checkpointed time (s) | time ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    nets = {}
    for cell in ("elman", "jordan", "gru", "lstm"):
        net = nets[cell] = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
        bl.bptt(net, xs[:10], ys[:10], checkpoint=2)
        plain = bl.bptt(net, xs, ys)
        ckpt = bl.bptt(net, xs, ys, checkpoint="sqrt")
        err = max(float(np.abs(ckpt.grads[k] - g).max() / np.abs(g).max()) for k, g in plain.grads.items())
        assert err < 1e-12, (cell, err)
        del plain, ckpt
        m_plain = peak_mib(lambda: bl.bptt(net, xs, ys))
        m_ckpt = peak_mib(lambda: bl.bptt(net, xs, ys, checkpoint="sqrt"))
        t_plain = best_of(lambda: bl.bptt(net, xs, ys), args.repeat) / 1e3
        t_ckpt = best_of(lambda: bl.bptt(net, xs, ys, checkpoint="sqrt"), args.repeat) / 1e3
        print(f"| {cell} | {m_plain:.1f} | {m_ckpt:.2f} | {m_ckpt / m_plain:.4f} | {t_plain:.3f} | {t_ckpt:.3f} "
              f"| {t_ckpt / t_plain:.2f} |")
    print("\nLSTM, as the number n of stored states varies (segments of ceil(T/n) copies; the first T - T/n "
          "copies are run forward twice)\n")
    print("| n | peak (MiB) | time (s) |")
    print("| ---: | ---: | ---: |")
    for n in (1, 10, 100, n_checkpoints("sqrt", T), 1000, 10_000, T):
        m = peak_mib(lambda: bl.bptt(nets["lstm"], xs, ys, checkpoint=n))
        t = best_of(lambda: bl.bptt(nets["lstm"], xs, ys, checkpoint=n), args.repeat) / 1e3
        print(f"| {n} | {m:.2f} | {t:.3f} |")


if __name__ == "__main__":
    main()
