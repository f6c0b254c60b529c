"""The batch grader behind ``bpttlab grade SUBMISSIONS... --out DIR``.

For each student notebook:

1. read it (a missing or malformed notebook scores 0 on every exercise, with the reason);
2. find each exercise's cell (a deleted cell, or two cells claiming one exercise, scores 0 on that
   exercise);
3. execute the notebook top to bottom in a fresh kernel inside the sandbox
   (:mod:`~bpttlab.grading.notebook_run`, :mod:`~bpttlab.grading.isolation`), with a time limit per cell
   and one for the whole notebook; if it stops early (a time limit, a dead kernel), the exercise cells
   from there on were never reached and score 0, with the reason;
4. take each reached exercise cell's definitions (:func:`~bpttlab.grading.notebooks.function_source`),
   after those of the code cells above it (their helpers), run the functions in a sandboxed child
   (:mod:`~bpttlab.grading.sandbox`) on the public instances and on hidden ones drawn from the course's
   seed (only each call's inputs enter the sandbox), and diagnose the answers *in the grader's process*,
   against references the notebook never touched.

Each submission's result is signed (:mod:`~bpttlab.grading.signing`) and written atomically to
``DIR/results/STUDENT.json`` as soon as it is done, with its feedback page ``DIR/feedback/STUDENT.html``,
and the gradebook ``DIR/gradebook.csv`` / ``DIR/gradebook.json`` (:mod:`~bpttlab.grading.gradebook`) is
rewritten from all results. A rerun skips submissions whose signed result matches the notebook's content
and the settings, so an interrupted run resumes where it stopped; a result that is not the grader's own
is discarded and its notebook regraded. ``--jobs N`` grades N submissions at a time, each in a worker
process; a worker that dies is replaced and the submission it was grading is retried alone, then
recorded as the cause. Workers die with the grader.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import secrets
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from . import library_use
from .api import get_exercise
from .confine import die_with_parent
from .diagnosis import assess, planned_calls
from .exercise import Exercise
from .feedback import Feedback
from .files import write_atomic
from .gradebook import student_names, write_gradebook
from .instances import hidden_instances, public_instances
from .isolation import Isolation, Limits, isolation
from .notebook_run import execute
from .notebooks import SourceError, definitions, exercise_cells, function_source
from .sandbox import Job, Sandbox
from .signing import authentic, grader_key, signed

#: What every feedback page of a ``--no-sandbox`` run says.
UNSANDBOXED = ("graded without a sandbox (the teacher passed --no-sandbox): the notebook ran with the "
               "grader's rights")


@dataclass(frozen=True)
class Settings:
    """What a grading run depends on (all of it goes into each result's fingerprint).

    Attributes:
        exercises: the exercise ids every submission is graded on, in order.
        seed: the seed of the hidden instances.
        timeout: seconds per notebook cell and per exercise in the sandbox.
        kernel: the kernelspec the notebooks run in.
        notebook_timeout: seconds all cells of a notebook may take together.
        sandbox: whether students' code runs in the OS sandbox (False: ``--no-sandbox``).
        limits: memory, processes, file size and scratch space per submission.
    """

    exercises: tuple[str, ...]
    seed: int
    timeout: float
    kernel: str
    notebook_timeout: float = 600.0
    sandbox: bool = True
    limits: Limits = field(default_factory=Limits)

    def isolation(self) -> Isolation:
        """The backend that runs students' code in this run."""
        return isolation(self.sandbox, self.limits)


# -- files --------------------------------------------------------------------------------------------


def fingerprint(path: Path, settings: Settings) -> str:
    """A hash of the submission's bytes and the settings: a stored result with the same one is current."""
    from .. import __version__

    h = hashlib.sha256(json.dumps([asdict(settings), __version__]).encode())
    try:
        h.update(path.read_bytes())
    except OSError as exc:
        h.update(f"unreadable: {type(exc).__name__}".encode())
    return h.hexdigest()


# -- one submission -----------------------------------------------------------------------------------


def _unreadable(exercises: list[Exercise], status: str, reason: str) -> list[Feedback]:
    return [Feedback(ex, reason=reason, status=status) for ex in exercises]


def _new_record(path: Path, student: str, settings: Settings) -> dict[str, Any]:
    confined = settings.isolation()
    return {"student": student, "submission": str(path), "sandbox": confined.name,
            "memory_limit": confined.memory_enforcement,
            "notes": [] if confined.isolated else [UNSANDBOXED], "fingerprint": fingerprint(path, settings)}


def grade_submission(path: str, settings: Settings, student: str) -> dict[str, Any]:
    """Grade one notebook as ``student``'s; returns its result record (JSON-able)."""
    import nbformat

    p = Path(path)
    exercises = [get_exercise(e) for e in settings.exercises]
    record = _new_record(p, student, settings)
    try:
        text = p.read_text(encoding="utf-8")
        json.loads(text)
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except FileNotFoundError:
        return _finish(record, _unreadable(exercises, "missing-notebook", f"the notebook {p} does not exist"))
    except json.JSONDecodeError as exc:
        reason = (f"the notebook could not be read: it is not valid JSON ({exc.msg}: line {exc.lineno}, column "
                  f"{exc.colno}; was the file cut short or edited by hand?)")
        return _finish(record, _unreadable(exercises, "malformed-notebook", reason))
    except Exception as exc:  # nbformat raises many types for a file that is not a notebook
        reason = f"the notebook could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        return _finish(record, _unreadable(exercises, "malformed-notebook", reason))
    feedback = _grade_notebook(nb, exercises, settings, record["notes"])
    return _finish(record, [feedback[ex.id] for ex in exercises])


def _grade_notebook(nb, exercises: list[Exercise], settings: Settings, notes: list[str]) -> dict[str, Feedback]:
    cells = exercise_cells(nb)
    feedback: dict[str, Feedback] = {}
    located: dict[str, int] = {}
    for ex in exercises:
        found = cells.get(ex.id, [])
        if not found:
            feedback[ex.id] = Feedback(ex, status="missing-cell", reason=(
                f"no cell of the notebook is the exercise cell of {ex.id} (was it deleted, or its "
                f"%%bptt exercise {ex.id} line removed?)"))
        elif len(found) > 1:
            feedback[ex.id] = Feedback(ex, status="duplicate-cells", reason=(
                f"cells {', '.join(str(i + 1) for i in found)} all claim exercise {ex.id}; keep exactly one"))
        else:
            located[ex.id] = found[0]
    if not located:
        return feedback
    confined = settings.isolation()
    run = execute(nb, confined, settings.timeout, settings.notebook_timeout, settings.kernel)
    if run.reason:
        notes.append(run.reason)
    if run.failed_cells:
        notes.append(f"cells that raised an error: {', '.join(str(i + 1) for i in run.failed_cells)}")
    notes.extend(run.limits_hit)
    jobs, plans = [], {}
    for ex in exercises:
        if ex.id not in located:
            continue
        index = located[ex.id]
        if run.stopped_at is not None and index >= run.stopped_at:
            where = "in this exercise's cell" if index == run.stopped_at else "before this exercise's cell"
            feedback[ex.id] = Feedback(ex, status=run.status, reason=f"{run.reason}, {where}")
            continue
        try:
            source = function_source(_cell_source(nb.cells[index]), ex.function)
        except SourceError as exc:
            feedback[ex.id] = Feedback(ex, status=exc.status, reason=str(exc))
            continue
        instances = public_instances(ex) + hidden_instances(ex, settings.seed)
        calls = planned_calls(ex, instances)
        plans[ex.id] = (instances, calls)
        prelude = [(f"<cell {i + 1}>", definitions(_cell_source(cell))) for i, cell in enumerate(nb.cells[:index])
                   if cell.get("cell_type") == "code"]
        jobs.append(Job(ex.id, source, ex.function, [inputs for _, _, inputs in calls], prelude))
    runs = Sandbox(settings.timeout, confined).run(jobs)
    for ex in exercises:
        if ex.id not in plans:
            continue
        result = runs[ex.id]
        if result.failure is not None:
            feedback[ex.id] = Feedback(ex, status=result.failure, reason=result.reason)
            continue
        instances, calls = plans[ex.id]
        table = {(i, n): outcome for (i, n, _), outcome in zip(calls, result.outcomes)}
        job = next(j for j in jobs if j.exercise == ex.id)  # hook (rules): the library is not the answer
        library = library_use.in_sources([src for _, src in job.prelude] + [job.source], ex.function)
        feedback[ex.id] = Feedback(ex, assess(ex, instances, lambda i, n: table[i, n], library=library))
    return feedback


def _cell_source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _finish(record: dict[str, Any], feedback: list[Feedback]) -> dict[str, Any]:
    record["exercises"] = [fb.to_dict() for fb in feedback]
    record["score"] = round(sum(fb.score for fb in feedback), 6)
    record["max_score"] = sum(fb.points for fb in feedback)
    return record


# -- the run ------------------------------------------------------------------------------------------


def feedback_page(record: dict[str, Any]) -> str:
    """The student's feedback file: total, notes, and each exercise's feedback block."""
    name = html.escape(record["student"])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in record["notes"])
    blocks = "\n".join(ex["html"] for ex in record["exercises"])
    memory = record.get("memory_limit")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Feedback for {name}</title></head>"
            f"<body style='font-family:sans-serif;max-width:60em'>\n<h1>{name}: {record['score']:.3g} / "
            f"{record['max_score']:g} points</h1>\n" + (f"<ul>{notes}</ul>\n" if notes else "")
            + f"{blocks}\n" + (f"<p><small>Memory limit: {html.escape(memory)}</small></p>\n" if memory else "")
            + "</body></html>\n")


