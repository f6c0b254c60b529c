"""Exercises as data, and the exercise packs that plugins register under ``bpttlab.exercises``.

An :class:`Exercise` says what the student writes (a function's name and signature), how to draw a
random instance of the problem from a seed, the reference answer (computed by the engine), the known
ways of getting it wrong (:class:`Slip`, each one a mistake of the catalogue in
:mod:`bpttlab.grading.mistakes`, computed from the same reference quantities), tolerances, points and
hints. An :class:`ExercisePack` is a named tuple of exercises; :func:`validate_pack` is what the plugin
registry runs on every pack it loads.

Answers are a NumPy array (a scalar is a 0-d array) or a dict of named arrays (one per parameter).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .library_use import RULE

#: What an exercise id may look like: lower-case words joined by "-" or "_", possibly with capitals
#: for the maths (``grad-W``, ``explicit-dh-dW``).
ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)*$")

Answer = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class Slip:
    """One known way of getting an exercise wrong, as a computation.

    Attributes:
        mistake: the key of the mistake in :data:`bpttlab.grading.mistakes.CATALOGUE`.
        detail: what exactly was done, in the exercise's terms ("h_t used where h_{t-1} belongs").
        compute: ``compute(**inputs) -> Answer``, the answer this slip produces on an instance.
        hint: how to fix this slip in this exercise; when None, the catalogue's hint for the mistake.
        explanation: what the mistake is, in this exercise; when None, the catalogue's explanation.
    """

    mistake: str
    detail: str
    compute: Callable[..., Answer]
    hint: str | None = None
    explanation: str | None = None


@dataclass(frozen=True)
class Timeline:
    """How to find the first time step at which an answer goes wrong.

    Two ways:

    * ``"prefix"``: call the student's function on the first n steps of the instance, n = 1, 2, ...;
      the first n at which it disagrees with the reference is the step. ``args`` are the arguments cut
      to n rows; ``step_arg`` (e.g. ``"t"``, the loss asked for) is set to n and bounds the search.
    * ``"rows"``: the answer's first axis is time; the first row that disagrees is the step, or the
      last one when ``backward`` (a quantity computed from t = T down, like dE/dh_t). ``symbol`` names
      row t in the maths, a format string of t: ``"h_{t}"`` says that row 0 of the answer is h_1.
    """

    mode: str
    args: tuple[str, ...] = ("xs", "targets")
    step_arg: str | None = None
    backward: bool = False
    symbol: str | None = None

    def steps(self, inputs: Mapping[str, Any]) -> int:
        """How many prefixes an instance has (prefix mode)."""
        if self.step_arg is not None:
            return int(inputs[self.step_arg])
        return len(inputs[self.args[0]])

    def cut(self, inputs: Mapping[str, Any], n: int) -> dict[str, Any]:
        """The instance restricted to its first n steps (prefix mode)."""
        out = dict(inputs)
        for name in self.args:
            out[name] = np.array(inputs[name][:n])
        if self.step_arg is not None:
            out[self.step_arg] = n
        return out


PREFIX = Timeline("prefix")


@dataclass(frozen=True)
class Exercise:
    r"""An exercise: a function to write, random instances, a reference and its known mistakes.

    Attributes:
        id: unique id in its pack, used by ``%%bptt exercise ID`` and ``bl.grade(ID, fn)``.
        title: one line.
        chapter: the workbook chapter it belongs to ("1 Unfolding", ...).
        prompt: what to compute, with the maths (Markdown with LaTeX).
        function: the name of the function the student defines.
        signature: the call, e.g. ``"grad_W(W, U, b, V, c, xs, targets) -> ndarray (H, H)"``.
        parameter: the name of the answer in messages, as the student's code indexes it (0-based):
            ``"dE/dW"`` gives ``dE/dW[1, 0]``, ``"hs"`` gives ``hs[2, 0]``, and a dict answer
            ``"params"`` gives ``params['W'][1, 0]``.
        generate: ``generate(rng) -> dict`` of keyword arguments: one random instance.
        reference: ``reference(**inputs) -> Answer``.
        slips: the catalogued mistakes that apply, each computed from the reference quantities.
        points: what the exercise is worth; each instance carries an equal share.
        n_public: instances drawn from the exercise's public seed, shown with details.
        n_hidden: instances drawn at grading time from a seed the student does not see.
        rtol, atol: an entry passes when :math:`|x - r| \le atol + rtol \max |r|`.
        hints: general hints, shown after the diagnosis.
        timeline: how to locate the first wrong time step, or None when the answer has no time in it.
    """

    id: str
    title: str
    chapter: str
    prompt: str
    function: str
    signature: str
    parameter: str
    generate: Callable[[np.random.Generator], dict[str, Any]]
    reference: Callable[..., Answer]
    slips: tuple[Slip, ...] = ()
    points: float = 1.0
    n_public: int = 2
    n_hidden: int = 4
    rtol: float = 1e-6
    atol: float = 1e-9
    hints: tuple[str, ...] = ()
    timeline: Timeline | None = None

    def _repr_html_(self) -> str:
        from html import escape

        hints = "".join(f"<li>{escape(h)}</li>" for h in self.hints)
        return (f"<div><b>{escape(self.id)}</b>: {escape(self.title)} <i>({escape(self.chapter)}, "
                f"{self.points:g} points)</i><br><code>{escape(self.signature)}</code>"
                f"{''.join(f'<p>{escape(p)}</p>' for p in self.statement.split(chr(10) * 2))}"
                f"{f'<ul>{hints}</ul>' if hints else ''}</div>")

    @property
    def statement(self) -> str:
        """The prompt as a student reads it: what to compute, then the rule every exercise shares (the
        graded function may not use the library)."""
        return f"{self.prompt}\n\n{RULE}"

    def __repr__(self) -> str:
        return f"Exercise({self.id!r}: {self.title}; {self.signature})"

    def slip(self, mistake: str, detail: str) -> Slip | None:
        """The exercise's slip with this mistake and detail (what a verdict records), or None."""
        return next((s for s in self.slips if (s.mistake, s.detail) == (mistake, detail)), None)


