r"""Exercise ``checkpoint-segment`` (chapter 06): back-propagate one checkpointed segment.

Checkpointed BPTT keeps only the state :math:`h_{lo}` entering each segment. In the backward pass, a
segment of a tanh Elman network with copies :math:`lo+1, \dots, hi` is recomputed from its checkpoint and
back-propagated with the gradient :math:`\bar h_{hi} = \partial E_{>hi}/\partial h_{hi}` handed back by the
segment after it (``carry``):

.. math::

    \bar h_t = V^\top (o_t - y_t) + W^\top \bar a_{t+1} \;(+\ \text{carry at } t = hi), \qquad
    \bar a_t = (1 - h_t^2) \odot \bar h_t,

    \frac{\partial E}{\partial W}\Big|_{\text{segment}} = \sum_{t=lo+1}^{hi} \bar a_t\, h_{t-1}^\top,
    \qquad \bar h_{lo} = W^\top \bar a_{lo+1}.

The student returns ``{"W": the segment's share of dE/dW, "carry": dE/dh_lo}``; chaining this over the
segments from the last to the first gives plain BPTT's dE/dW exactly (the test checks that).
"""
from __future__ import annotations

import numpy as np

from .. import forward
from .exercise import PREFIX, Exercise, Slip
from .instances import elman_problem
from .mistakes import elman_site_cotangents, no_derivative, tanh_derivative
from .references import elman

ARGS = "W, U, b, V, c, xs, targets, h_lo, carry"


def _inputs(rng: np.random.Generator) -> dict:
    p = elman_problem(rng)
    H = p["W"].shape[0]
    p.update(h_lo=rng.uniform(-0.8, 0.8, H), carry=rng.normal(0.0, 1.0, H))
    return p


def _segment(start="checkpoint", with_carry=True, derivative=tanh_derivative, transposed=True, carry_out="h"):
    """The answer with one slip: the state the recomputation starts from, whether the carry enters, the
    tanh derivative, W or Wᵀ going back, and whether the returned carry is dE/dh_lo or dE/da_{lo+1}."""
    def compute(W, U, b, V, c, xs, targets, h_lo, carry):
        W, V, xs, targets = (np.asarray(x, dtype=float) for x in (W, V, xs, targets))
        h0 = np.asarray(h_lo, dtype=float) if start == "checkpoint" else np.zeros(W.shape[0])
        h = forward(elman(W, U, b, V, c), xs, h0=h0).h
        a = h[:-1] @ W.T + xs @ np.asarray(U, dtype=float).T + b
        obar = h[1:] @ V.T + c - targets
        # the carry enters h_hi: a pseudo-output row with V = I reaches h̄_hi, and nothing else
        Vx = np.vstack([V, np.eye(W.shape[0])])
        ob = np.hstack([obar, np.zeros((len(xs), W.shape[0]))])
        if with_carry:
            ob[-1, V.shape[0]:] = carry
        abar = elman_site_cotangents(W, Vx, a, h[1:], ob, derivative=derivative, recurrent_transposed=transposed)
        M = W.T if transposed else W
        return {"W": np.einsum("ti,tj->ij", abar, h[:-1]), "carry": M @ abar[0] if carry_out == "h" else abar[0]}
    return compute


reference = _segment()

CHECKPOINT_SEGMENT = Exercise(
    id="checkpoint-segment", title="Checkpointed BPTT: back-propagate one recomputed segment",
    chapter="6 Memory",
    prompt="A tanh Elman network (o_t = V h_t + c, E_t = ½‖o_t - y_t‖²) stored only the checkpoint h_lo, the "
           "state entering this segment; xs and targets are the segment's inputs and targets (copies "
           "lo+1..hi) and carry = ∂E/∂h_hi, what the later segments hand back. Recompute the segment from "
           "h_lo, back-propagate its own losses and the carry through it, and return {'W': its share of "
           "dE/dW, Σ_t ā_t h_{t-1}ᵀ over its copies, 'carry': ∂E/∂h_lo}.",
    function="segment_backward", signature=f"segment_backward({ARGS}) -> dict", parameter="answer",
    generate=_inputs, reference=reference,
    slips=(
        Slip("wrong_start_state", "the segment recomputed from h = 0 instead of h_lo", _segment(start="zero")),
        Slip("wrong_truncation", "the carry from the later segments ignored (cut at the segment's end)",
             _segment(with_carry=False),
             hint="The later losses reach this segment only through carry = ∂E/∂h_hi: add it to h̄ at the last "
                  "copy before going back. Without it the segment boundary truncates the gradient."),
        Slip("off_by_one_time", "returned ā_{lo+1} = ∂E/∂a_{lo+1} as the carry instead of ∂E/∂h_lo",
             _segment(carry_out="a"),
             hint="The carry handed to the previous segment is ∂E/∂h_lo = Wᵀ ā_{lo+1}: one more step back "
                  "through a_{lo+1} = W h_lo + ..."),
        Slip("transposed", "W ā_{t+1} instead of Wᵀ ā_{t+1} going back", _segment(transposed=False),
             hint="Going back through a_{t+1} = W h_t multiplies by Wᵀ: h̄_t receives W.T @ ā_{t+1}."),
        Slip("activation_derivative_missing", "the factor 1 - h_t² left out", _segment(derivative=no_derivative)),
    ),
    points=2.0, hints=("Run forward from h_lo to get h_lo..h_hi, then loop t = hi..lo+1 with the carry added "
                       "to h̄_hi.",),
    timeline=PREFIX,
)