def load_results(out: Path, key: bytes) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Stored results by student, and the students whose stored result is not the grader's own (changed,
    or written by someone else: not trusted, see :mod:`~bpttlab.grading.signing`). Unreadable files are
    ignored: they will be regraded."""
    found, rejected = {}, []
    for path in sorted((out / "results").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if authentic(record, key) and record.get("student") == path.stem:
            found[record["student"]] = record
        else:
            rejected.append(path.stem)
    return found, rejected


def stored_seed(out: Path, seed: int | None) -> int:
    """The run's hidden-instance seed: ``seed`` if given, else the one stored in OUT/grading.json, else a
    fresh random one (stored there, so a rerun uses it again)."""
    settings_file = out / "grading.json"
    stored = None
    if settings_file.exists():
        try:
            stored = int(json.loads(settings_file.read_text())["seed"])
        except (ValueError, KeyError, TypeError):
            stored = None
    chosen = seed if seed is not None else stored if stored is not None else secrets.randbits(63)
    if chosen != stored:
        write_atomic(settings_file, json.dumps({"seed": chosen}) + "\n")
    return chosen


def record_settings(out: Path, confined: Isolation) -> None:
    """Keep in OUT/grading.json how students' code ran (the sandbox, or ``--no-sandbox``), its limits, and
    how the memory limit was enforced (per submission, or per process only and why)."""
    settings_file = out / "grading.json"
    stored = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    stored.update(sandbox=confined.name, isolated=confined.isolated, limits=asdict(confined.limits),
                  memory_enforcement=confined.memory_enforcement)
    write_atomic(settings_file, json.dumps(stored) + "\n")


def _worker_started(grader: int) -> None:
    """In each worker process: die with the grader (a killed grader leaves no worker behind)."""
    die_with_parent()
    if os.getppid() != grader:  # the grader died before the line above
        os._exit(1)


def _spawnable_main() -> None:
    """Let multiprocessing's "spawn" start workers from an IPython session too: it reads
    ``__main__.__spec__``, and the module IPython installs as ``__main__`` (a notebook's, a shell's) has
    none. ``None`` is what a plain interpreter's ``__main__`` holds, and tells spawn to leave it alone."""
    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        main.__spec__ = None


