r"""Checkpointed BPTT: keep a few states, recompute the rest during the backward pass.

Plain BPTT keeps the whole forward pass (every state, gate and output, O(T) arrays) and the whole
backward pass (every site cotangent and :math:`\partial E_t/\partial o_t`) alive at once. Checkpointing
(Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"; Gruslys et al. 2016,
"Memory-Efficient Backpropagation Through Time") trades memory for a second forward pass.

With n checkpoints the T copies are cut into segments of :math:`L = \lceil T/n \rceil` copies.

* Forward, segment by segment, keeping only the state entering each segment,
  :math:`s_0, s_L, s_{2L}, \dots` (the checkpoints), and the whole trace of the last segment.
* Backward, from the last segment to the first: recompute the segment's trace from its checkpoint,
  the losses :math:`E_t` and :math:`\partial E_t/\partial o_t` of its copies, and run the cell's backward
  window over it with the state cotangent carried in from the segment after it,

  .. math::

      \bar s_{lo} = \text{window}_{[lo, hi)}\bigl(\bar s_{hi}\bigr), \qquad
      \frac{\partial E}{\partial \theta} \mathrel{+}= \sum_{t=lo}^{hi-1} \bar a_t\, u_t^\top .

The sum is the plain BPTT gradient grouped by segment, so the two agree to rounding. Memory is
:math:`n S` numbers for the checkpoints plus one segment's trace and cotangents, :math:`L m` numbers
(m per copy, m >> S): :math:`n S + (T/n) m`, smallest near :math:`n = \sqrt{T m / S}`; ``"sqrt"`` takes
:math:`n = \lceil\sqrt T\,\rceil`. The price is recomputing the forward pass of the first :math:`T - L`
copies. n = 1 is plain BPTT; n = T stores every state and recomputes every copy but the last.

With truncation (k2 < T, or step clipping of each loss's chain) each loss back-propagates at most k2
copies, so segments are made at least k2 long and each block of losses recomputes the segment before
it as well: the chains of its losses then lie inside the recomputed stretch.
"""
from __future__ import annotations

import math

import numpy as np

from .. import validation as V
from ..network import Network
from .passes import clip_after, norm, warn_nonfinite, warn_nonfinite_gradient
from .results import BPTTResult
from .tiers import tier


def n_checkpoints(checkpoint, T: int) -> int:
    """The number of stored states for ``checkpoint="sqrt"`` (ceil(sqrt(T))) or an int (at most T).

    Raises:
        TypeError, ValueError: ``checkpoint`` is neither "sqrt" nor a positive int.
    """
    if checkpoint == "sqrt":
        return math.isqrt(T - 1) + 1
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, (int, np.integer)):
        raise TypeError(f"checkpoint must be None, 'sqrt' or a positive int (the number of stored states), "
                        f"got {checkpoint!r}")
    if checkpoint < 1:
        raise ValueError(f"checkpoint must be None, 'sqrt' or a positive int (the number of stored states), "
                         f"got {checkpoint}")
    return min(int(checkpoint), T)


def _unavailable(what: str):
    def fail():
        raise ValueError(f"{what} is not kept by checkpointed BPTT (it holds T values per parameter, the "
                         f"memory checkpointing saves); call bl.bptt without checkpoint= for {what}")
    return fail


