"""Peak memory and time of checkpointed BPTT against stored-everything BPTT at T = 100,000, H = 64.

Run: ``python benchmarks/checkpoint_memory.py [--T 100000] [--repeat N]``. For each cell, full BPTT with
D=8, O=8, B=1, mse, plain ``bl.bptt`` against ``checkpoint="sqrt"``:

* traced peak: the peak of what the call allocates through Python and NumPy (``tracemalloc``; the inputs
  exist before the call and are not counted);
* resident peak: how much the peak resident set size of a fresh process (``VmHWM`` in
  ``/proc/self/status``, Linux) grows during the call, which also counts what the Numba kernels allocate
  and the engine's reusable work buffers (``ru_maxrss`` would not do: Linux carries it over from the
  parent process);
* time: the best of N calls (tracemalloc off), wall clock and process CPU time.

Then, for the LSTM, the same as the number n of stored states varies.
"""
from __future__ import annotations

import os

# one BLAS thread, as BENCHMARKS.md says: set before NumPy loads OpenBLAS (on a busy 2-core machine its
# threads wait for each other, and a 64 x 64 product can take 100 times longer)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import subprocess
import sys
import tracemalloc

import numpy as np

import bpttlab as bl
from bpttlab.engine.checkpoint import n_checkpoints
from gated_cells import best_of

D, H, O = 8, 64, 8
CELLS = ("elman", "jordan", "gru", "lstm")


def data(T: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(T, D)), rng.normal(size=(T, O))


def peak_mib(fn) -> float:
    """The peak traced allocation of fn(), in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def resident_growth_mib(cell: str, checkpoint, T: int) -> float:
    """The growth of the peak resident set of a fresh process during one call, in MiB."""
    out = subprocess.run([sys.executable, __file__, "--child", cell, str(checkpoint), "--T", str(T)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the child process for {cell}, checkpoint={checkpoint} failed:\n{out.stderr}")
    return float(out.stdout)


def peak_resident_kib() -> int:
    """The peak resident set size of this process so far (VmHWM), in KiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def child(cell: str, checkpoint: str, T: int) -> None:
    """Print the resident growth of one call (run in a fresh process by :func:`resident_growth_mib`)."""
    xs, ys = data(T)
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
    ckpt = None if checkpoint == "None" else checkpoint if checkpoint == "sqrt" else int(checkpoint)
    bl.bptt(net, xs[:10], ys[:10], checkpoint=ckpt)  # loads the kernels
    before = peak_resident_kib()
    bl.bptt(net, xs, ys, checkpoint=ckpt)
    print((peak_resident_kib() - before) / 1024)


def ratio(a: float, b: float) -> str:
    return f"{b / a:.3f}" if a > 0 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("CELL", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    T = args.T
    if args.child:
        child(*args.child, T)
        return
    xs, ys = data(T)
    print(f"T={T}, D={D}, H={H}, O={O}, B=1; checkpoint='sqrt' stores {n_checkpoints('sqrt', T)} "
          "states\n")
    print("| cell | traced peak, plain / checkpointed (MiB) | ratio | resident peak, plain / checkpointed (MiB) "
          "| ratio | wall time, plain / checkpointed (s) | ratio | CPU time, plain / checkpointed (s) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    nets = {}
    for cell in CELLS:
        net = nets[cell] = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=0)
        bl.bptt(net, xs[:10], ys[:10], checkpoint=2)
        plain = bl.bptt(net, xs, ys)
        ckpt = bl.bptt(net, xs, ys, checkpoint="sqrt")
        err = max(float(np.abs(ckpt.grads[k] - g).max() / np.abs(g).max()) for k, g in plain.grads.items())
        assert err < 1e-12, (cell, err)
        del plain, ckpt
        m = [peak_mib(lambda c=c: bl.bptt(net, xs, ys, checkpoint=c)) for c in (None, "sqrt")]
        r = [resident_growth_mib(cell, c, T) for c in (None, "sqrt")]
        t = [best_of(lambda c=c: bl.bptt(net, xs, ys, checkpoint=c), args.repeat) for c in (None, "sqrt")]
        print(f"| {cell} | {m[0]:.1f} / {m[1]:.2f} | {ratio(*m)} | {r[0]:.1f} / {r[1]:.1f} | {ratio(*r)} | "
              f"{t[0][0] / 1e3:.3f} / {t[1][0] / 1e3:.3f} | {t[1][0] / t[0][0]:.2f} | "
              f"{t[0][1] / 1e3:.3f} / {t[1][1] / 1e3:.3f} | {t[1][1] / t[0][1]:.2f} |", flush=True)
    print("\nLSTM, as the number n of stored states varies (segments of ceil(T/n) copies; the first T - T/n "
          "copies are run forward twice)\n")
    print("| n | traced peak (MiB) | resident peak (MiB) | wall time (s) | CPU time (s) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in sorted({1, 10, 100, n_checkpoints("sqrt", T), 1000, 10_000, T}):
        m = peak_mib(lambda: bl.bptt(nets["lstm"], xs, ys, checkpoint=n))
        r = resident_growth_mib("lstm", n, T)
        t = best_of(lambda: bl.bptt(nets["lstm"], xs, ys, checkpoint=n), args.repeat)
        print(f"| {n} | {m:.2f} | {r:.1f} | {t[0] / 1e3:.3f} | {t[1] / 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