def killed_record(path: Path, student: str, settings: Settings) -> dict[str, Any]:
    """The result of a submission whose grading process was killed even when it was graded alone."""
    exercises = [get_exercise(e) for e in settings.exercises]
    reason = ("the process grading this notebook was killed, twice, the second time while grading nothing "
              "else (the notebook killed it, or used up the machine's memory)")
    return _finish(_new_record(path, student, settings), _unreadable(exercises, "grader-killed", reason))


def grade_all(todo: list[Path], names: dict[Path, str], settings: Settings, jobs: int,
              finished: Callable[[dict[str, Any]], None], failed: Callable[[Path, Exception], None]) -> None:
    """Grade ``todo`` in ``jobs`` worker processes, calling ``finished`` with each result.

    A worker that dies breaks the pool: a new pool is made, and the submissions that were being graded
    are retried one at a time; one that breaks the pool again, graded alone, is recorded with
    :func:`killed_record`."""
    _spawnable_main()
    pending, suspects = deque(todo), deque()
    while pending or suspects:
        running: dict[Any, Path] = {}
        broken: list[Path] = []
        alone = False  # a suspect is being graded alone
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_started,
                                 initargs=(os.getpid(),)) as pool:
            while (pending or suspects or running) and not broken:
                if suspects and not running:
                    path, alone = suspects.popleft(), True
                    running[pool.submit(grade_submission, str(path), settings, names[path])] = path
                while pending and not suspects and len(running) < jobs:
                    path = pending.popleft()
                    running[pool.submit(grade_submission, str(path), settings, names[path])] = path
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    path = running.pop(future)
                    try:
                        finished(future.result())
                    except BrokenProcessPool:
                        broken.append(path)
                    except Exception as exc:
                        failed(path, exc)
                if not running and not broken:
                    alone = False
            broken += running.values()
        for path in broken:
            if alone:
                finished(killed_record(path, names[path], settings))
            else:
                suspects.append(path)


