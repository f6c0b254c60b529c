"""Running students' functions: the call itself, and the sandbox process the batch grader runs them in.

Both ends of the sandbox live here. The grader (parent) extracts each exercise's function source from a
notebook, and :class:`Sandbox` sends it, with the inputs of every call to make, to a fresh
``python -s -P sandbox.py FD`` child, started through the run's
:class:`~bpttlab.grading.isolation.Isolation` (an OS sandbox with limits, a clean environment). The child defines the functions, calls
them, and writes one JSON line per exercise to file descriptor FD: plain numbers and error messages only.
References, hidden answers, the seed and scores never enter the child, and nothing from the child is
unpickled, so code in a notebook cannot change what it is compared with or what it is given. An exercise
that runs past its time limit or kills the child (``os._exit``, a segfault) is recorded as such and the
child is restarted for the rest; an error that shows a limit was hit is explained in words.

This file imports only the standard library and NumPy, so the child starts fast and never imports
bpttlab; :func:`call` and :func:`numeric` are also what in-notebook grading uses.
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

#: The most numbers an answer may hold.
MAX_NUMBERS = 1_000_000
#: The longest line the child may write (bytes).
MAX_LINE = 64 * 2 ** 20

_LIBRARY_DIRS = tuple(os.path.realpath(p) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                                     sysconfig.get_paths()["platlib"]})


def numeric(value: Any) -> np.ndarray | dict[str, np.ndarray]:
    """A returned value as float64 numbers: an array (scalars are 0-d), or a dict of arrays.

    Raises:
        ValueError: the value is not numbers (or too many of them), with a message for the student.
    """
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"returned a dict with a non-string key {key!r}")
            out[key] = _array(item, f"entry {key!r} of the returned dict")
        if sum(a.size for a in out.values()) > MAX_NUMBERS:
            raise ValueError(f"returned more than {MAX_NUMBERS:,} numbers")
        return out
    return _array(value, "the returned value")


def _array(value: Any, what: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"{what} is None (did the function forget to return?)")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is a {type(value).__name__} that is not an array of numbers ({exc})") from None
    if arr.size > MAX_NUMBERS:
        raise ValueError(f"{what} holds {arr.size:,} numbers, more than {MAX_NUMBERS:,}")
    return arr


def describe_exception(exc: BaseException) -> str:
    """``"ValueError: message (line 4, in grad_W)"``, naming the deepest frame of the student's code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.realpath(f.filename).startswith(_LIBRARY_DIRS) and f.filename != __file__]
    where = f" (line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""
    message = str(exc)
    if len(message) > 300:
        message = message[:300] + "..."
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def call(fn, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Call ``fn(**inputs)`` on a deep copy of the inputs.

    Returns:
        ``{"value": numbers}`` or ``{"error": message}``. KeyboardInterrupt propagates (in a notebook
        the student stops a runaway function that way).
    """
    try:
        value = fn(**copy.deepcopy(dict(inputs)))
    except (Exception, SystemExit) as exc:
        return {"error": describe_exception(exc)}
    try:
        return {"value": numeric(value)}
    except ValueError as exc:
        return {"error": str(exc)}


# -- the child ----------------------------------------------------------------------------------------


def _encode(answer) -> Any:
    if isinstance(answer, dict):
        return {"dict": {k: _encode(v) for k, v in answer.items()}}
    return {"shape": list(answer.shape), "data": answer.ravel().tolist()}


def decode(obj: Any) -> np.ndarray | dict[str, np.ndarray]:
    """An answer from the child's JSON; ValueError if it is not one."""
    if isinstance(obj, dict) and set(obj) == {"dict"} and isinstance(obj["dict"], dict):
        return {str(k): _decode_array(v) for k, v in obj["dict"].items()}
    return _decode_array(obj)


def _decode_array(obj: Any) -> np.ndarray:
    if not (isinstance(obj, dict) and set(obj) == {"shape", "data"} and isinstance(obj["data"], list)
            and isinstance(obj["shape"], list) and all(isinstance(n, int) and n >= 0 for n in obj["shape"])):
        raise ValueError("malformed answer from the sandbox")
    data = np.array(obj["data"], dtype=np.float64)
    if data.ndim != 1 or data.size != int(np.prod(obj["shape"])):
        raise ValueError("malformed answer from the sandbox")
    return data.reshape(obj["shape"])


def _define(source: str, function: str, filename: str, prelude: list[tuple[str, str]]):
    namespace: dict[str, Any] = {"__name__": "__student__", "np": np, "numpy": np}
    for cell_name, cell_source in prelude:  # helpers from earlier cells; one that fails is left out
        try:
            exec(compile(cell_source, cell_name, "exec"), namespace)  # noqa: S102
        except (Exception, SystemExit):
            continue
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - this process exists to run it
    fn = namespace.get(function)
    if not callable(fn):
        raise NameError(f"the cell does not define a function named {function}")
    return fn


# -- hook (helper "rules"): graded functions may not use bpttlab; see stand_in.py ---------------------


def _library_watch():
    """stand_in.py, loaded by path (the child never imports bpttlab), with its stand-in package installed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bpttlab_stand_in", os.path.join(
        os.path.dirname(os.path.realpath(__file__)), "stand_in.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install()
    return module.watched


# -- end of hook ----------------------------------------------------------------------------------------


def _serve(result_fd: int) -> None:
    watched = _library_watch()
    jobs = pickle.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out = os.fdopen(result_fd, "wb")
    for job in jobs:
        record: dict[str, Any] = {"exercise": job["exercise"]}
        try:
            fn = _define(job["source"], job["function"], f"<exercise {job['exercise']}>", job["prelude"])
        except (Exception, SystemExit) as exc:
            record["error"] = describe_exception(exc)
        else:
            outcomes = [call(watched(fn), inputs) for inputs in job["calls"]]
            record["outcomes"] = [{"value": _encode(o["value"])} if "value" in o else o for o in outcomes]
        out.write(json.dumps(record).encode() + b"\n")
        out.flush()


# -- the parent ---------------------------------------------------------------------------------------


@dataclass
class ExerciseRun:
    """What the sandbox gave for one exercise: the outcome of each call, or why there is none.

    Attributes:
        outcomes: per call, ``{"value": answer}`` or ``{"error": message}`` (None if failed).
        failure: "timeout", "crash" or "error" when the exercise produced no outcomes.
        reason: a sentence for the student when it failed.
    """

    outcomes: list[dict[str, Any]] | None = None
    failure: str | None = None
    reason: str | None = None


@dataclass
class Job:
    """One exercise to run: its id, the function's source and name, the inputs of each call, and the
    (name, source) of definitions to run before the function's source (helpers from earlier cells)."""

    exercise: str
    source: str
    function: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    prelude: list[tuple[str, str]] = field(default_factory=list)


class Sandbox:
    """Runs students' functions in a confined child process, with a time limit per exercise.

    Args:
        timeout: seconds each exercise may take (all its calls together).
        isolation: how the child is confined (an ``Isolation`` of :mod:`bpttlab.grading.isolation`; by
            default the bubblewrap sandbox with the default limits).
    """

    def __init__(self, timeout: float, isolation=None):
        from .isolation import Bubblewrap, Limits

        self.timeout = timeout
        self.isolation = isolation if isolation is not None else Bubblewrap(Limits())

    def run(self, jobs: list[Job]) -> dict[str, ExerciseRun]:
        """Run every job; restart the child after a timeout or a crash and go on with the rest."""
        results: dict[str, ExerciseRun] = {}
        pending = list(jobs)
        while pending:
            done = self._run_child(pending, results)
            pending = pending[done:]
        return results

    def _run_child(self, jobs: list[Job], results: dict[str, ExerciseRun]) -> int:
        """Run jobs in one child until they are done or it fails; return how many were settled."""
        from .isolation import sandbox_environment

        with self.isolation.cgroup() as group:
            read_fd, write_fd = os.pipe()
            workdir = tempfile.mkdtemp(prefix="bpttlab-function-")
            home = self.isolation.home(workdir)
            proc = subprocess.Popen(self.isolation.command([sys.executable, "-s", "-P", __file__, str(write_fd)],
                                                           cgroup=group),
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    pass_fds=(write_fd,), env=sandbox_environment(home), cwd=workdir,
                                    start_new_session=True)
            os.close(write_fd)
            try:
                payload = pickle.dumps([job.__dict__ for job in jobs])
                try:
                    proc.stdin.write(payload)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                return self._collect(proc, read_fd, jobs, results, group)
            finally:
                _kill(proc)
                os.close(read_fd)
                shutil.rmtree(workdir, ignore_errors=True)

    def _collect(self, proc, read_fd: int, jobs: list[Job], results: dict[str, ExerciseRun], group) -> int:
        """Read the answers of ``jobs`` in order until the child fails; return how many were settled. An
        exercise after which the child's cgroup ``group`` shows an OOM kill (the memory of all its
        processes together reached the limit) fails with that reason, and the child is not used further."""
        from .isolation import memory_exceeded

        buffer = b""
        for i, job in enumerate(jobs):
            run, buffer, stop = self._answer(proc, read_fd, job, buffer)
            if group is not None and group.oom_kills():
                run, stop = ExerciseRun(failure="memory-limit", reason=memory_exceeded(self.isolation.limits)), True
            results[job.exercise] = run
            if stop:
                return i + 1
        return len(jobs)

    def _answer(self, proc, read_fd: int, job: Job, buffer: bytes) -> tuple[ExerciseRun, bytes, bool]:
        """The child's answer to ``job``, what it sent after it, and whether the child failed."""
        deadline = time.monotonic() + self.timeout
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return ExerciseRun(failure="timeout", reason=(
                    f"stopped after {self.timeout:g} s: the function did not finish (an infinite loop?)")), buffer, True
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                return ExerciseRun(failure="crash", reason=_crash_reason(proc)), buffer, True
            buffer += chunk
            if len(buffer) > MAX_LINE:
                return ExerciseRun(failure="error", reason="the function's output was too large"), buffer, True
        line, buffer = buffer.split(b"\n", 1)
        return _explained(_parse(line, job), self.isolation.limits), buffer, False


def _parse(line: bytes, job: Job) -> ExerciseRun:
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or record.get("exercise") != job.exercise:
            raise ValueError("out of order")
        if "error" in record:
            return ExerciseRun(failure="error", reason=str(record["error"]))
        outcomes = record["outcomes"]
        if not isinstance(outcomes, list) or len(outcomes) != len(job.calls):
            raise ValueError("wrong number of outcomes")
        return ExerciseRun(outcomes=[{"value": decode(o["value"])} if "value" in o else {"error": str(o["error"])}
                                     for o in outcomes])
    except (ValueError, KeyError, TypeError):
        return ExerciseRun(failure="error", reason="the sandbox sent back something that is not an answer "
                                                   "(did the code write to the grader's pipe?)")


def _explained(run: ExerciseRun, limits) -> ExerciseRun:
    """The run with every error message that shows a limit was hit followed by that limit in words."""
    from .isolation import limit_hit

    def explain(message: str) -> str:
        words = limit_hit(message, limits)
        return f"{message} ({words})" if words else message

    if run.reason is not None:
        run.reason = explain(run.reason)
    for outcome in run.outcomes or ():
        if "error" in outcome:
            outcome["error"] = explain(outcome["error"])
    return run


def _crash_reason(proc) -> str:
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "the process running the function stopped answering"
    if code > 128 and code - 128 in signal.valid_signals():  # a sandbox reports its child's signal N as 128 + N
        code = 128 - code
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process running the function was killed by {name} (a crash, e.g. a segmentation fault)"
    return f"the process running the function exited with status {code} (os._exit or a fatal error)"


def _kill(proc) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
