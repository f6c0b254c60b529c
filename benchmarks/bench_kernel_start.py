"""Time from starting a kernel to the first gradient printed, with a warm Numba cache.

Run: ``python benchmarks/bench_kernel_start.py [--repeat N]`` (the ``bpttlab`` kernelspec must be
installed: ``bpttlab kernel install --sys-prefix``). For each kernel, one untimed start fills the Numba
cache; then, N times: start the kernel with jupyter_client (``start_new_kernel``, which returns once the
kernel answers ``kernel_info``), at once send the first cell, which creates an Elman network and prints
its BPTT gradients per time step (``%bptt grad``), and stop the clock when that output arrives. The
stock ``python3`` kernel runs ``%load_ext bpttlab`` in the same cell. Prints a Markdown table of the
median (and min-max) of: kernel ready, first gradient printed, and the CPU time the kernel process had
used by then (user + system, from /proc, Linux), which a busy machine inflates much less than the wall
clock.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from jupyter_client.manager import start_new_kernel

FIRST_CELL = """import numpy as np
%bptt new net elman --in 1 --hidden 3 --out 1 --seed 0
%bptt grad net np.ones((5,1)) np.zeros((5,1))"""

KERNELS = {"bpttlab": FIRST_CELL, "python3": "%load_ext bpttlab\n" + FIRST_CELL}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_to_first_gradient(kernel: str, cell: str) -> tuple[float, float, float]:
    """Seconds from the start to the kernel being ready and to the gradient table being printed, and the
    kernel's CPU seconds at that moment."""
    t0 = time.perf_counter()
    km, kc = start_new_kernel(kernel_name=kernel, startup_timeout=120)
    ready = time.perf_counter() - t0
    pid = km.provisioner.process.pid
    printed = cpu = None

    def hook(msg):
        nonlocal printed, cpu
        if msg["header"]["msg_type"] == "execute_result" and printed is None:
            printed = time.perf_counter() - t0
            cpu = cpu_seconds(pid)

    try:
        reply = kc.execute_interactive(cell, output_hook=hook, timeout=300)
        if reply["content"]["status"] != "ok" or printed is None:
            raise RuntimeError(f"the first cell failed on kernel {kernel}: {reply['content']}")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return ready, printed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed starts per kernel (default 7)")
    args = parser.parse_args()
    print("| kernel | kernel ready (s) | first gradient printed (s) | kernel CPU time by then (s) |")
    print("|---|---|---|---|")
    for kernel, cell in KERNELS.items():
        start_to_first_gradient(kernel, cell)  # fills the Numba cache if it is cold
        runs = [start_to_first_gradient(kernel, cell) for _ in range(args.repeat)]
        cols = []
        for i in (0, 1, 2):
            values = [r[i] for r in runs]
            cols.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"| {kernel} | {cols[0]} | {cols[1]} | {cols[2]} |", flush=True)


if __name__ == "__main__":
    main()
