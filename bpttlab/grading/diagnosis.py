r"""Diagnosis: is an answer right, and if not, which known mistake is it and where does it go wrong.

For each instance the student's answer is compared with the reference (shape, then every entry within
:math:`atol + rtol \max|r|`). A wrong answer is compared with the answer of every slip the exercise lists
(:mod:`bpttlab.grading.mistakes`); the first one it equals names the mistake. Then the answer is located:

* the entry: the first array of the answer (in the reference's order) that is wrong, and within it the
  entry with the largest error, named as the student's code indexes it, 0-based (``dE/dW[1, 0]``,
  ``params['W'][1, 0]``, ``hs[2, 0]``), and, for an answer indexed by time, in the maths too, where time
  is 1-based (``hs[2, 0]`` is ``h_3[0]``);
* the time step: the first t at which the function disagrees with the reference on the instance cut to
  its first t steps (:class:`~bpttlab.grading.exercise.Timeline` "prefix"), or the first wrong row of an
  answer indexed by time ("rows").

The student's function is reached through ``outcome(i, n)``: the result of calling it on instance i, or
on instance i cut to n steps. In a notebook that calls the function; in the batch grader it looks up
results the sandbox computed beforehand (:func:`planned_calls` lists them).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

import numpy as np

from .exercise import Answer, Exercise, Slip
from .instances import Instance
from .library_use import MISTAKE as LIBRARY_USE
from .library_use import used_in_outcome
from .sandbox import numeric

#: outcome(instance index, steps or None) -> {"value": ...} or {"error": message}
OutcomeFn = Callable[[int, int | None], dict[str, Any]]


@dataclass(frozen=True)
class Mismatch:
    """How an answer differs from a reference.

    Attributes:
        problem: one sentence.
        key: the dict entry that differs (dict answers), else None.
        index: the entry with the largest error, when the shapes agree.
        max_error: the largest absolute error, when the shapes agree.
        rows: per index of the first axis, whether it holds a wrong entry (shapes agree, ndim >= 1).
    """

    problem: str
    key: str | None = None
    index: tuple[int, ...] | None = None
    max_error: float | None = None
    rows: np.ndarray | None = None


@dataclass(frozen=True)
class Verdict:
    """The result on one instance.

    Attributes:
        visibility, number: which instance.
        passed: the answer equals the reference.
        problem: why it did not pass (an error, a shape, the size of the error).
        mistake: the catalogue key of the diagnosed mistake, or None.
        detail: the slip's description.
        step: the first time step (1-based) where it goes wrong, when the exercise has time in it.
        where: the entry with the largest error, 0-based as in code: "dE/dW[1, 0]", "hs[2, 0]".
        entry: the same entry in the maths, 1-based in time ("h_3[0]"), when the answer is indexed by time.
        max_error: the largest absolute error, when the shapes agree.
        raised: the function raised (or returned something that is not numbers).
        matches: every (mistake, detail) whose slip gives this answer, in the exercise's order; when
            there are several, :func:`assess` keeps in ``mistake`` the one most instances agree on.
    """

    visibility: str
    number: int
    passed: bool
    problem: str | None = None
    mistake: str | None = None
    detail: str | None = None
    step: int | None = None
    where: str | None = None
    entry: str | None = None
    max_error: float | None = None
    raised: bool = False
    matches: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(answer: Answer, reference: Answer, rtol: float, atol: float) -> Mismatch | None:
    """None if ``answer`` equals ``reference`` within tolerance, else how they differ."""
    if isinstance(reference, dict):
        if not isinstance(answer, dict):
            return Mismatch(f"returned an array; expected a dict with keys {', '.join(reference)}")
        missing = [k for k in reference if k not in answer]
        extra = [k for k in answer if k not in reference]
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unexpected {', '.join(extra)}"] if extra else [])
            return Mismatch(f"the dict's keys are wrong ({'; '.join(parts)})")
        for key, ref in reference.items():
            found = _compare_arrays(answer[key], ref, rtol, atol)
            if found is not None:
                return Mismatch(f"{key}: {found.problem}", key, found.index, found.max_error, found.rows)
        return None
    if isinstance(answer, dict):
        return Mismatch(f"returned a dict; expected an array of shape {reference.shape}")
    return _compare_arrays(answer, reference, rtol, atol)


def _compare_arrays(a: np.ndarray, r: np.ndarray, rtol: float, atol: float) -> Mismatch | None:
    r = np.asarray(r, dtype=np.float64)
    if a.shape != r.shape:
        return Mismatch(f"shape {a.shape}, expected {r.shape}")
    if a.size == 0:
        return None
    if not np.all(np.isfinite(a)):
        return Mismatch("contains NaN or inf")
    err = np.abs(a - r)
    bad = err > atol + rtol * float(np.max(np.abs(r)))
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
    rows = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim else None
    return Mismatch(f"off by up to {float(err.max()):.3g}", index=index, max_error=float(err.max()), rows=rows)


def planned_calls(exercise: Exercise, instances: list[Instance]) -> list[tuple[int, int | None, dict[str, Any]]]:
    """Every call :func:`assess` may ask for: (instance index, steps or None, inputs)."""
    calls = []
    for i, inst in enumerate(instances):
        calls.append((i, None, inst.inputs))
        tl = exercise.timeline
        if tl is not None and tl.mode == "prefix":
            calls.extend((i, n, tl.cut(inst.inputs, n)) for n in range(1, tl.steps(inst.inputs)))
    return calls


def assess(exercise: Exercise, instances: list[Instance], outcome: OutcomeFn,
           library: Iterable[str] = ()) -> list[Verdict]:
    """A :class:`Verdict` per instance.

    An answer can equal the answers of several mistakes on one instance (value clipping and per-tensor
    clipping both leave small gradients alone); such a verdict is given the mistake that matches on the
    most instances, so one consistent mistake explains the whole answer.

    A function that uses bpttlab to get its answer (``library``: what the static check found; or a call
    that the run-time watch stopped, see :mod:`~bpttlab.grading.library_use`) fails every instance with
    the mistake ``library_use``, whatever it returned.
    """
    uses = list(library)
    verdicts = [_assess_one(exercise, inst, i, outcome) for i, inst in enumerate(instances)]
    uses += [use for i in range(len(instances)) if (use := used_in_outcome(outcome(i, None)))]
    if uses:
        detail = "; ".join(dict.fromkeys(uses))
        return [Verdict(v.visibility, v.number, False, mistake=LIBRARY_USE, detail=detail) for v in verdicts]
    support = Counter(mistake for v in verdicts for mistake, _ in v.matches)
    resolved = []
    for v in verdicts:
        if len(v.matches) > 1:
            mistake, detail = max(v.matches, key=lambda match: support[match[0]])  # ties: the first
            v = replace(v, mistake=mistake, detail=detail)
        resolved.append(v)
    return resolved


def _answer(result: dict[str, Any]) -> tuple[Answer | None, str | None]:
    if "error" in result:
        return None, result["error"]
    try:
        return numeric(result["value"]), None
    except ValueError as exc:
        return None, str(exc)


def _assess_one(exercise: Exercise, inst: Instance, i: int, outcome: OutcomeFn) -> Verdict:
    answer, error = _answer(outcome(i, None))
    if error is not None:
        return Verdict(inst.visibility, inst.number, False, problem=error, raised=True)
    mismatch = compare(answer, inst.answer, exercise.rtol, exercise.atol)
    if mismatch is None:
        return Verdict(inst.visibility, inst.number, True)
    slips = match_slips(exercise, inst, answer)
    matches: dict[str, str] = {}
    for slip in slips:
        matches.setdefault(slip.mistake, slip.detail)
    return Verdict(inst.visibility, inst.number, False, problem=mismatch.problem,
                   mistake=slips[0].mistake if slips else None, detail=slips[0].detail if slips else None,
                   step=_first_step(exercise, inst, i, mismatch, outcome), where=_where(exercise, mismatch),
                   entry=_entry(exercise, mismatch), max_error=mismatch.max_error, matches=tuple(matches.items()))


def match_slips(exercise: Exercise, inst: Instance, answer: Answer) -> list[Slip]:
    """The slips of the exercise whose answer on ``inst`` equals ``answer``, in the exercise's order."""
    found = []
    for slip in exercise.slips:
        candidate = slip.compute(**inst.inputs)
        if candidate is not None and compare(answer, numeric(candidate), exercise.rtol, exercise.atol) is None:
            found.append(slip)
    return found


