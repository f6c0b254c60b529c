"""Batch grading time: ``bpttlab grade`` on 30 student notebooks with ``--jobs 2``.

Run: ``python benchmarks/bench_grading.py [--submissions 30] [--jobs 2] [--repeat 3] [--kernel python3]
[--compare-sandbox]``.

The submissions are copies of the sample notebooks in tests/submissions that run to the end (right
answers, wrong answers, a deleted exercise cell, a student who overwrites the reference, one that prints
megabytes), cycled to the number asked for and named student_01, student_02, ... Each repetition grades
all of them into a fresh output folder (nothing is skipped as already graded), on the exercises grad-V,
grad-W and clip-norm, with a fixed hidden seed, and is timed from the start of the command to its end
(so it includes starting the worker processes and every kernel). Prints a Markdown table of the median
(and min-max) wall time and the time per submission.

By default the students' code runs in the grader's sandbox (bubblewrap). ``--compare-sandbox`` times the
sandbox and ``--no-sandbox`` in the same run, alternating (sandbox, no sandbox, sandbox, ...) so that a
change of load on the machine falls on both, and adds the sandbox's extra time in percent.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "submissions"
MIX = ("correct", "wrong_answers", "deleted_exercise_cell", "overwrites_reference", "prints_megabytes")
EXERCISES = "grad-V,grad-W,clip-norm"


def make_batch(folder: Path, count: int) -> list[Path]:
    """``count`` submissions in ``folder``, cycling through the sample notebooks of :data:`MIX`."""
    paths = []
    for i in range(count):
        path = folder / f"student_{i + 1:02d}.ipynb"
        shutil.copy(SAMPLES / f"{MIX[i % len(MIX)]}.ipynb", path)
        paths.append(path)
    return paths


def grade_once(submissions: list[Path], out: Path, jobs: int, kernel: str, sandbox: bool = True) -> float:
    """Seconds one ``bpttlab grade`` run takes."""
    script = Path(sys.executable).with_name("bpttlab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bpttlab.cli"]
    cmd += ["grade", *map(str, submissions), "--out", str(out), "--jobs", str(jobs), "--kernel", kernel,
            "--seed", "1", "--exercises", EXERCISES] + ([] if sandbox else ["--no-sandbox"])
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bpttlab grade failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernel", default="python3")
    parser.add_argument("--compare-sandbox", action="store_true",
                        help="time the sandbox and --no-sandbox in the same run, alternating")
    args = parser.parse_args(argv)
    modes = (True, False) if args.compare_sandbox else (True,)
    times: dict[bool, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        subs = make_batch(Path(tmp), args.submissions)
        for r in range(args.repeat):
            for mode in modes:
                out = Path(tmp) / f"out-{r}-{'sandbox' if mode else 'none'}"
                times[mode].append(grade_once(subs, out, args.jobs, args.kernel, sandbox=mode))
                print(f"run {r + 1}, {'sandbox' if mode else 'no sandbox'}: {times[mode][-1]:.1f} s", file=sys.stderr)
    print("| submissions | jobs | kernel | sandbox | wall time, median (min-max) | per submission |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        t = times[mode]
        med = statistics.median(t)
        print(f"| {args.submissions} | {args.jobs} | {args.kernel} | {'bubblewrap' if mode else 'none'} | {med:.1f} s "
              f"({min(t):.1f}-{max(t):.1f}) | {med / args.submissions:.2f} s |")
    if args.compare_sandbox:
        extra = statistics.median(times[True]) / statistics.median(times[False]) - 1
        print(f"\nThe sandbox takes {100 * extra:+.1f} % time (medians).")


if __name__ == "__main__":
    main()
