"""The events of one pass of BPTT, in the order a student steps through them.

A sequence of length T gives 2T + 1 events: the forward pass t = 1..T, the losses E_1..E_T, then the
backward pass k = T..1 (the gradient reaches copy k after every later copy has passed it on).

>>> [e.label for e in pass_events(2)]
['forward t=1', 'forward t=2', 'losses', 'backward k=2', 'backward k=1']
"""
from __future__ import annotations

from dataclasses import dataclass

FORWARD, LOSSES, BACKWARD = "forward", "losses", "backward"


@dataclass(frozen=True)
class Event:
    """One event of the pass.

    Attributes:
        phase: "forward", "losses" or "backward".
        step: the time step (1-based) the event is about: t going forward, k going backward, and T for
            the losses (all of them are computed once the last output exists).
    """

    phase: str
    step: int

    @property
    def label(self) -> str:
        if self.phase == FORWARD:
            return f"forward t={self.step}"
        if self.phase == BACKWARD:
            return f"backward k={self.step}"
        return "losses"


def pass_events(T: int) -> tuple[Event, ...]:
    """The 2T + 1 events of a pass over T steps."""
    return (tuple(Event(FORWARD, t) for t in range(1, T + 1)) + (Event(LOSSES, T),)
            + tuple(Event(BACKWARD, k) for k in range(T, 0, -1)))
