"""The ``bpttlab grade`` and ``bpttlab release`` commands (the CLI dispatches to these).

``bpttlab grade SUBMISSIONS... --out DIR [--jobs N] [--timeout S] [--notebook-timeout S] [--memory SIZE]
[--processes N] [--file-size SIZE] [--no-sandbox] [--seed N] [--exercises IDS] [--assignment NOTEBOOK]
[--kernel NAME] [--force] [--shard I/N]`` grades student notebooks (see :mod:`bpttlab.grading.batch`), each
in an OS sandbox (:mod:`bpttlab.grading.isolation`); where none can be made it stops with the fix, unless
``--no-sandbox``; a shard grades a stable share of them. ``bpttlab grade --merge DIR... --out DIR`` joins
shards (:mod:`bpttlab.grading.shards`). ``bpttlab release TEACHER_NOTEBOOKS... --out DIR [--force]`` writes the
student versions: solutions between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` replaced by a stub,
exercise cells tagged, outputs, attachments and the metadata a student does not need dropped; an exercise
cell without solution markers stops the release (see :func:`bpttlab.grading.notebooks.release`); with
``--format nbgrader``, nbgrader source notebooks instead (:mod:`bpttlab.grading.nbgrader_format`).

Exit status: 0 done, 1 something could not be graded or released, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .isolation import Limits


class _Usage(Exception):
    """A bad argument, reported as ``bpttlab CMD: error: ...`` with exit status 2."""


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}


def _size(text: str) -> int:
    """``2G``, ``512M``, ``1.5GiB``, ``1048576`` -> bytes (K, M, G are powers of 1024)."""
    number = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = number[-1:] if number[-1:] in _UNITS else ""
    try:
        value = float(number[:len(number) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = -1
    if not value >= 2 ** 20:
        raise argparse.ArgumentTypeError(f"expected a size of at least 1M such as 512M or 2G, got {text!r}")
    return int(value)


def add_grade_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``bpttlab grade``."""
    p.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                   help="student notebooks (.ipynb); the file name is the student's name")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where the gradebook, the results and the feedback files go")
    p.add_argument("--jobs", type=_positive(int), default=1, metavar="N",
                   help="submissions graded at the same time (default 1)")
    p.add_argument("--timeout", type=_positive(float), default=30.0, metavar="S",
                   help="seconds allowed per notebook cell and per exercise (default 30)")
    p.add_argument("--notebook-timeout", type=_positive(float), default=600.0, metavar="S",
                   help="seconds allowed for all cells of a notebook together (default 600)")
    p.add_argument("--memory", type=_size, default=Limits.memory, metavar="SIZE",
                   help="memory of a submission (default 2G): of all its kernel's processes together, and "
                        "of all its graded functions' together, where a cgroup can be made (as root, or in a "
                        "delegated cgroup v2 subtree; grading.json records whether one was), and of each "
                        "process on its own in any case")
    p.add_argument("--processes", type=_positive(int), default=Limits.processes, metavar="N",
                   help=f"processes and threads a submission may run at once (default {Limits.processes})")
    p.add_argument("--file-size", type=_size, default=Limits.file_size, metavar="SIZE",
                   help="largest file a submission may write (default 64M)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run students' code without the OS sandbox, with your rights (recorded in grading.json "
                        "and on every feedback page); only for code you trust")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed of the hidden instances (default: a random one, kept in DIR/grading.json)")
    p.add_argument("--exercises", default=None, metavar="IDS",
                   help="comma-separated exercise ids to grade (default: those of --assignment, else every "
                        "exercise found in the submissions)")
    p.add_argument("--assignment", default=None, metavar="NOTEBOOK",
                   help="the notebook handed out: its exercise cells are the exercises to grade")
    p.add_argument("--kernel", default=None, metavar="NAME",
                   help="kernelspec to run the notebooks in (default: bpttlab if installed, else python3)")
    p.add_argument("--force", action="store_true", help="regrade submissions that already have a result")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="grade only shard I of N (a stable share of the students, by a hash of the name); "
                        "needs --seed, the same for every shard")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="instead of grading, join the --out folders of shards 1..N into --out")


