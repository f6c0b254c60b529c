r"""The optimal checkpoint policy under a memory budget: the dynamic programme of Gruslys et al. (2016).

*Memory-Efficient Backpropagation Through Time* (Gruslys, Munos, Danihelka, Lanctot and Graves, 2016)
choose which hidden states to keep during the forward pass so that the backward pass fits in a given
number of memory slots with the fewest recomputed steps. This module implements their hidden-state
variant on the following cost model, which it states exactly so that tests can check it by brute force
(:func:`brute_force_cost`):

* the sequence has ``T`` steps; step j maps the state :math:`s_{j-1}` to :math:`s_j`;
* there are ``m`` slots, each holding one state; :math:`s_0` occupies one of them for the whole pass;
* running one step forward costs 1; a state may be written to a free slot as it is computed;
* back-propagating through step j needs :math:`s_{j-1}` and runs step j forward once more to rebuild
  its internals (cost 1), after steps j+1..T have been back-propagated.

Let :math:`Q(t, m)` be the least cost of back-propagating t steps from a stored state with m slots.
One slot allows nothing but recomputing from the start, and enough slots make every step cost 2 but the
first; otherwise the first decision is the step y at which the next state is stored:

.. math::

    Q(t, 1) = \frac{t(t+1)}{2}, \qquad Q(1, m) = 1, \qquad
    Q(t, m) = \min_{1 \le y < t} \bigl[\, y + Q(t - y, m - 1) + Q(y, m) \,\bigr]

(y forward steps to reach :math:`s_y`; the last t - y steps with one slot fewer, as :math:`s_y` holds
one; then the first y steps with every slot again). With :math:`m \ge t` slots :math:`Q = 2t - 1`.

The uniform policy of chapter 06 (n checkpoints every :math:`L = \lceil T/n\rceil` steps, each segment's
states stored while it is back-propagated) is one feasible plan of the same model:
:func:`uniform_cost` counts it.

>>> uniform_slots(10, 3), uniform_cost(10, 3), optimal_cost(10, 5)   # T = 10, 3 checkpoints: 5 slots
(5, 25, 23)
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


def _check(T, m, what_m: str = "m") -> tuple[int, int]:
    for name, value in (("T", T), (what_m, m)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    return int(T), int(m)


def cost_table(T: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Q(t, k) and the first storing step y(t, k) for every t <= T and k <= m.

    Returns:
        ``(Q, Y)``, both of shape (T+1, m+1), indexed ``[t, k]``; row 0 and column 0 are unused (0).
        ``Y[t, k]`` is the minimising y of the recurrence (0 where no state is stored: t = 1 or k = 1).

    Raises:
        TypeError, ValueError: T or m is not a positive int.
    """
    T, m = _check(T, m)
    Q = np.zeros((T + 1, m + 1), dtype=np.int64)
    Y = np.zeros((T + 1, m + 1), dtype=np.int64)
    t = np.arange(T + 1)
    Q[:, 1] = t * (t + 1) // 2
    for k in range(2, m + 1):
        Q[1, k] = 1
        for tt in range(2, T + 1):
            y = np.arange(1, tt)
            costs = y + Q[tt - y, k - 1] + Q[y, k]
            best = int(np.argmin(costs))        # the smallest y among equal costs
            Q[tt, k], Y[tt, k] = costs[best], y[best]
    return Q, Y


def optimal_cost(T: int, m: int) -> int:
    """Q(T, m): the fewest step evaluations that back-propagate T steps with m state slots."""
    return int(cost_table(T, m)[0][T, m])


@dataclass(frozen=True)
class Action:
    """One move of a policy: ``"store"`` runs forward from the stored state ``src`` to ``dst`` and keeps
    :math:`s_{dst}`; ``"backward"`` back-propagates step ``dst``, rebuilding it from the stored ``src``."""

    kind: str
    src: int
    dst: int

    @property
    def cost(self) -> int:
        return self.dst - self.src


def optimal_policy(T: int, m: int) -> list[Action]:
    """The plan the recurrence implies, as a list of actions (its costs add up to Q(T, m))."""
    T, m = _check(T, m)
    _, Y = cost_table(T, m)
    plan: list[Action] = []

    def solve(start: int, t: int, k: int) -> None:
        if t == 1 or k == 1:
            plan.extend(Action("backward", start, j) for j in range(start + t, start, -1))
            return
        y = int(Y[t, k])
        plan.append(Action("store", start, start + y))
        solve(start + y, t - y, k - 1)
        solve(start, y, k)

    solve(0, T, m)
    return plan


