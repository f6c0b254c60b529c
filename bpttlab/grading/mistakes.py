r"""The catalogue of known mistakes, and the few computations that reproduce them.

Each exercise lists its :class:`~bpttlab.grading.exercise.Slip` s: one mistake of this catalogue, made
concretely ("h_t used where h_{t-1} belongs"), computed from the same engine quantities as the reference
(:mod:`bpttlab.grading.references`). A wrong answer that equals a slip's answer on an instance is
diagnosed as that mistake.

Most slips are a rearrangement of reference quantities (a diagonal of the contribution table, a shifted
sum, a sign, a transpose). The ones that change the backward recursion itself (a missing or wrong
activation derivative, W where :math:`W^\top` belongs) rerun the Elman recursion of ARCHITECTURE.md with
that one change, :func:`elman_site_cotangents`, on the engine's forward pass:

.. math::

    \bar h_t = V^\top \bar o_t + W^\top \bar a_{t+1}, \qquad \bar a_t = f'(a_t) \odot \bar h_t .
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Mistake:
    """A kind of mistake.

    Attributes:
        key: its name in :data:`CATALOGUE` (what the gradebook records).
        title: a few words, shown as the diagnosis.
        explanation: what the mistake is, in the notation of the course.
        hint: how to fix it.
    """

    key: str
    title: str
    explanation: str
    hint: str


_ENTRIES = (
    Mistake("explicit_only", "explicit term only (implicit paths missing)",
            "Only the explicit term of each derivative, C[t][t] = dE_t/dh_t · ∂⁺h_t/∂θ, is there: the implicit "
            "paths, through which θ also reaches h_t via h_{t-1}, h_{t-2}, ..., are missing.",
            "Carry dE/dh_t back to dE/dh_{t-1} = Wᵀ (f'(a_t) ⊙ dE/dh_t) and add it to what h_{t-1} gets "
            "from its own loss; then every copy k ≤ t contributes."),
    Mistake("activation_derivative_missing", "activation derivative missing",
            "Going back through an activation needs its derivative: from dE/dh_t to dE/da_t for h_t = f(a_t) "
            "the factor f'(a_t) (for tanh, 1 - h_t²); it was left out.",
            "Multiply elementwise by the activation's derivative every time the gradient passes through an "
            "activation, e.g. by f'(a_t) for h_t = f(a_t)."),
    Mistake("activation_derivative_wrong", "wrong activation derivative",
            "The activation's derivative is there but wrong: evaluated at the wrong quantity (for tanh, "
            "1 - a_t² instead of 1 - h_t²) or taken from another activation.",
            "tanh'(a) = 1 - tanh(a)² = 1 - h² and σ'(a) = σ(a)(1 - σ(a)), written with the stored output h."),
    Mistake("off_by_one_time", "off by one in time",
            "A quantity of a neighbouring time step was used: h_t where h_{t-1} belongs, x_{t-1} for x_t, "
            "or the states h_0..h_{T-1} instead of h_1..h_T.",
            "Write out step t and check every index. Arrays are 0-based: xs[0] is x_1, and h_0 is the "
            "initial state, not the first output of the network."),
    Mistake("no_accumulation", "no accumulation over time",
            "Only one time step's term is left: the terms of the other steps were overwritten (= where += "
            "belongs) instead of summed.",
            "Add up the terms of all time steps (+=, not =): E = Σ_t E_t, and a parameter is shared by every "
            "copy of the cell."),
    Mistake("mean_instead_of_sum", "mean instead of sum",
            "The answer is divided by the number of losses it adds up: the loss here is a sum, E = Σ_t E_t, "
            "not a mean.",
            "Drop the division: reduction 'sum' adds the per-step losses and their gradients."),
    Mistake("transposed", "transposed matrix",
            "A matrix is transposed: Wᵀ used where W belongs or W where Wᵀ belongs, or the axes of the "
            "answer swapped.",
            "Check every matrix product against the shapes: in a_t = W h_{t-1}, W[i, j] connects unit j of "
            "h_{t-1} to unit i of a_t."),
    Mistake("wrong_truncation", "truncated at the wrong k",
            "The gradient is truncated at the wrong place: one copy too many or too few, no truncation at "
            "all, or k1 and k2 mixed up.",
            "With truncation k2, each loss E_t keeps the copies k = t-k2+1, ..., t: exactly k2 of them (all t "
            "of them while t ≤ k2)."),
    Mistake("sign_flipped", "sign flipped",
            "A sign is flipped, typically the loss gradient dE_t/do_t written as y_t - o_t instead of "
            "o_t - y_t (or another difference taken the wrong way round), which negates everything "
            "downstream.",
            "For E_t = ½‖o_t - y_t‖², dE_t/do_t = o_t - y_t; a gradient step subtracts lr times the gradient."),
    Mistake("elementwise_product", "elementwise product where a matrix product belongs",
            "An elementwise product (*) was used where a matrix product belongs: delta * h instead of the "
            "outer product np.outer(delta, h), or W * h instead of W @ h.",
            "Check shapes: a gradient like dE/dW = Σ_t ā_t h_{t-1}ᵀ is a sum of outer products (np.outer), "
            "a matrix; W h_{t-1} is a matrix-vector product (@)."),
    Mistake("per_tensor_clipping", "each gradient clipped by its own norm",
            "Every parameter's gradient was rescaled by its own norm; norm clipping rescales all of them by "
            "one factor computed from the global norm ‖g‖ = √(Σ_θ ‖g_θ‖²), which keeps the direction.",
            "Compute one norm over all parameters together, then one scale factor τ/‖g‖."),
    Mistake("always_rescaled", "rescaled even below the threshold",
            "The gradient was rescaled to norm τ although its norm was already at most τ.",
            "Clip only when ‖g‖ > τ; otherwise return the gradient unchanged."),
    Mistake("clipped_by_value", "clipped by value, not by norm",
            "Each entry was clipped to [-τ, τ]: that is value clipping, which changes the direction.",
            "Rescale the whole gradient: g ← g · τ / ‖g‖ when ‖g‖ > τ."),
    Mistake("library_use", "uses the library's gradient",
            "The graded function (or a helper it calls) gets its answer from bpttlab itself (bl.bptt, "
            "bl.contributions, bl.forward, an internal module or a %bptt magic): the exercise asks you to "
            "compute it, so it earns no points.",
            "Write the computation with NumPy in the graded function; compare it with bl.bptt in another "
            "cell, not inside the function."),
    Mistake("wrong_matrix_norm", "the wrong size of a matrix",
            "A matrix was measured by the wrong number: the spectral radius ρ(W) (largest |eigenvalue|) or the "
            "Frobenius norm where the largest singular value σ_max(W) = ‖W‖₂ belongs. Only ‖W‖₂ bounds "
            "‖W v‖ ≤ ‖W‖₂ ‖v‖ for every v, so only it bounds a product of Jacobians.",
            "Use np.linalg.norm(W, 2), the largest singular value; ρ(W) can be far smaller for a matrix that is "
            "not symmetric."),
    Mistake("product_order_reversed", "the factors of a product in the wrong order",
            "Matrix products do not commute: ∂h_t/∂h_k = J_t J_{t-1} ⋯ J_{k+1}, the newest Jacobian on the "
            "left; the factors were multiplied the other way round.",
            "Multiply each new Jacobian in on the left: P ← J_j @ P."),
    Mistake("gate_missing", "a gate's factor left out",
            "A path through a gated cell lost the gate that multiplies it, e.g. the forget gate f_{t+1} on "
            "the way from c_{t+1} back to c_t, or the output gate o_t on the way from h_t to c_t.",
            "Write the step out: c_{t+1} = f_{t+1} ⊙ c_t + i_{t+1} ⊙ g_{t+1} and h_t = o_t ⊙ tanh(c_t); every "
            "factor a forward product applies, the backward pass applies too."),
    Mistake("wrong_start_state", "recomputed from the wrong state",
            "A recomputed stretch of the forward pass started from the wrong state (zero, or another "
            "checkpoint) instead of the checkpoint stored for it, so every recomputed value is off.",
            "Start the recomputation from the state that was stored when the forward pass entered the "
            "segment: h = h_lo, not zeros."),
    Mistake("softmax_missing", "probabilities not taken through the softmax",
            "For E_t = -log softmax(o_t)[y_t] the gradient at the output is p_t - onehot(y_t) with the "
            "probabilities p_t = softmax(o_t) = exp(o_t) / Σ_j exp(o_t[j]); something else stood in for p_t: "
            "the logits o_t themselves (which gives the mse gradient), exp(o_t) without its normaliser, or "
            "log p_t.",
            "Turn each step's logits into probabilities first, p = np.exp(o - o.max()); p /= p.sum(), then "
            "subtract 1 at the target: p[y] -= 1."),
    Mistake("wrong_axis", "reduced over the wrong axis",
            "A sum, mean, maximum or softmax normaliser was taken over the wrong axis of an array: over time "
            "(axis 0) where it belongs over the units or classes of one step (the last axis), or the other "
            "way round.",
            "Name each axis (time first, then units or classes) and pass axis= explicitly: a softmax over "
            "the classes of each step is normalised with .sum(axis=-1, keepdims=True)."),
)

#: key -> Mistake, in the order the diagnosis tries them.
CATALOGUE: dict[str, Mistake] = {m.key: m for m in _ENTRIES}

def tanh_derivative(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """tanh'(a) = 1 - h², the right one."""
    return 1.0 - h * h


