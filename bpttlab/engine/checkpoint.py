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
import warnings

import numpy as np

from .. import validation as V
from ..cells.base import assemble
from .passes import clip_after
from .results import BPTTResult
from ..network import Network


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
    norm = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values()))
    if not math.isfinite(norm):
        warnings.warn("the gradient is not finite (values exploded during the pass); use clipping or a "
                      "smaller weight scale", RuntimeWarning, stacklevel=3)
    clipped_grads, clipped = clip_after(grads, norm, clip)
    return BPTTResult(loss=float(losses.sum()), losses=losses, grads=clipped_grads, raw_grads=grads,
                      grad_norm=norm, clipped=clipped or tau > 0.0, trace=None, k2=k2, clip=clip,
                      _by_copy=_unavailable("by_copy"), _by_loss=_unavailable("by_loss"))


class _Segments:
    """One network and sequence cut into segments of L copies: forward, loss and backward per segment."""

    def __init__(self, net: Network, xs: np.ndarray, y: np.ndarray, loss_obj, scale: float, L: int):
        self.net, self.xs, self.y, self.loss_obj, self.scale, self.L = net, xs, y, loss_obj, scale, L
        self.sizes = net.cell.site_sizes(net.n_in, net.n_hidden, net.n_out)

    def forward(self, lo: int, s: np.ndarray, hi: int | None = None) -> dict[str, np.ndarray]:
        """The trace of copies lo..hi-1 (default: one segment) from the state s entering copy lo."""
        hi = min(self.xs.shape[0], lo + self.L if hi is None else hi)
        return self.net.cell.forward(self.net.params, self.xs[lo:hi], s, self.net.activation)

    def checkpoints(self, s0: np.ndarray) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """The states entering each segment, and the last segment's trace; warns at the first non-finite
        output, as plain BPTT does."""
        states, warned = [s0], False
        for lo in range(0, self.xs.shape[0], self.L):
            tr = self.forward(lo, states[-1])
            bad = ~np.isfinite(tr["outputs"].reshape(tr["outputs"].shape[0], -1)).all(axis=1)
            if bad.any() and not warned:
                warned = True
                warnings.warn(f"non-finite output from time step t={lo + int(np.argmax(bad)) + 1} on (values "
                              "exploded); try a smaller learning rate, clipping or a smaller weight scale",
                              RuntimeWarning, stacklevel=4)
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

    def _cotangents(self, n: int, B: int) -> dict[str, np.ndarray]:
        return {site: np.zeros((n, B, m)) for site, m in self.sizes.items()}

    def _add_gradient(self, tr, start: int, cots, grads) -> None:
        xs = self.xs[start:start + tr["outputs"].shape[0]]
        with np.errstate(all="ignore"):  # a non-finite gradient is reported once, by checkpointed_bptt
            for name, g in assemble(self.net.cell, tr, xs, cots).items():
                grads[name] += g

    def backward(self, tr, start: int, lo: int, carry: np.ndarray, tau: float, grads, losses) -> np.ndarray:
        """Back-propagate the segment's losses and ``carry`` through it; returns dE/ds at its start."""
        dO = self._loss(tr, start, lo, losses)
        n, B = dO.shape[:2]
        cots = self._cotangents(n, B)
        carry = self.net.cell.window(self.net.params, tr, dO, self.net.activation, cots, 0, n, 0, carry, tau)
        self._add_gradient(tr, start, cots, grads)
        return carry

    def truncated(self, tr, start: int, lo: int, k2: int, tau: float, grads, losses) -> None:
        """The k2-truncated chains of the losses of copies >= lo in a trace that starts at copy start."""
        dO = self._loss(tr, start, lo, losses)
        n, B = dO.shape[:2]
        cots = self._cotangents(n, B)
        self.net.cell.truncated(self.net.params, tr, dO, self.net.activation, cots, k2, tau)
        self._add_gradient(tr, start, cots, grads)