def replay(plan: list[Action], T: int, m: int) -> dict[str, int]:
    """Run a plan on the cost model and check it: every action reads a stored state, never more than m
    states are held, and steps T..1 are back-propagated in order.

    Returns:
        ``{"cost": ..., "peak_slots": ..., "stored": ...}``: step evaluations, most slots held at once, and
        how many states were written.

    Raises:
        ValueError: the plan breaks the model (the message says which action and why).
    """
    T, m = _check(T, m)
    held, todo, cost, peak, stored = {0}, T, 0, 1, 0
    for n, a in enumerate(plan):
        if a.src not in held:
            raise ValueError(f"action {n} ({a}) reads s_{a.src}, which is not stored")
        if a.kind == "store":
            if not a.src < a.dst < todo:
                raise ValueError(f"action {n} ({a}) stores a state that is not needed")
            held.add(a.dst)
            stored += 1
        elif a.kind == "backward":
            if a.dst != todo or a.src >= a.dst:
                raise ValueError(f"action {n} ({a}) is out of order: step {todo} is next")
            todo -= 1
            held = {s for s in held if s < todo or s == 0}
        else:
            raise ValueError(f"action {n} has unknown kind {a.kind!r}")
        if len(held) > m:
            raise ValueError(f"action {n} ({a}) holds {len(held)} states with {m} slots")
        cost += a.cost
        peak = max(peak, len(held))
    if todo:
        raise ValueError(f"the plan stops with steps 1..{todo} not back-propagated")
    return {"cost": cost, "peak_slots": peak, "stored": stored}


def uniform_plan(T: int, n: int) -> list[Action]:
    r"""Chapter 06's policy: checkpoints :math:`s_0, s_L, s_{2L}, \dots` (n of them, L = ceil(T/n)) stored
    on the way forward; then, segment by segment from the last, its inner states stored and its steps
    back-propagated."""
    T, n = _check(T, n, "n")
    L = -(-T // n)
    starts = list(range(0, T, L))
    plan = [Action("store", a, b) for a, b in zip(starts, starts[1:])]
    for lo in reversed(starts):
        hi = min(T, lo + L)
        plan.extend(Action("store", j, j + 1) for j in range(lo, hi - 1))
        plan.extend(Action("backward", j - 1, j) for j in range(hi, lo, -1))
    return plan


def uniform_slots(T: int, n: int) -> int:
    """The most slots :func:`uniform_plan` holds at once: the checkpoints still needed and one segment's
    inner states (at most n + L - 1)."""
    return replay(uniform_plan(T, n), T, T + 1)["peak_slots"]


def uniform_cost(T: int, n: int) -> int:
    """The step evaluations of :func:`uniform_plan`."""
    return replay(uniform_plan(T, n), T, T + 1)["cost"]


def brute_force_cost(T: int, m: int) -> int:
    """The optimum of the cost model found by a shortest-path search over every reachable memory
    configuration (which states are held, how many steps are left), independent of the recurrence.
    Exponential in T: for tests with T up to about 10."""
    T, m = _check(T, m)
    start = (frozenset({0}), T)
    best = {start: 0}
    queue = [(0, 0, start)]
    tie = 0
    while queue:
        cost, _, (held, todo) = heapq.heappop(queue)
        if todo == 0:
            return cost
        if cost > best[(held, todo)]:
            continue
        moves = []
        for src in held:
            if src < todo:  # back-propagate step `todo`, rebuilt from s_src
                moves.append((todo - src, frozenset(s for s in held if s < todo - 1 or s == 0), todo - 1))
            if len(held) < m:  # store a later state
                moves.extend((dst - src, held | {dst}, todo) for dst in range(src + 1, todo) if dst not in held)
        for s in held - {0}:  # forget a state (free a slot)
            moves.append((0, held - {s}, todo))
        for step, new_held, new_todo in moves:
            key = (new_held, new_todo)
            if cost + step < best.get(key, np.inf):
                best[key] = cost + step
                tie += 1
                heapq.heappush(queue, (cost + step, tie, key))
    raise AssertionError("unreachable: back-propagating from s_0 alone is always possible")
