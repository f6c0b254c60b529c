r"""Exercise ``backward-sweep``: every gradient of a sequence from one backward sweep (chapter 03).

Adding up the table :math:`C[t][k]` loss by loss walks back from every step t on its own:
:math:`\sum_t t = T(T+1)/2` backward steps, quadratic in T. One sweep from t = T down to 1 carries

.. math::

    \bar h_t = V^\top (o_t - y_t) + W^\top \bar a_{t+1}, \qquad \bar a_t = f'(a_t) \odot \bar h_t,
    \qquad \bar a_{T+1} = 0,

so that every later loss reaches copy t through :math:`\bar a_{t+1}`: T backward steps. The gradients of
all five parameters of a tanh Elman network with the mse loss follow from the same sweep:

.. math::

    \frac{\partial E}{\partial W} = \sum_t \bar a_t h_{t-1}^\top,\quad
    \frac{\partial E}{\partial U} = \sum_t \bar a_t x_t^\top,\quad
    \frac{\partial E}{\partial b} = \sum_t \bar a_t,\quad
    \frac{\partial E}{\partial V} = \sum_t \bar o_t h_t^\top,\quad
    \frac{\partial E}{\partial c} = \sum_t \bar o_t .

The reference is the engine's :func:`bpttlab.bptt`. Most slips rerun the sweep on the engine's forward
pass with one change (:func:`_swept`), the way a student gets it wrong; the others rescale the reference
or keep only copy 1's terms.
"""
from __future__ import annotations

import numpy as np

from ..engine import bptt
from . import references as R
from .exercise import PREFIX, Exercise, Slip
from .instances import elman_problem
from .mistakes import derivative_slips, tanh_derivative

_ARGS = "W, U, b, V, c, xs, targets"


def all_gradients(W, U, b, V, c, xs, targets) -> dict[str, np.ndarray]:
    """dE/dθ for θ = W, U, b, V, c, by the engine's BPTT (sum over time)."""
    grads = bptt(R.elman(W, U, b, V, c), xs, targets).grads
    return {name: grads[name] for name in R.ELMAN_PARAMETERS}


def _sweep(W, V, a, h, obar, derivative=tanh_derivative, carry_derivative=True, carry_abar=True):
    r"""The backward sweep :math:`\bar a_t`, t = T..1, with the switches of two slips.

    Args:
        a, h: a_1..a_T and h_1..h_T, (T, H); obar: dE/do_t, (T, O).
        derivative: ``derivative(a, h) -> f'(a)``.
        carry_derivative: False applies f'(a_t) to the own loss's term only,
            :math:`\bar a_t = f'(a_t) \odot V^\top \bar o_t + W^\top \bar a_{t+1}`.
        carry_abar: False carries :math:`W^\top \bar h_{t+1}` (no :math:`f'(a_{t+1})`) instead of
            :math:`W^\top \bar a_{t+1}`.
    """
    abar = np.zeros_like(a)
    carry = np.zeros(a.shape[1])
    for t in range(a.shape[0] - 1, -1, -1):
        own = V.T @ obar[t]
        slope = derivative(a[t], h[t])
        abar[t] = slope * (own + carry) if carry_derivative else slope * own + carry
        carry = W.T @ (abar[t] if carry_abar else own + carry)
    return abar


def _gradients(abar, obar, h, xs) -> dict[str, np.ndarray]:
    """The five gradients from the sweep's ā_t and ō_t; h is h_0..h_T."""
    xs = np.asarray(xs)
    return {"W": abar.T @ h[:-1], "U": abar.T @ xs, "b": abar.sum(axis=0), "V": obar.T @ h[1:],
            "c": obar.sum(axis=0)}


def _swept(recurrent=lambda W: W, state_shift=0, **switches):
    """A slip: the five gradients from a sweep over the engine's forward pass with one change.

    ``recurrent(W)`` is the matrix whose transpose carries ā back (``W.T`` for the transposition slip);
    ``state_shift=1`` pairs ā_t with h_t instead of h_{t-1} in dE/dW; ``switches`` go to :func:`_sweep`.
    """
    def compute(W, U, b, V, c, xs, targets):
        u = R.unroll(W, U, b, V, c, xs, targets)
        W, V = np.asarray(W), np.asarray(V)
        abar = _sweep(recurrent(W), V, u.a, u.h[1:], u.obar, **switches)
        grads = _gradients(abar, u.obar, u.h, xs)
        if state_shift:
            grads["W"] = abar.T @ u.h[1:]
        return grads
    return compute