def _where(exercise: Exercise, mismatch: Mismatch) -> str:
    name = exercise.parameter if mismatch.key is None else f"{exercise.parameter}[{mismatch.key!r}]"
    if mismatch.index:
        return f"{name}[{', '.join(map(str, mismatch.index))}]"
    return name


def _entry(exercise: Exercise, mismatch: Mismatch) -> str | None:
    """Row r of an answer indexed by time is step t = r + 1: ``hs[2, 0]`` is ``h_3[0]``."""
    tl = exercise.timeline
    if tl is None or tl.mode != "rows" or tl.symbol is None or not mismatch.index or mismatch.key is not None:
        return None
    row, *rest = mismatch.index
    return tl.symbol.format(t=row + 1) + (f"[{', '.join(map(str, rest))}]" if rest else "")


def _first_step(exercise: Exercise, inst: Instance, i: int, mismatch: Mismatch, outcome: OutcomeFn) -> int | None:
    tl = exercise.timeline
    if tl is None:
        return None
    if tl.mode == "rows":
        if mismatch.rows is None or mismatch.key is not None:
            return None
        wrong = np.flatnonzero(mismatch.rows)
        return int(wrong[-1] if tl.backward else wrong[0]) + 1
    steps = tl.steps(inst.inputs)
    for n in range(1, steps):
        answer, error = _answer(outcome(i, n))
        if error is not None:
            return n
        cut = tl.cut(inst.inputs, n)
        if compare(answer, exercise.reference(**cut), exercise.rtol, exercise.atol) is not None:
            return n
    return steps


def score(exercise: Exercise, verdicts: list[Verdict]) -> float:
    """Points earned: an equal share of the exercise's points per instance passed, and none at all for an
    answer diagnosed as a catalogued mistake (a slip can coincide with the right answer on some instances,
    as per-tensor clipping does where no gradient needs clipping; that is no credit for the slip)."""
    main = main_verdict(verdicts)
    if not verdicts or (main is not None and main.mistake):
        return 0.0
    return exercise.points * sum(v.passed for v in verdicts) / len(verdicts)


def main_verdict(verdicts: list[Verdict]) -> Verdict | None:
    """The failing verdict that best describes the answer: the most frequent diagnosed mistake (a public
    instance first), else the first failure (public first); None if everything passed."""
    failed = sorted((v for v in verdicts if not v.passed), key=lambda v: v.visibility != "public")
    if not failed:
        return None
    counts: dict[str, int] = {}
    for v in failed:
        if v.mistake:
            counts[v.mistake] = counts.get(v.mistake, 0) + 1
    if counts:
        top = max(counts, key=lambda k: counts[k])
        return next(v for v in failed if v.mistake == top)
    return failed[0]