def add_release_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``bpttlab release``."""
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="teacher notebooks with solutions")
    p.add_argument("--out", required=True, metavar="DIR", help="where the student versions go")
    p.add_argument("--force", action="store_true", help="overwrite student versions that exist")
    p.add_argument("--format", choices=("student", "nbgrader"), default="student",
                   help="student: notebooks to hand out (default); nbgrader: nbgrader source notebooks "
                        "(put them in the course's source/ASSIGNMENT/ folder)")


def _exercise_ids(args) -> tuple[str, ...]:
    import nbformat

    from .api import exercises, get_exercise
    from .notebooks import exercise_cells

    if args.exercises:
        ids = [e.strip() for e in args.exercises.split(",") if e.strip()]
    elif args.assignment:
        try:
            ids = list(exercise_cells(nbformat.read(args.assignment, as_version=4)))
        except Exception as exc:  # nbformat raises many types for a broken file
            raise _Usage(f"--assignment {args.assignment}: cannot read it ({type(exc).__name__}: {exc})") from None
        if not ids:
            raise _Usage(f"--assignment {args.assignment} has no exercise cells")
    else:
        found = set()
        for sub in args.submissions:
            try:
                found.update(exercise_cells(nbformat.read(sub, as_version=4)))
            except Exception:  # unreadable submissions are graded (and reported) one by one
                continue
        ids = [ex.id for ex in exercises() if ex.id in found]
        if not ids:
            raise _Usage("no exercise cells found in the submissions; name the exercises with --exercises "
                         "or --assignment")
    for ex_id in ids:
        try:
            get_exercise(ex_id)
        except ValueError as exc:
            raise _Usage(str(exc)) from None
    return tuple(dict.fromkeys(ids))


def _kernel(name: str | None) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if name is None:
        return "bpttlab" if "bpttlab" in specs else "python3"
    if name not in specs:
        raise _Usage(f"--kernel {name!r} is not installed; installed kernels: {', '.join(sorted(specs))}")
    return name


def run_grade(args) -> int:
    """``bpttlab grade``: returns the exit status."""
    from . import batch, shards

    from .isolation import SandboxUnavailable

    limits = replace(Limits(), memory=args.memory, processes=args.processes, file_size=args.file_size)
    try:
        if args.merge:
            shards.merge([Path(d) for d in args.merge], Path(args.out))
            return 0
        if not args.submissions:
            raise _Usage("give the submissions to grade (or --merge the shards' folders)")
        shard = shards.parse_shard(args.shard) if args.shard else None
        if shard and args.seed is None:
            raise _Usage("--shard needs --seed N: every shard must grade on the same hidden instances")
        exercise_ids, kernel = _exercise_ids(args), _kernel(args.kernel)
        probe = batch.Settings(exercises=exercise_ids, seed=0, timeout=args.timeout, kernel=kernel,
                               sandbox=not args.no_sandbox, limits=limits)
        probe.isolation().probe()
        settings = replace(probe, seed=batch.stored_seed(Path(args.out), args.seed),
                           notebook_timeout=float(args.notebook_timeout))
        print(f"grading {len(args.submissions)} submission(s) on {', '.join(settings.exercises)} "
              f"(kernel {settings.kernel}, {args.jobs} at a time, {settings.timeout:g} s per cell, "
              f"{settings.notebook_timeout:g} s per notebook, sandbox: {settings.isolation().name}, memory limit: "
              f"{settings.isolation().memory_enforcement})")
        submissions = args.submissions
        if shard:
            shards.record_shard(Path(args.out), shard, settings)
            submissions = shards.select(submissions, shard)
            print(f"shard {shard[0]}/{shard[1]}: {len(submissions)} of {len(args.submissions)} submission(s)")
        failures = batch.run(submissions, Path(args.out), settings, jobs=args.jobs, force=args.force)
    except SandboxUnavailable as exc:
        print(f"bpttlab grade: error: {exc}", file=sys.stderr)
        return 2
    except (_Usage, ValueError) as exc:
        print(f"bpttlab grade: error: {exc}", file=sys.stderr)
        return 2
    return 1 if failures else 0


def run_release(args) -> int:
    """``bpttlab release``: returns the exit status.

    All or nothing: every notebook is released in memory first, and if any of them cannot be (an exercise
    cell without solution markers, unbalanced markers, an unknown exercise, an unreadable file), each
    problem is reported and no file is written.
    """
    import nbformat

    from .api import exercises
    from .nbgrader_format import to_nbgrader
    from .notebooks import release

    convert = to_nbgrader if args.format == "nbgrader" else release

    out = Path(args.out)
    known = {ex.id for ex in exercises()}
    released, problems = [], []
    for name in args.notebooks:
        src = Path(name)
        dest = out / src.name
        if dest.resolve() == src.resolve():
            print(f"bpttlab release: error: {dest} is the teacher notebook itself; choose another --out",
                  file=sys.stderr)
            return 2
        if dest.exists() and not args.force:
            print(f"bpttlab release: error: {dest} exists; pass --force to overwrite", file=sys.stderr)
            return 2
        try:
            released.append((src, dest, convert(nbformat.read(src, as_version=4), known_ids=known, name=src.name)))
        except (OSError, ValueError) as exc:
            problems.append(f"bpttlab release: {src}: {exc}")
    if problems:
        print("\n".join(problems + ["bpttlab release: nothing was written"]), file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for src, dest, student in released:
        nbformat.write(student, dest)
        print(f"released {src} -> {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bpttlab.grading grade|release ...`` (the same commands as ``bpttlab grade|release``)."""
    parser = argparse.ArgumentParser(prog="python -m bpttlab.grading")
    sub = parser.add_subparsers(dest="command", required=True)
    add_grade_arguments(sub.add_parser("grade", help="grade student notebooks"))
    add_release_arguments(sub.add_parser("release", help="make student versions of teacher notebooks"))
    args = parser.parse_args(argv)
    return run_grade(args) if args.command == "grade" else run_release(args)