@dataclass(frozen=True)
class ExercisePack:
    """A named collection of exercises (a plugin of the ``bpttlab.exercises`` group)."""

    name: str
    description: str
    exercises: tuple[Exercise, ...] = field(default_factory=tuple)

    def get(self, exercise_id: str) -> Exercise:
        """The exercise called ``exercise_id``; ValueError listing the ids otherwise."""
        for ex in self.exercises:
            if ex.id == exercise_id:
                return ex
        raise ValueError(f"pack {self.name!r} has no exercise {exercise_id!r}; "
                         f"its exercises: {', '.join(self.ids())}")

    def ids(self) -> list[str]:
        return [ex.id for ex in self.exercises]

    def __repr__(self) -> str:
        return f"ExercisePack({self.name!r}: {len(self.exercises)} exercises: {', '.join(self.ids())})"


def validate_pack(name: str, obj: object) -> None:
    """Check an exercise pack plugin: types, unique well-formed ids, known mistakes, sane numbers.

    Raises:
        TypeError: ``obj`` is not an :class:`ExercisePack` or holds something that is not an Exercise.
        ValueError: the pack's name differs from ``name``, an id is malformed or repeated, a slip names
            a mistake that is not in the catalogue, or points/tolerances/instance counts are invalid.
    """
    from .mistakes import CATALOGUE

    if not isinstance(obj, ExercisePack):
        raise TypeError(f"an exercise pack plugin must be a bpttlab.grading.exercise.ExercisePack, "
                        f"got {type(obj).__name__}")
    if obj.name != name:
        raise ValueError(f"exercise pack registered as {name!r} calls itself {obj.name!r}")
    if not obj.exercises:
        raise ValueError(f"exercise pack {name!r} has no exercises")
    seen: set[str] = set()
    for ex in obj.exercises:
        if not isinstance(ex, Exercise):
            raise TypeError(f"exercise pack {name!r} holds a {type(ex).__name__}, expected Exercise")
        where = f"exercise {ex.id!r} of pack {name!r}"
        if not isinstance(ex.id, str) or not ID_PATTERN.match(ex.id):
            raise ValueError(f"{where}: the id must be letters and digits joined by '-' or '_'")
        if ex.id in seen:
            raise ValueError(f"{where}: the id is used twice")
        seen.add(ex.id)
        if not ex.function.isidentifier():
            raise ValueError(f"{where}: function {ex.function!r} is not a Python name")
        if not callable(ex.generate) or not callable(ex.reference):
            raise TypeError(f"{where}: generate and reference must be callables")
        if not (np.isfinite(ex.points) and ex.points > 0):
            raise ValueError(f"{where}: points must be positive, got {ex.points!r}")
        if ex.n_public < 1 or ex.n_hidden < 0:
            raise ValueError(f"{where}: needs n_public >= 1 and n_hidden >= 0, got {ex.n_public}, {ex.n_hidden}")
        if not (ex.rtol >= 0 and ex.atol >= 0):
            raise ValueError(f"{where}: rtol and atol must be >= 0")
        for slip in ex.slips:
            if slip.mistake not in CATALOGUE:
                raise ValueError(f"{where}: slip {slip.detail!r} names mistake {slip.mistake!r}, which is not "
                                 f"in the catalogue ({', '.join(CATALOGUE)})")
        if ex.timeline is not None and ex.timeline.mode not in ("prefix", "rows"):
            raise ValueError(f"{where}: timeline mode must be 'prefix' or 'rows', got {ex.timeline.mode!r}")
