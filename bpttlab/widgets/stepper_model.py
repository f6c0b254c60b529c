r"""The state behind the stepper: one pass of BPTT as a list of events, and the numbers of each.

:class:`StepperModel` is plain Python (no ipywidgets), so everything the stepper shows is tested without
a browser. All numbers come from the engine: the forward trace and :func:`bpttlab.bptt` (losses,
``by_copy``, gradients), :func:`bpttlab.contributions` (the table :math:`C[t][k]`) and
:func:`bpttlab.engine.flow.state_gradients` (:math:`\partial E_t/\partial s_k`). At the backward event of copy k,
for the chosen parameter :math:`\theta`,

.. math::

    \frac{\partial E}{\partial s_k} = \underbrace{\frac{\partial E_k}{\partial s_k}}_{\text{direct}}
        + \underbrace{\sum_{t>k} \frac{\partial E_t}{\partial s_k}}_{\text{carry from later steps}},
    \qquad
    \text{by\_copy}[k] = \underbrace{C[k][k]}_{\text{explicit}} + \underbrace{\sum_{t>k} C[t][k]}_{\text{implicit}},

and the running gradient is :math:`\sum_{j \ge k} \text{by\_copy}[j]`, which reaches
:math:`\partial E/\partial\theta` at k = 1. With truncation k2 only the losses
:math:`k \le t \le k + k_2 - 1` reach copy k: that is the window shaded in the drawing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import validation as V
from ..engine import BPTTResult, bptt, contributions
from ..engine.flow import state_gradients
from ..network import Network
from .events import BACKWARD, FORWARD, LOSSES, Event, pass_events


@dataclass(frozen=True)
class ForwardNumbers:
    """What copy t computes: its input x_t, hidden activity h_t, state s_t and output o_t."""

    t: int
    x: np.ndarray
    h: np.ndarray
    state: np.ndarray
    output: np.ndarray


@dataclass(frozen=True)
class LossNumbers:
    """The losses E_1..E_T (as the engine scales them for the reduction) and their total E."""

    losses: np.ndarray
    loss: float


@dataclass(frozen=True)
class BackwardNumbers:
    """The backward pass at copy k, for the parameter ``wrt``.

    Attributes:
        k: the copy (1-based).
        wrt: the parameter whose gradient is followed.
        dE_ds: dE/ds_k, the cotangent of the state = ``direct`` + ``carry``.
        direct: dE_k/ds_k, from the loss of this step.
        carry: sum over t > k of dE_t/ds_k, carried back from later steps (within the window).
        explicit: C[k][k], the explicit part of dE_k/dtheta.
        implicit: sum over t > k of C[t][k], what later losses add to the copy-k parameter.
        copy_grad: the engine's ``by_copy[wrt][k-1]``, the gradient reaching the copy-k parameter.
        running: name -> sum over j >= k of ``by_copy[name][j-1]``, for every parameter.
    """

    k: int
    wrt: str
    dE_ds: np.ndarray
    direct: np.ndarray
    carry: np.ndarray
    explicit: np.ndarray
    implicit: np.ndarray
    copy_grad: np.ndarray
    running: dict[str, np.ndarray]


Numbers = ForwardNumbers | LossNumbers | BackwardNumbers


@dataclass(frozen=True)
class Frame:
    """Everything shown at one event: the event, its position, its numbers and the truncation window
    (first and last shaded time step, or None without truncation)."""

    position: int
    event: Event
    numbers: Numbers
    window: tuple[int, int] | None
    wrt: str
    k2: int | None


@dataclass(frozen=True)
class _PassNumbers:
    """The engine's results for one pass at one truncation."""

    result: BPTTResult
    state_grads: np.ndarray
    running: dict[str, np.ndarray]


