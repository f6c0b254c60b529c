"""Feedback on one exercise: the score, what passed, the diagnosis and a hint, as text and as HTML.

It never says that all tests passed when hidden instances exist: it says how many public and hidden
instances were right, and, in a notebook, that the grade comes from hidden instances drawn afresh.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from .diagnosis import Verdict, main_verdict, score
from .exercise import Exercise
from .mistakes import CATALOGUE


@dataclass
class Feedback:
    """The grading of one exercise.

    Attributes:
        exercise: the exercise.
        verdicts: one per instance (empty when it could not be graded).
        reason: why it could not be graded ("the cell does not define grad_W", "timed out", ...).
        status: a short code for gradebooks when it could not be graded ("timeout", "crash", ...).
        notes: remarks that do not change the score (e.g. "the cell raised ...").
        redrawn: the hidden instances of the final grade will be drawn again (in-notebook grading).
    """

    exercise: Exercise
    verdicts: list[Verdict] = field(default_factory=list)
    reason: str | None = None
    status: str | None = None
    notes: tuple[str, ...] = ()
    redrawn: bool = False

    # -- numbers -------------------------------------------------------------------------------------

    @property
    def score(self) -> float:
        return score(self.exercise, self.verdicts)

    @property
    def points(self) -> float:
        return self.exercise.points

    @property
    def passed(self) -> bool:
        """Every instance, public and hidden, was right."""
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)

    @property
    def main(self) -> Verdict | None:
        return main_verdict(self.verdicts)

    @property
    def diagnosis(self) -> str:
        """A short code: "correct", a mistake key, "raised", "wrong", or why it was not graded."""
        if self.reason is not None:
            return self.status or "not-graded"
        if self.passed:
            return "correct"
        main = self.main
        if main.mistake:
            return main.mistake
        return "raised" if main.raised else "wrong"

    def _counts(self, visibility: str) -> tuple[int, int]:
        group = [v for v in self.verdicts if v.visibility == visibility]
        return sum(v.passed for v in group), len(group)

    # -- words ---------------------------------------------------------------------------------------

    def headline(self) -> str:
        return f"{self.exercise.id}: {self.exercise.title}: {self.score:.3g} / {self.points:g} points"

    def summary(self) -> str:
        """How many instances were right, without ever claiming that all tests passed."""
        if self.reason is not None:
            return f"Not graded: {self.reason}"
        (pp, pn), (hp, hn) = self._counts("public"), self._counts("hidden")
        text = f"Public instances: {pp} of {pn} right."
        if hn:
            text += f" Hidden instances: {hp} of {hn} right."
            if self.redrawn:
                text += " Your grade comes from hidden instances drawn afresh when your work is graded."
        main = self.main
        if main is not None and main.mistake and any(v.passed for v in self.verdicts):
            text += (" A known mistake earns no points, even on the instances where it happens to give the "
                     "right answer.")
        return text

    def diagnosis_lines(self) -> list[str]:
        """The diagnosis of the main failure: the mistake, where it goes wrong, what it means."""
        main = self.main
        if main is None or self.reason is not None:
            return []
        which = f"{main.visibility} instance {main.number}"
        if main.raised:
            return [f"Your function failed on {which}: {main.problem}"]
        lines = []
        if main.mistake:
            title = CATALOGUE[main.mistake].title
            detail = "" if main.detail.strip().lower() == title.lower() else f": {main.detail}"
            lines.append(f"Diagnosis: {title}{detail}.")
        else:
            lines.append(f"Diagnosis: not one of the known mistakes; on {which}, {main.problem}.")
        location = self._location(main)
        if location:
            lines.append(location)
        if main.mistake:
            slip = self.exercise.slip(main.mistake, main.detail)
            lines.append(slip.explanation if slip is not None and slip.explanation
                         else CATALOGUE[main.mistake].explanation)
        return lines

    def _location(self, main: Verdict) -> str:
        """Where the answer goes wrong, in words: time 1-based (t = 1..T), array indices 0-based as the
        student's code writes them, e.g. "It first goes wrong at t = 2 (hs[1] is h_2); the largest error,
        0.999, is in hs[2, 0], which is h_3[0] (public instance 1)"."""
        which = f"{main.visibility} instance {main.number}"
        parts = []
        if main.step is not None:
            parts.append(self._step_phrase(main.step))
        if main.max_error is not None and main.where and "[" in main.where:
            entry = f", which is {main.entry}" if main.entry else ""
            parts.append(f"the largest error, {main.max_error:.3g}, is in {main.where}{entry}")
        elif main.max_error is not None:
            parts.append(f"it is off by {main.max_error:.3g}")
        elif main.mistake and main.problem:
            parts.append(f"your answer: {main.problem}")  # e.g. a wrong shape (an unknown mistake says it above)
        if not parts:
            return ""
        sentence = "; ".join(parts)
        return f"{sentence[0].upper()}{sentence[1:]} ({which})."

    def _step_phrase(self, t: int) -> str:
        """What "first wrong at t" means for this exercise: row t - 1 of a time-indexed answer, or the
        instance cut to its first t steps (with the step argument set to t)."""
        tl = self.exercise.timeline
        if tl.mode == "rows":
            row = f" ({self.exercise.parameter}[{t - 1}] is {tl.symbol.format(t=t)})" if tl.symbol else ""
            start = "going back from t = T, it first goes wrong" if tl.backward else "it first goes wrong"
            return f"{start} at t = {t}{row}"
        seq = f"x_1..x_{t}" if t > 1 else "x_1"
        if tl.step_arg is not None:
            return (f"it first goes wrong at t = {t}: called with {tl.step_arg} = {t} on {seq} "
                    f"({tl.args[0]}[:{t}]), your function already differs")
        return f"it first goes wrong at t = {t}: on {seq} alone ({tl.args[0]}[:{t}]) your function already differs"

    def hints(self) -> list[str]:
        if self.passed or self.reason is not None:
            return []
        main = self.main
        out = []
        if main is not None and main.mistake:
            slip = self.exercise.slip(main.mistake, main.detail)
            out.append(slip.hint if slip is not None and slip.hint else CATALOGUE[main.mistake].hint)
        return out + list(self.exercise.hints)

    @property
    def text(self) -> str:
        lines = [self.headline(), self.summary(), *self.diagnosis_lines()]
        lines += [f"Hint: {h}" for h in self.hints()]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        colour = "#2e7d32" if self.passed else ("#b26a00" if self.score > 0 else "#c62828")
        badges = " ".join(
            f"<span title='{escape(v.visibility)} instance {v.number}' style='color:"
            f"{'#2e7d32' if v.passed else '#c62828'}'>{'✓' if v.passed else '✗'}{v.visibility[0].upper()}{v.number}"
            "</span>" for v in self.verdicts)
        parts = [f"<div style='border-left:4px solid {colour};padding:4px 10px;margin:4px 0'>",
                 f"<b>{escape(self.exercise.id)}</b>: {escape(self.exercise.title)} "
                 f"<b style='color:{colour}'>{self.score:.3g} / {self.points:g}</b><br>",
                 f"{escape(self.summary())}" + (f"<br><span style='font-family:monospace'>{badges}</span>"
                                                if badges else "")]
        diag = self.diagnosis_lines()
        if diag:
            parts.append("<br>" + "<br>".join(escape(line) for line in diag))
        for hint in self.hints():
            parts.append(f"<br><i>Hint: {escape(hint)}</i>")
        for note in self.notes:
            parts.append(f"<br><small>Note: {escape(note)}</small>")
        parts.append("</div>")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """What the gradebook and the feedback files keep."""
        return {"exercise": self.exercise.id, "score": round(self.score, 6), "max_score": self.points,
                "diagnosis": self.diagnosis, "detail": " ".join([self.summary(), *self.diagnosis_lines()[:2]]),
                "verdicts": [v.to_dict() for v in self.verdicts], "text": self.text, "html": self._repr_html_()}
