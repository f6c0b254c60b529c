"""The batch grader behind ``bpttlab grade SUBMISSIONS... --out DIR``.

For each student notebook:

1. read it (a missing or malformed notebook scores 0 on every exercise, with the reason);
2. find each exercise's cell (a deleted cell, or two cells claiming one exercise, scores 0 on that
   exercise);
3. execute the notebook top to bottom in a fresh kernel (nbclient), each cell with the time limit; if a
   cell times out or the kernel dies (``os._exit``, a segfault), the exercise cells from there on were
   never reached and score 0, with the reason;
4. take each reached exercise cell's definitions (:func:`~bpttlab.grading.notebooks.function_source`),
   after those of the code cells above it (their helpers), run the functions in the sandbox
   (:mod:`~bpttlab.grading.sandbox`) on the public instances and on hidden ones drawn from the course's
   seed, and diagnose the answers *in the grader's process*, against references the notebook never
   touched.

Each submission's result is written atomically to ``DIR/results/STUDENT.json`` as soon as it is done,
with its feedback page ``DIR/feedback/STUDENT.html``, and the gradebook ``DIR/gradebook.csv`` /
``DIR/gradebook.json`` (student, exercise, score, max_score, diagnosis, detail) is rewritten from all
results. A rerun skips submissions whose result matches the notebook's content and the settings, so an
interrupted run resumes where it stopped. ``--jobs N`` grades N submissions at a time.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from . import library_use
from .api import BATCH_ENV, get_exercise
from .diagnosis import assess, planned_calls
from .exercise import Exercise
from .feedback import Feedback
from .instances import hidden_instances, public_instances
from .notebooks import SourceError, definitions, exercise_cells, function_source
from .sandbox import Job, Sandbox

FIELDS = ("student", "exercise", "score", "max_score", "diagnosis", "detail")


@dataclass(frozen=True)
class Settings:
    """What a grading run depends on (all of it goes into each result's fingerprint).

    Attributes:
        exercises: the exercise ids every submission is graded on, in order.
        seed: the seed of the hidden instances.
        timeout: seconds per notebook cell and per exercise in the sandbox.
        kernel: the kernelspec the notebooks run in.
    """

    exercises: tuple[str, ...]
    seed: int
    timeout: float
    kernel: str


# -- files --------------------------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fingerprint(path: Path, settings: Settings) -> str:
    """A hash of the submission's bytes and the settings: a stored result with the same one is current."""
    from .. import __version__

    h = hashlib.sha256(json.dumps([asdict(settings), __version__]).encode())
    try:
        h.update(path.read_bytes())
    except OSError as exc:
        h.update(f"unreadable: {type(exc).__name__}".encode())
    return h.hexdigest()


def student_name(path: Path) -> str:
    """The student a submission belongs to: the notebook's file name without ``.ipynb``."""
    return path.name[:-len(".ipynb")] if path.name.endswith(".ipynb") else path.name


# -- one submission -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """How far a notebook ran: ``stopped_at`` is the index of the cell where it stopped, or None."""

    stopped_at: int | None = None
    status: str | None = None
    reason: str | None = None
    failed_cells: tuple[int, ...] = ()


def execute(nb, timeout: float, kernel: str) -> Execution:
    """Run a notebook in a fresh kernel (in an empty working directory); never raises for the student's
    code: a timeout or a dead kernel is returned as where and why it stopped.

    The kernel gets ``BPTTLAB_BATCH_GRADING=1``, so ``%%bptt exercise`` cells run without grading
    themselves (the grader does that, in its own process)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    current = {"index": None}

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    with tempfile.TemporaryDirectory(prefix="bpttlab-grade-") as workdir:
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True, startup_timeout=120,
                                shutdown_kernel="immediate", record_timing=False,
                                resources={"metadata": {"path": workdir}}, on_cell_start=on_cell_start)
        try:
            client.execute(env={**os.environ, BATCH_ENV: "1"})
        except CellTimeoutError:
            i = current["index"]
            return Execution(i, "timeout", f"the notebook stopped at cell {i + 1}, which ran longer than "
                                           f"{timeout:g} s (an infinite loop?)", _failed(nb))
        except DeadKernelError:
            i = current["index"]
            return Execution(i, "kernel-died", f"the kernel died while running cell {i + 1} (os._exit, a "
                                               "crash such as a segfault, or memory exhausted)", _failed(nb))
    return Execution(failed_cells=_failed(nb))


def _failed(nb) -> tuple[int, ...]:
    return tuple(i for i, cell in enumerate(nb.cells) if cell.get("cell_type") == "code"
                 and any(o.get("output_type") == "error" for o in cell.get("outputs", [])))


def _unreadable(exercises: list[Exercise], status: str, reason: str) -> list[Feedback]:
    return [Feedback(ex, reason=reason, status=status) for ex in exercises]


def grade_submission(path: str, settings: Settings) -> dict[str, Any]:
    """Grade one notebook; returns its result record (JSON-able)."""
    import nbformat

    p = Path(path)
    exercises = [get_exercise(e) for e in settings.exercises]
    record: dict[str, Any] = {"student": student_name(p), "submission": str(p), "notes": [],
                              "fingerprint": fingerprint(p, settings)}
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
    run = execute(nb, settings.timeout, settings.kernel)
    if run.reason:
        notes.append(run.reason)
    if run.failed_cells:
        notes.append(f"cells that raised an error: {', '.join(str(i + 1) for i in run.failed_cells)}")
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
    runs = Sandbox(settings.timeout).run(jobs)
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
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Feedback for {name}</title></head>"
            f"<body style='font-family:sans-serif;max-width:60em'>\n<h1>{name}: {record['score']:.3g} / "
            f"{record['max_score']:g} points</h1>\n" + (f"<ul>{notes}</ul>\n" if notes else "")
            + f"{blocks}\n</body></html>\n")


def gradebook_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (student, exercise), sorted by student, exercises in grading order."""
    rows = []
    for record in sorted(records, key=lambda r: r["student"]):
        for ex in record["exercises"]:
            rows.append({"student": record["student"], "exercise": ex["exercise"], "score": ex["score"],
                         "max_score": ex["max_score"], "diagnosis": ex["diagnosis"], "detail": ex["detail"]})
    return rows


def write_gradebook(out: Path, records: list[dict[str, Any]]) -> None:
    rows = gradebook_rows(records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "gradebook.csv", buffer.getvalue())
    write_atomic(out / "gradebook.json", json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


def load_results(out: Path) -> dict[str, dict[str, Any]]:
    """Stored results by student (unreadable files are ignored: they will be regraded)."""
    found = {}
    for path in sorted((out / "results").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            found[record["student"]] = record
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


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


def run(submissions: list[str], out: Path, settings: Settings, jobs: int = 1, force: bool = False,
        log: Callable[[str], None] = print) -> int:
    """Grade every submission not graded yet (or all, with ``force``).

    The gradebook covers every result in ``out``, so submissions graded in earlier runs stay in it.

    Returns:
        the number of submissions the grader itself failed on (0 when every one has a result).

    Raises:
        ValueError: two submissions have the same file name (the student's name).
    """
    paths = [Path(s) for s in submissions]
    owners: dict[str, Path] = {}
    for path in paths:
        other = owners.setdefault(student_name(path), path)
        if other != path:
            raise ValueError(f"two submissions belong to student {student_name(path)!r}: {other} and {path}; "
                             "name each student's notebook differently")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("**/.*.tmp"):  # left by a run killed while writing (see write_atomic)
        stale.unlink(missing_ok=True)
    results = load_results(out)
    todo = []
    for path in paths:
        student = student_name(path)
        old = results.get(student)
        if not force and old is not None and old.get("fingerprint") == fingerprint(path, settings):
            log(f"{student}: already graded ({old['score']:.3g} / {old['max_score']:g}), skipped")
            continue
        todo.append(path)
    failures = 0

    def finished(record: dict[str, Any]) -> None:
        write_atomic(out / "results" / f"{record['student']}.json", json.dumps(record, indent=1) + "\n")
        write_atomic(out / "feedback" / f"{record['student']}.html", feedback_page(record))
        results[record["student"]] = record
        write_gradebook(out, list(results.values()))
        log(f"{record['student']}: {record['score']:.3g} / {record['max_score']:g}")

    def failed(path: Path, exc: Exception) -> None:  # the grader's own failure: report it, keep the others
        nonlocal failures
        failures += 1
        print(f"bpttlab grade: could not grade {path}: {type(exc).__name__}: {exc}", file=sys.stderr)

    start = time.perf_counter()
    if jobs <= 1:
        for path in todo:
            try:
                record = grade_submission(str(path), settings)
            except Exception as exc:
                failed(path, exc)
            else:
                finished(record)
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(grade_submission, str(path), settings): path for path in todo}
            for future in as_completed(futures):
                try:
                    record = future.result()
                except Exception as exc:
                    failed(futures[future], exc)
                else:
                    finished(record)
    write_gradebook(out, list(results.values()))
    log(f"graded {len(todo) - failures} submission(s) in {time.perf_counter() - start:.1f} s; "
        f"gradebook: {out / 'gradebook.csv'}")
    return failures