class StepperModel:
    """One pass of BPTT over a single sequence, stepped event by event.

    Args:
        net: the network; its parameters are copied, so the pass shown does not change if ``net`` is
            edited afterwards.
        xs: one input sequence (T, D).
        targets: its targets, as for :func:`bpttlab.bptt`.
        wrt: the parameter whose gradient the backward pass follows (default: the first recurrent one).
        k2: truncation, None for full BPTT.
        loss, reduction, h0: as for :func:`bpttlab.bptt`.

    Raises:
        TypeError, ValueError: bad inputs, with the argument named (a batch of sequences is refused:
            the stepper shows one sequence).
    """

    def __init__(self, net: Network, xs, targets, *, wrt: str | None = None, k2: int | None = None,
                 loss="mse", reduction: str = "sum", h0=None):
        V.check_network(net)
        batch = V.inputs(net, xs)
        if batch.batched:
            raise ValueError(f"xs must be one sequence of shape (T, {net.n_in}) for the stepper, got a batch "
                             f"{np.shape(xs)}; pick one sequence, e.g. xs[:, 0]")
        self.net = net.copy()
        self.xs = batch.xs[:, 0]
        self.targets = targets
        self.loss = loss
        self.reduction = reduction
        self.h0 = h0
        self.events = pass_events(batch.T)
        self.position = 0
        self._cache: dict[int | None, _PassNumbers] = {}
        self._tables: dict[tuple[int | None, str], np.ndarray] = {}
        self._k2 = V.positive_int(k2, "k2", allow_none=True)
        self._wrt = self._check_wrt(self.net.cell.recurrent[0] if wrt is None else wrt)
        self._pass(self._k2)

    # -- settings ------------------------------------------------------------------------------------
    @property
    def T(self) -> int:
        return len(self.xs)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.net.shapes)

    @property
    def wrt(self) -> str:
        return self._wrt

    @wrt.setter
    def wrt(self, name: str) -> None:
        self._wrt = self._check_wrt(name)

    @property
    def k2(self) -> int | None:
        return self._k2

    @k2.setter
    def k2(self, value: int | None) -> None:
        k2 = V.positive_int(value, "k2", allow_none=True)
        self._pass(k2)
        self._k2 = k2

    def _check_wrt(self, name) -> str:
        if name not in self.net.shapes:
            raise ValueError(f"wrt must be one of the parameters {', '.join(self.net.shapes)}, got {name!r}")
        return name

    # -- moving --------------------------------------------------------------------------------------
    @property
    def event(self) -> Event:
        return self.events[self.position]

    @property
    def at_start(self) -> bool:
        return self.position == 0

    @property
    def at_end(self) -> bool:
        return self.position == len(self.events) - 1

    def next(self) -> bool:
        """Go to the next event; False (and no move) at the last one."""
        if self.at_end:
            return False
        self.position += 1
        return True

    def prev(self) -> bool:
        """Go to the previous event; False (and no move) at the first one."""
        if self.at_start:
            return False
        self.position -= 1
        return True

    def goto(self, position: int) -> None:
        """Jump to event ``position`` (0-based, 0 .. 2T)."""
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
            raise TypeError(f"position must be an int, got {type(position).__name__}")
        if not 0 <= position < len(self.events):
            raise ValueError(f"position must be between 0 and {len(self.events) - 1}, got {position}")
        self.position = int(position)

    # -- what is shown -------------------------------------------------------------------------------
    @property
    def window(self) -> tuple[int, int] | None:
        """The time steps shaded for the truncation k2 at the current event.

        Going forward at t, and at the losses (t = T): the copies E_t back-propagates through,
        max(1, t - k2 + 1) .. t. Going backward at k: the losses whose gradient reaches copy k,
        k .. min(T, k + k2 - 1). None without truncation.
        """
        if self._k2 is None:
            return None
        e = self.event
        if e.phase == BACKWARD:
            return e.step, min(self.T, e.step + self._k2 - 1)
        return max(1, e.step - self._k2 + 1), e.step

    def frame(self) -> Frame:
        """The current event with its numbers."""
        return Frame(self.position, self.event, self._event_numbers(self.event), self.window, self._wrt,
                     self._k2)

    @property
    def result(self) -> BPTTResult:
        """The engine's result for the whole pass at the current truncation."""
        return self._pass(self._k2).result

    @property
    def state_gradients(self) -> np.ndarray:
        """G[t-1, k-1] = dE_t/ds_k (T, T, S) at the current truncation (see :mod:`bpttlab.engine.flow`)."""
        return self._pass(self._k2).state_grads

    def contributions(self, wrt: str | None = None) -> np.ndarray:
        """The engine's table C[t-1, k-1] for ``wrt`` (default: the chosen parameter) at the current k2."""
        name = self._check_wrt(self._wrt if wrt is None else wrt)
        key = (self._k2, name)
        if key not in self._tables:
            self._tables[key] = contributions(self.net, self.xs, self.targets, name, loss=self.loss,
                                              reduction=self.reduction, k2=self._k2, h0=self.h0)
        return self._tables[key]

    def _pass(self, k2: int | None) -> _PassNumbers:
        if k2 not in self._cache:
            res = bptt(self.net, self.xs, self.targets, loss=self.loss, reduction=self.reduction, k2=k2,
                       h0=self.h0)
            G = state_gradients(self.net, self.xs, self.targets, loss=self.loss, reduction=self.reduction,
                                k2=k2, h0=self.h0)
            running = {name: np.cumsum(c[::-1], axis=0)[::-1] for name, c in res.by_copy.items()}
            self._cache[k2] = _PassNumbers(res, G, running)
        return self._cache[k2]

    def _event_numbers(self, e: Event) -> Numbers:
        p = self._pass(self._k2)
        tr = p.result.trace
        if e.phase == FORWARD:
            t = e.step
            return ForwardNumbers(t, self.xs[t - 1], tr.h[t], tr.states[t], tr.outputs[t - 1])
        if e.phase == LOSSES:
            return LossNumbers(p.result.losses, p.result.loss)
        k = e.step
        C = self.contributions()
        G = p.state_grads
        carry = G[k:, k - 1].sum(axis=0)
        return BackwardNumbers(
            k=k, wrt=self._wrt, dE_ds=G[k - 1, k - 1] + carry, direct=G[k - 1, k - 1], carry=carry,
            explicit=C[k - 1, k - 1], implicit=C[k:, k - 1].sum(axis=0),
            copy_grad=p.result.by_copy[self._wrt][k - 1],
            running={name: r[k - 1] for name, r in p.running.items()})

    def __repr__(self) -> str:
        net = self.net
        k2 = "full" if self._k2 is None else self._k2
        return (f"StepperModel({net.cell.name}, T={self.T}, H={net.n_hidden}: event {self.position + 1}/"
                f"{len(self.events)} {self.event.label}; wrt={self._wrt}, k2={k2})")