def checkpointed_bptt(net: Network, xs, targets, loss="mse", reduction: str = "sum", k2: int | None = None,
                      clip=None, h0=None, checkpoint="sqrt") -> BPTTResult:
    """:func:`bpttlab.bptt` with ``checkpoint=``: the same gradients, with a fraction of the memory.

    Args:
        net, xs, targets, loss, reduction, k2, clip, h0: as for :func:`bpttlab.bptt`.
        checkpoint: "sqrt" or the number n of stored states (segments of ceil(T/n) copies).

    Returns:
        a :class:`bpttlab.BPTTResult` with ``loss``, ``losses``, ``grads``, ``raw_grads``, ``grad_norm``;
        ``trace`` is None (the forward pass is exactly what is not kept; ``bl.forward`` gives it), and
        ``by_copy`` / ``by_loss`` raise ValueError.
    """
    V.check_network(net)
    batch = V.inputs(net, xs)
    s0 = V.initial_state(net, h0, batch)
    loss_obj = V.loss_plugin(loss)
    y = V.targets(loss_obj, targets, net, batch)
    scale = 1.0 / (batch.T * batch.B) if V.reduction(reduction) == "mean" else 1.0
    k2 = V.positive_int(k2, "k2", allow_none=True)
    clip = V.clip(clip)
    tau = clip[1] if clip and clip[0] == "step" else 0.0
    T = batch.T
    L = -(-T // n_checkpoints(checkpoint, T))
    full = k2 is None or (k2 >= T and tau == 0.0)
    if not full:
        L = max(L, min(k2, T))
    run = _Segments(net, batch.xs, y, loss_obj, scale, L)
    states, tr = run.checkpoints(s0)
    grads = {name: np.zeros(shape) for name, shape in net.shapes.items()}
    losses = np.zeros(T)
    if full:
        carry = np.zeros_like(s0)
        for j in range(len(states) - 1, -1, -1):
            lo = j * L
            if tr is None:
                tr = run.forward(lo, states[j])
            carry = run.backward(tr, lo, lo, carry, tau, grads, losses)
            tr = None  # free this segment before the next one is recomputed
    else:
        del tr  # the last block of losses needs the segment before it as well: it is recomputed
        for j in range(len(states) - 1, -1, -1):
            lo = j * L
            start = max(0, lo - k2 + 1) // L * L
            tr = run.forward(start, states[start // L], lo + L)
            run.truncated(tr, start, lo, min(k2, T), tau, grads, losses)
    size = norm(grads)
    warn_nonfinite_gradient(size)
    clipped_grads, clipped = clip_after(grads, size, clip)
    return BPTTResult(loss=float(losses.sum()), losses=losses, grads=clipped_grads, raw_grads=grads,
                      grad_norm=size, clipped=clipped or tau > 0.0, trace=None, k2=k2, clip=clip,
                      _by_copy=_unavailable("by_copy"), _by_loss=_unavailable("by_loss"))


class _Segments:
    """One network and sequence cut into segments of L copies: forward, loss and backward per segment."""

    def __init__(self, net: Network, xs: np.ndarray, y: np.ndarray, loss_obj, scale: float, L: int):
        self.net, self.xs, self.y, self.loss_obj, self.scale, self.L = net, xs, y, loss_obj, scale, L
        self.tier = tier(net.cell, net.activation)

    def forward(self, lo: int, s: np.ndarray, hi: int | None = None) -> dict[str, np.ndarray]:
        """The trace of copies lo..hi-1 (default: one segment) from the state s entering copy lo."""
        hi = min(self.xs.shape[0], lo + self.L if hi is None else hi)
        with np.errstate(all="ignore"):  # overflow is reported once, by checkpoints
            return self.tier.forward(self.net.params, self.xs[lo:hi], s)

    def checkpoints(self, s0: np.ndarray) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """The states entering each segment, and the last segment's trace; warns at the first non-finite
        output, as plain BPTT does."""
        states, warned = [s0], False
        for lo in range(0, self.xs.shape[0], self.L):
            tr = self.forward(lo, states[-1])
            warned = warned or warn_nonfinite(tr["outputs"], "output", offset=lo)
            if lo + self.L < self.xs.shape[0]:
                states.append(tr["states"][-1].copy())
        return states, tr

    def _loss(self, tr, start: int, lo: int, losses: np.ndarray) -> np.ndarray:
        """dE_t/do_t of the trace's copies (zero before copy lo); E_t of copies >= lo into ``losses``."""
        out = tr["outputs"]
        hi = start + out.shape[0]
        dO = np.zeros_like(out)
        with np.errstate(all="ignore"):
            E = self.loss_obj.value(out[lo - start:], self.y[lo:hi]) * self.scale
            dO[lo - start:] = self.loss_obj.grad(out[lo - start:], self.y[lo:hi]) * self.scale
        losses[lo:hi] = E.sum(axis=1)
        return dO

    def _add(self, grads: dict[str, np.ndarray], more: dict[str, np.ndarray]) -> None:
        for name, g in more.items():
            grads[name] += g

    def backward(self, tr, start: int, lo: int, carry: np.ndarray, tau: float, grads, losses) -> np.ndarray:
        """Back-propagate the segment's losses and ``carry`` through it; returns dE/ds at its start."""
        dO = self._loss(tr, start, lo, losses)
        n = dO.shape[0]
        xs = self.xs[start:start + n]
        with np.errstate(all="ignore"):  # a non-finite gradient is reported once, by checkpointed_bptt
            carry, more = self.tier.backward(self.net.params, tr, xs, dO, 0, n, 0, carry, tau)
        self._add(grads, more)
        return carry

    def truncated(self, tr, start: int, lo: int, k2: int, tau: float, grads, losses) -> None:
        """The k2-truncated chains of the losses of copies >= lo in a trace that starts at copy start."""
        dO = self._loss(tr, start, lo, losses)
        xs = self.xs[start:start + dO.shape[0]]
        with np.errstate(all="ignore"):
            self._add(grads, self.tier.truncated(self.net.params, tr, xs, dO, k2, tau))
