"""What the per-submission memory cgroup costs: starting a graded-function sandbox with and without one.

``python benchmarks/bench_cgroup.py --repeat 20``: runs one trivial graded function in a fresh bubblewrap
sandbox (:class:`bpttlab.grading.sandbox.Sandbox`, the child every submission gets) ``--repeat`` times
with its cgroup and as many times without, alternating, so that a change of load falls on both; prints
the median wall time of each and the difference, which is what each sandbox of a submission (its
kernel's and its functions') pays for the cgroup: making it, the launcher that enters it, and removing it.
Needs root or a delegated cgroup v2 subtree (it says so otherwise) and bubblewrap.
"""
from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager

from bpttlab.grading import cgroups
from bpttlab.grading.isolation import Bubblewrap, Limits
from bpttlab.grading.sandbox import Job, Sandbox


class WithoutCgroup(Bubblewrap):
    """The bubblewrap sandbox with the per-process limits only."""

    @contextmanager
    def cgroup(self):
        yield None


def seconds(isolation: Bubblewrap) -> float:
    job = Job("twice", "def f(x):\n    return 2 * x\n", "f", [{"x": 1.0}])
    start = time.perf_counter()
    runs = Sandbox(60.0, isolation).run([job])
    elapsed = time.perf_counter() - start
    assert runs["twice"].outcomes == [{"value": 2.0}], runs["twice"]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="sandboxes started in each mode (default 20)")
    args = parser.parse_args()
    found = cgroups.enforcement()
    if found.place is None:
        raise SystemExit(f"no cgroup here: {found}")
    with_cgroup, without = Bubblewrap(Limits()), WithoutCgroup(Limits())
    seconds(with_cgroup), seconds(without)  # warm the page cache for both
    timed: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(args.repeat):
        timed["with"].append(seconds(with_cgroup))
        timed["without"].append(seconds(without))
    medians = {mode: statistics.median(t) for mode, t in timed.items()}
    print(f"memory limit: {found}")
    for mode, values in timed.items():
        print(f"{mode} cgroup: median {1000 * medians[mode]:.0f} ms (min {1000 * min(values):.0f}, "
              f"max {1000 * max(values):.0f}) over {len(values)} sandboxes")
    print(f"the cgroup costs {1000 * (medians['with'] - medians['without']):+.0f} ms per sandbox")


if __name__ == "__main__":
    main()
