"""How long the stepper makes a student wait: building it, one forward event, the backward events.

For each size (H, T) of an Elman network on one sequence, in this process after one untimed engine call
(Numba kernels from the on-disk cache):

* build: ``Stepper(net, xs, ys)`` (the engine's pass, the state gradients, the first drawing);
* forward: one ``Next`` in the forward phase (redraw only);
* backward k=T and k=1: moving to the backward event of the last and of the first copy, with SymPy's term
  of that copy derived afresh (the derivation cache is cleared before each repeat; the unrolled graph is
  built in the first repeat only, which the maximum shows), or its refusal where the copy is beyond what
  :func:`bpttlab.derive` serves (the widget then shows the reason).

Prints a Markdown table of medians (min-max) in milliseconds.

    python benchmarks/bench_widgets.py --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import bpttlab as bl
from bpttlab.widgets import Stepper, symbolic_term

SIZES = ((1, 12), (2, 5), (3, 6), (3, 20), (8, 20), (16, 50))


def _ms(samples: list[float]) -> str:
    return f"{1e3 * statistics.median(samples):.1f} ({1e3 * min(samples):.1f}-{1e3 * max(samples):.1f})"


def _case(H: int, T: int):
    net = bl.make("elman", n_in=1, n_hidden=H, n_out=1, activation="tanh", seed=0)
    rng = np.random.default_rng(1)
    return net, rng.normal(size=(T, 1)), rng.normal(size=(T, 1))


def _shown(s: Stepper) -> str:
    return "no" if "not shown" in s.symbolic.value else "yes"


def measure(H: int, T: int, repeat: int) -> list[str]:
    """The table row of one size: medians of the four timings and whether each term was shown."""
    net, xs, ys = _case(H, T)
    times: list[list[float]] = [[], [], [], []]
    shown = ["", ""]
    for _ in range(repeat):
        symbolic_term._derivation.cache_clear()
        t0 = time.perf_counter()
        s = Stepper(net, xs, ys)
        t1 = time.perf_counter()
        s.next_button.click()
        t2 = time.perf_counter()
        s.slider.value = T + 1                  # backward k=T
        t3 = time.perf_counter()
        shown[0] = _shown(s)
        s.slider.value = 2 * T                  # backward k=1
        t4 = time.perf_counter()
        shown[1] = _shown(s)
        assert s.errors.outputs == (), s.errors.outputs
        for column, (a, b) in zip(times, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
            column.append(b - a)
    return [str(H), str(T), _ms(times[0]), _ms(times[1]), f"{_ms(times[2])}, {shown[0]}",
            f"{_ms(times[3])}, {shown[1]}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    net, xs, ys = _case(2, 3)
    bl.bptt(net, xs, ys)                         # load the Numba kernels (untimed)
    print("| H | T | build (ms) | forward Next (ms) | backward k=T (ms), term shown | backward k=1 (ms), term shown |")
    print("|---|---|---|---|---|---|")
    for H, T in SIZES:
        print("| " + " | ".join(measure(H, T, args.repeat)) + " |", flush=True)


if __name__ == "__main__":
    main()
