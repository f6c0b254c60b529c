"""Grading throughput: ``bpttlab grade`` on many submissions of one chapter, and where the time goes.

Run: ``python benchmarks/bench_throughput.py [--chapter workbooks/03-full-bptt.ipynb] [--submissions 100]
[--jobs 2] [--sample 3] [--kernel NAME] [-- EXTRA GRADE ARGUMENTS]``.

1. **Throughput.** The chapter's teacher notebook, every exercise answered, is copied ``--submissions``
   times (student_001, ...) and graded by one ``bpttlab grade --jobs N`` run on the chapter's exercises
   with a fixed seed (and whatever follows ``--``, e.g. the sandbox's options), timed from start to
   end. Prints submissions per minute.
2. **Breakdown**, on ``--sample`` submissions graded one at a time in this process, confined as the
   grader confines them (unless ``--no-sandbox`` follows ``--``): *kernel start* (a one-cell notebook run
   in a fresh kernel), *execution* (the notebook run top to bottom, less the kernel start), and *grading*
   (the rest of
   :func:`bpttlab.grading.batch.grade_submission`: reading, the sandbox, the references, the diagnosis).
   The shares are per submission; with ``--jobs N`` they overlap N at a time.

Prints a Markdown table and a last line of JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261206


def exercise_ids(chapter: Path) -> list[str]:
    import nbformat

    from bpttlab.grading.notebooks import exercise_cells

    return list(exercise_cells(nbformat.read(chapter, as_version=4)))


def kernel_name(name: str | None) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return name or ("bpttlab" if "bpttlab" in specs else "python3")


def throughput(chapter: Path, count: int, jobs: int, kernel: str, exercises: list[str], extra: list[str],
               folder: Path) -> float:
    """Seconds one ``bpttlab grade`` run takes on ``count`` copies of the chapter."""
    subs = []
    for i in range(count):
        path = folder / "subs" / f"student_{i + 1:03d}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(chapter, path)
        subs.append(str(path))
    script = Path(sys.executable).with_name("bpttlab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bpttlab.cli"]
    cmd += ["grade", *subs, "--out", str(folder / "out"), "--jobs", str(jobs), "--kernel", kernel, "--seed",
            str(SEED), "--exercises", ",".join(exercises), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bpttlab grade failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    graded = {row["student"] for row in json.loads((folder / "out" / "gradebook.json").read_text())}
    if len(graded) != count:
        raise SystemExit(f"the gradebook has {len(graded)} students, expected {count}")
    return seconds


def breakdown(chapter: Path, kernel: str, exercises: list[str], sample: int, sandbox: bool) -> dict[str, float]:
    """Median seconds per submission, confined as the grader confines it: kernel start (an empty notebook
    run), execution (the chapter run, less the kernel start), grading (the rest of grade_submission)."""
    import nbformat

    from bpttlab.grading import batch
    from bpttlab.grading.notebook_run import execute

    settings = batch.Settings(exercises=tuple(exercises), seed=SEED, timeout=600.0, kernel=kernel, sandbox=sandbox)
    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])

    def timed(nb) -> float:
        begin = time.perf_counter()
        execute(nb, settings.isolation(), settings.timeout, settings.notebook_timeout, kernel)
        return time.perf_counter() - begin

    starts, runs, totals = [], [], []
    for _ in range(sample):
        starts.append(timed(empty))
        runs.append(timed(nbformat.read(chapter, as_version=4)))
        begin = time.perf_counter()
        batch.grade_submission(str(chapter), settings, "sample")
        totals.append(time.perf_counter() - begin)
    start, run, total = (statistics.median(v) for v in (starts, runs, totals))
    return {"kernel start": start, "execution": max(run - start, 0.0), "grading": max(total - run, 0.0),
            "total": total}


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chapter", type=Path, default=ROOT / "workbooks" / "03-full-bptt.ipynb")
    p.add_argument("--submissions", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--sample", type=int, default=3, help="submissions timed one at a time for the breakdown")
    p.add_argument("--kernel", default=None)
    args = p.parse_args(argv)
    kernel = kernel_name(args.kernel)
    exercises = exercise_ids(args.chapter)
    with tempfile.TemporaryDirectory(prefix="bpttlab-throughput-") as tmp:
        seconds = throughput(args.chapter, args.submissions, args.jobs, kernel, exercises, extra, Path(tmp))
    parts = breakdown(args.chapter, kernel, exercises, args.sample, sandbox="--no-sandbox" not in extra)
    rate = 60.0 * args.submissions / seconds
    load = os.getloadavg()
    print(f"{args.chapter.name}: {args.submissions} submissions, --jobs {args.jobs}, kernel {kernel}, exercises "
          f"{', '.join(exercises)}{', extra: ' + ' '.join(extra) if extra else ''}; load {load[0]:.1f}\n")
    print("| measure | value |\n|---|---|")
    print(f"| whole run | {seconds:.1f} s |\n| throughput | {rate:.1f} submissions/min |")
    for name in ("kernel start", "execution", "grading"):
        print(f"| {name} (median of {args.sample}, per submission) | {parts[name]:.2f} s "
              f"({100 * parts[name] / parts['total']:.0f} %) |")
    print(json.dumps({"chapter": args.chapter.name, "submissions": args.submissions, "jobs": args.jobs,
                      "seconds": seconds, "per_minute": rate, **{k.replace(' ', '_'): v for k, v in parts.items()},
                      "extra": extra, "load": load[0]}))


if __name__ == "__main__":
    main()