def run(submissions: list[str], out: Path, settings: Settings, jobs: int = 1, force: bool = False,
        log: Callable[[str], None] = print) -> int:
    """Grade every submission not graded yet (or all, with ``force``).

    The gradebook covers every trusted result in ``out``, so submissions graded in earlier runs stay in
    it; a result that is not the grader's own is left out, and its submission regraded if it is given.

    Returns:
        the number of submissions the grader itself failed on (0 when every one has a result).

    Raises:
        ValueError: two submissions have the same file name (the student's name).
    """
    paths = [Path(s) for s in submissions]
    names = student_names(paths)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("**/.*.tmp"):  # left by a run killed while writing (see write_atomic)
        stale.unlink(missing_ok=True)
    key = grader_key(out)
    record_settings(out, settings.isolation())
    results, rejected = load_results(out, key)
    given = set(names.values())
    for student in rejected:
        log(f"{student}: the stored result is not this grader's own (changed, or written by someone else); "
            + ("it is regraded" if student in given else "it is left out of the gradebook"))
    todo = []
    for path in paths:
        student = names[path]
        old = results.get(student)
        if not force and old is not None and old.get("fingerprint") == fingerprint(path, settings):
            log(f"{student}: already graded ({old['score']:.3g} / {old['max_score']:g}), skipped")
            continue
        todo.append(path)
    failures = 0

    def finished(record: dict[str, Any]) -> None:
        if record["student"] in rejected:
            record["notes"].append("a stored result for this notebook had been changed outside the grader (or "
                                   "was not written by it); it was discarded and the notebook graded again")
        write_atomic(out / "results" / f"{record['student']}.json", json.dumps(signed(record, key), indent=1) + "\n")
        write_atomic(out / "feedback" / f"{record['student']}.html", feedback_page(record))
        results[record["student"]] = record
        write_gradebook(out, list(results.values()))
        log(f"{record['student']}: {record['score']:.3g} / {record['max_score']:g}")

    def failed(path: Path, exc: Exception) -> None:  # the grader's own failure: report it, keep the others
        nonlocal failures
        failures += 1
        print(f"bpttlab grade: could not grade {path}: {type(exc).__name__}: {exc}", file=sys.stderr)

    start = time.perf_counter()
    grade_all(todo, names, settings, jobs, finished, failed)
    write_gradebook(out, list(results.values()))
    log(f"graded {len(todo) - failures} submission(s) in {time.perf_counter() - start:.1f} s; "
        f"gradebook: {out / 'gradebook.csv'}")
    return failures