def _first_copy_only(W, U, b, V, c, xs, targets):
    """= where += belongs in a loop from t = T down to 1: only copy 1's terms are left."""
    u = R.unroll(W, U, b, V, c, xs, targets)
    x1 = np.asarray(xs)[0]
    return {"W": np.outer(u.abar[0], u.h[0]), "U": np.outer(u.abar[0], x1), "b": u.abar[0],
            "V": np.outer(u.obar[0], u.h[1]), "c": u.obar[0]}


def _scaled(factor):
    return lambda **kw: {k: factor * g for k, g in all_gradients(**kw).items()}


_CARRY = ("What goes back from step t+1 to step t is Wᵀ ā_{t+1}, with ā_{t+1} = f'(a_{t+1}) ⊙ dE/dh_{t+1}; "
          "then ā_t = f'(a_t) ⊙ (Vᵀ(o_t - y_t) + Wᵀ ā_{t+1}): the derivative of step t multiplies both terms.")

BACKWARD_SWEEP = Exercise(
    id="backward-sweep", title="Every gradient in one backward sweep", chapter="3 Full BPTT",
    prompt="Return the gradients of E = Σ_t ½‖o_t - y_t‖² with respect to all five parameters, as a dict with "
           "keys W, U, b, V, c, from ONE pass back through time (T steps, not T(T+1)/2): for t = T, ..., 1, "
           "ā_t = f'(a_t) ⊙ (Vᵀ(o_t - y_t) + Wᵀ ā_{t+1}) with ā_{T+1} = 0; then dE/dW = Σ_t ā_t h_{t-1}ᵀ, "
           "dE/dU = Σ_t ā_t x_tᵀ, dE/db = Σ_t ā_t, dE/dV = Σ_t (o_t - y_t) h_tᵀ, dE/dc = Σ_t (o_t - y_t).",
    function="backward_sweep", signature=f"backward_sweep({_ARGS}) -> dict", parameter="grads",
    generate=elman_problem, reference=all_gradients,
    slips=(
        Slip("explicit_only", "nothing carried back: ā_t = f'(a_t) ⊙ Vᵀ(o_t - y_t)",
             _swept(recurrent=np.zeros_like),
             hint="Each step also receives what the later losses say about h_t: add Wᵀ ā_{t+1} (zero at t = T) "
                  "to Vᵀ(o_t - y_t) before multiplying by f'(a_t)."),
        *(Slip(m, d, _swept(derivative=f)) for m, d, f in derivative_slips()),
        Slip("activation_derivative_missing", "f'(a_t) applied to Vᵀ(o_t - y_t) only, not to the carried "
                                              "Wᵀ ā_{t+1}", _swept(carry_derivative=False), hint=_CARRY),
        Slip("activation_derivative_missing", "Wᵀ dE/dh_{t+1} carried back instead of Wᵀ ā_{t+1} (the factor "
                                              "f'(a_{t+1}) left out)", _swept(carry_abar=False), hint=_CARRY),
        Slip("transposed", "W ā_{t+1} carried back instead of Wᵀ ā_{t+1}", _swept(recurrent=np.transpose),
             hint="Going back through a_{t+1} = W h_t multiplies by Wᵀ: h_t receives W.T @ ā_{t+1}."),
        Slip("off_by_one_time", "dE/dW from ā_t h_tᵀ instead of ā_t h_{t-1}ᵀ", _swept(state_shift=1),
             hint="Copy t of W multiplies h_{t-1} (a_t = W h_{t-1} + ...): pair ā_t with the state before the "
                  "step, h[t-1] when h[0] is h_0."),
        Slip("no_accumulation", "= where += belongs: only the terms of copy 1, the last one the loop reaches",
             _first_copy_only,
             hint="Start each gradient at zero before the loop and add every copy's term (+=): the loop runs "
                  "from t = T down to 1, so = keeps only copy 1."),
        Slip("sign_flipped", "dE_t/do_t taken as y_t - o_t", _scaled(-1.0)),
        Slip("mean_instead_of_sum", "every gradient divided by T",
             lambda **kw: {k: g / len(kw["xs"]) for k, g in all_gradients(**kw).items()}),
    ),
    points=3.0,
    hints=("Run forward once and keep h_0..h_T; the sweep then needs only ā_{t+1} from the step after.",),
    timeline=PREFIX,
)
