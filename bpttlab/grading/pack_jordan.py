r"""Exercise of chapter 8: dE/dV of a Jordan network, whose output is fed back.

A tanh Jordan network (ARCHITECTURE.md): :math:`a_t = W o_{t-1} + U x_t + b`, :math:`h_t = \tanh(a_t)`,
:math:`o_t = V h_t + c`, :math:`o_0 = 0`, :math:`E = \sum_t \tfrac12\lVert o_t - y_t\rVert^2`. Since
:math:`o_t` feeds the next step, later losses reach it, and V, which makes :math:`o_t`, gets implicit terms:

.. math::

    \bar o_t = (o_t - y_t) + W^\top \bar a_{t+1}, \qquad \bar a_t = f'(a_t) \odot V^\top \bar o_t,
    \qquad \frac{\partial E}{\partial V} = \sum_t \bar o_t\, h_t^\top .

The explicit part alone, :math:`\sum_t (o_t - y_t) h_t^\top`, is the Elman answer; it is the mistake this
exercise is about. The reference is the engine's Jordan cell.
"""
from __future__ import annotations

import numpy as np

from ..engine import bptt, forward
from ..network import make
from .exercise import PREFIX, Exercise, Slip
from .mistakes import derivative_slips, tanh_derivative

ARGS = "W, U, b, V, c, xs, targets"
PARAMETERS = ("W", "U", "b", "V", "c")


def jordan_problem(rng: np.random.Generator) -> dict[str, np.ndarray]:
    r"""A random Jordan problem, D = 2, H = 3, O = 2, T = 4..6.

    The feedback gain is large enough (the step Jacobian :math:`V \operatorname{diag} f'(a) W` of order 1)
    that the implicit part of dE/dV is comparable with the explicit part.
    """
    T, D, H, O = int(rng.integers(4, 7)), 2, 3, 2
    gain = rng.uniform(1.0, 1.5)
    return {
        "W": rng.normal(0.0, gain / np.sqrt(O), (H, O)),
        "U": rng.normal(0.0, gain / np.sqrt(D), (H, D)),
        "b": rng.normal(0.0, 0.3, H),
        "V": rng.normal(0.0, gain / np.sqrt(H), (O, H)),
        "c": rng.normal(0.0, 0.3, O),
        "xs": rng.normal(0.0, 1.0, (T, D)),
        "targets": rng.normal(0.0, 1.0, (T, O)),
    }


def jordan(W, U, b, V, c):
    """The tanh Jordan network with these parameters (copies)."""
    params = {k: np.array(v, dtype=np.float64) for k, v in zip(PARAMETERS, (W, U, b, V, c))}
    H, D = params["U"].shape
    net = make("jordan", n_in=D, n_hidden=H, n_out=params["V"].shape[0], activation="tanh", seed=None)
    net.params = params
    return net


def jordan_grad_V(W, U, b, V, c, xs, targets, k2=None):
    """dE/dV by the engine (truncated at k2 when given)."""
    return bptt(jordan(W, U, b, V, c), xs, targets, k2=k2).grads["V"]


def jordan_output_cotangents(W, U, b, V, c, xs, targets, derivative=tanh_derivative) -> tuple[np.ndarray, np.ndarray]:
    r"""(ō_t for t = 1..T, h_1..h_T) by the recursion of the module docstring, with ``derivative(a, h)`` for
    f'(a) (the right one by default; the slips pass another). Forward pass from the engine."""
    W, V = np.asarray(W, dtype=np.float64), np.asarray(V, dtype=np.float64)
    tr = forward(jordan(W, U, b, V, c), xs)
    o_prev, h = tr.states[:-1], tr.h[1:]
    a = o_prev @ W.T + np.asarray(xs) @ np.asarray(U).T + np.asarray(b)
    err = tr.outputs - np.asarray(targets)
    obar = np.zeros_like(err)
    carry = np.zeros(err.shape[1])
    for t in range(len(err) - 1, -1, -1):
        obar[t] = err[t] + carry
        carry = W.T @ (derivative(a[t], h[t]) * (V.T @ obar[t]))
    return obar, h


def _recursion_slip(derivative):
    def compute(**kw):
        obar, h = jordan_output_cotangents(**kw, derivative=derivative)
        return obar.T @ h
    return compute


def _previous_hidden(**kw):
    obar, h = jordan_output_cotangents(**kw)
    return obar.T @ np.vstack([np.zeros((1, h.shape[1])), h[:-1]])


def _last_only(**kw):
    obar, h = jordan_output_cotangents(**kw)
    return np.outer(obar[-1], h[-1])


FEEDBACK = ("In a Jordan network o_t feeds a_{t+1} = W o_t + ..., so dE/do_t = (o_t - y_t) + Wᵀ ā_{t+1}: "
            "go backwards from t = T, carry Wᵀ ā_{t+1} into step t, with ā_t = f'(a_t) ⊙ Vᵀ dE/do_t, and add "
            "np.outer(dE/do_t, h_t) for every t.")

JORDAN_GRAD_V = Exercise(
    id="jordan-grad-V", title="dE/dV of a Jordan network: explicit and implicit", chapter="8 Elman and Jordan",
    prompt="A tanh Jordan network feeds back its output: a_t = W o_{t-1} + U x_t + b (o_0 = 0), h_t = tanh(a_t), "
           "o_t = V h_t + c, E = Σ_t ½‖o_t - y_t‖². W has shape (H, O). Return dE/dV (shape (O, H)), with the "
           "implicit terms through the fed-back outputs.",
    function="jordan_grad_V", signature=f"jordan_grad_V({ARGS}) -> ndarray (O, H)", parameter="dE/dV",
    generate=jordan_problem, reference=jordan_grad_V,
    slips=(
        Slip("explicit_only", "Σ_t (o_t - y_t) h_tᵀ, the Elman formula: the path through o_t into later steps is "
                              "missing", lambda **kw: jordan_grad_V(**kw, k2=1), hint=FEEDBACK,
             explanation="Only the explicit part of dE/dV is there. In a Jordan network o_t = V h_t + c feeds "
                         "the next step, so later losses reach V through o_t as well: those implicit terms are "
                         "missing."),
        Slip("wrong_truncation", "the feedback followed one step back only (dE/do_t from E_t and E_{t+1})",
             lambda **kw: jordan_grad_V(**kw, k2=2), hint=FEEDBACK,
             explanation="dE/do_t took the loss E_{t+1} into account but not E_{t+2}, E_{t+3}, ...: the recursion "
                         "was not carried on, as if truncated at k2 = 2."),
        *(Slip(m, d, _recursion_slip(f)) for m, d, f in derivative_slips()[:2]),
        Slip("transposed", "returned (dE/dV)ᵀ", lambda **kw: jordan_grad_V(**kw).T,
             hint="dE/dV has the shape of V, (O, H): the sum of np.outer(dE/do_t, h_t), not np.outer(h_t, dE/do_t)."),
        Slip("off_by_one_time", "h_{t-1} where h_t belongs: Σ_t ō_t h_{t-1}ᵀ", _previous_hidden),
        Slip("no_accumulation", "only the last step's term ō_T h_Tᵀ", _last_only),
        Slip("sign_flipped", "dE_t/do_t taken as y_t - o_t", lambda **kw: -jordan_grad_V(**kw)),
    ),
    points=2.0, hints=("With O ≠ H, check every product's shape: W.T @ ā has O entries, V.T @ ō has H.",),
    timeline=PREFIX,
)