def no_derivative(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The slip: no factor at all."""
    return np.ones_like(h)


def pre_activation_derivative(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The slip: 1 - a², the formula evaluated at the pre-activation."""
    return 1.0 - a * a


def sigmoid_form_derivative(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The slip: h (1 - h), the sigmoid's derivative, for a tanh unit."""
    return h * (1.0 - h)


def elman_site_cotangents(W: np.ndarray, V: np.ndarray, a: np.ndarray, h: np.ndarray, obar: np.ndarray,
                          derivative: Callable[[np.ndarray, np.ndarray], np.ndarray] = tanh_derivative,
                          recurrent_transposed: bool = True) -> np.ndarray:
    r"""The Elman backward recursion, optionally with one slip.

    .. math::

        \bar h_t = V^\top \bar o_t + M \bar a_{t+1}, \qquad \bar a_t = d(a_t, h_t) \odot \bar h_t,
        \qquad M = W^\top \text{ (or } W \text{ when not recurrent\_transposed)}

    With the defaults this is the textbook recursion; tests check it against the engine.

    Args:
        W, V: the recurrent and output matrices.
        a: pre-activations a_1..a_T, (T, H).
        h: hidden states h_1..h_T, (T, H).
        obar: dE/do_t, (T, O); rows of losses that do not count are zero.
        derivative: ``derivative(a, h) -> f'`` used for tanh.
        recurrent_transposed: multiply by :math:`W^\top` (right) or by W (the transposition slip).

    Returns:
        :math:`\bar a_t = \partial E/\partial a_t`, (T, H).
    """
    M = W.T if recurrent_transposed else W
    abar = np.zeros_like(a)
    carry = np.zeros(a.shape[1])
    for t in range(a.shape[0] - 1, -1, -1):
        hbar = V.T @ obar[t] + carry
        abar[t] = derivative(a[t], h[t]) * hbar
        carry = M @ abar[t]
    return abar


def derivative_slips() -> tuple[tuple[str, str, Callable], ...]:
    """(mistake, detail, derivative) for the activation-derivative slips of a tanh cell."""
    return (
        ("activation_derivative_missing", "the factor f'(a_t) left out", no_derivative),
        ("activation_derivative_wrong", "f'(a_t) written as 1 - a_t² (at the pre-activation) instead of "
                                        "1 - h_t²", pre_activation_derivative),
        ("activation_derivative_wrong", "f'(a_t) written as h_t (1 - h_t), the sigmoid's form, instead of "
                                        "1 - h_t²", sigmoid_form_derivative),
    )
