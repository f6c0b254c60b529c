r"""Exercise ``lstm-cell-state`` (chapter 05): the LSTM's backward pass along its cell state.

An LSTM (PyTorch's equations) updates its cell state and output by

.. math::

    c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t).

Given the gate values of T steps and :math:`\bar h_t`, the gradient that reaches each :math:`h_t` from
outside the cell-state path, the error along the cell state is

.. math::

    \hat c_t = \frac{\partial E}{\partial c_t}
    = \bar h_t \odot o_t \odot \bigl(1 - \tanh^2 c_t\bigr) + f_{t+1} \odot \hat c_{t+1},
    \qquad \hat c_{T+1} = 0,

the "constant error carousel": from one step to the one before, only the forget gate multiplies it. The
student returns :math:`\hat c_1, \dots, \hat c_T` as a (T, H) array; a wrong row is located in time.
"""
from __future__ import annotations

import numpy as np

from .exercise import Exercise, Slip, Timeline

ARGS = "i, f, g, o, c0, dh"


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _inputs(rng: np.random.Generator) -> dict:
    T, H = int(rng.integers(4, 7)), 3
    return {"i": _sigmoid(rng.normal(0.0, 1.5, (T, H))), "f": _sigmoid(rng.normal(1.0, 1.5, (T, H))),
            "g": np.tanh(rng.normal(0.0, 1.0, (T, H))), "o": _sigmoid(rng.normal(0.0, 1.5, (T, H))),
            "c0": rng.normal(0.0, 1.0, H), "dh": rng.normal(0.0, 1.0, (T, H))}


def cell_states(i, f, g, c0) -> np.ndarray:
    """c_1..c_T from c_0 = c0: c_t = f_t c_{t-1} + i_t g_t, (T, H)."""
    c, out = np.asarray(c0, dtype=float), []
    for t in range(len(f)):
        c = f[t] * c + i[t] * g[t]
        out.append(c)
    return np.array(out)


def _carousel(local=None, carry_gate=lambda f, t: f[t + 1], carry=True):
    """ĉ_1..ĉ_T with one slip: ``local(dh_t, o_t, c_t)`` for what h_t hands to c_t, ``carry_gate(f, t)`` (0-based
    t) for the gate on the way back from c_{t+1}, and whether the carry is there at all."""
    if local is None:
        local = lambda dh, o, c: dh * o * (1.0 - np.tanh(c) ** 2)  # noqa: E731

    def compute(i, f, g, o, c0, dh):
        i, f, g, o, dh = (np.asarray(x, dtype=float) for x in (i, f, g, o, dh))
        c = cell_states(i, f, g, c0)
        out = np.zeros_like(c)
        after = np.zeros(c.shape[1])
        for t in range(len(c) - 1, -1, -1):
            out[t] = local(dh[t], o[t], c[t]) + (carry_gate(f, t) * after if carry and t + 1 < len(c) else 0.0)
            after = out[t]
        return out
    return compute


reference = _carousel()

LSTM_CELL_STATE = Exercise(
    id="lstm-cell-state", title="LSTM: the error along the cell state", chapter="5 Gated cells",
    prompt="An LSTM ran T steps: i, f, g, o are its gate values (T, H) (rows 0..T-1 are steps 1..T), c0 its "
           "initial cell state, and dh[t-1] = h̄_t the gradient that reaches h_t from outside the cell-state "
           "path. With c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t and h_t = o_t ⊙ tanh(c_t), return ĉ_t = ∂E/∂c_t for "
           "t = 1..T as a (T, H) array: ĉ_t = h̄_t ⊙ o_t ⊙ (1 - tanh² c_t) + f_{t+1} ⊙ ĉ_{t+1}, ĉ_{T+1} = 0.",
    function="cell_state_grads", signature=f"cell_state_grads({ARGS}) -> ndarray (T, H)", parameter="dc",
    generate=_inputs, reference=reference,
    slips=(
        Slip("gate_missing", "the forget gate f_{t+1} left out: ĉ_t = ... + ĉ_{t+1}",
             _carousel(carry_gate=lambda f, t: 1.0),
             hint="From c_{t+1} = f_{t+1} ⊙ c_t + ... back to c_t the error is multiplied by f_{t+1}."),
        Slip("off_by_one_time", "f_t ⊙ ĉ_{t+1} instead of f_{t+1} ⊙ ĉ_{t+1}", _carousel(carry_gate=lambda f, t: f[t]),
             hint="The forget gate that multiplies c_t is the one of the next step: c_{t+1} = f_{t+1} ⊙ c_t + ..., "
                  "so ĉ_t receives f_{t+1} ⊙ ĉ_{t+1}, i.e. f[t + 1] in 0-based rows."),
        Slip("gate_missing", "the output gate o_t left out: h̄_t ⊙ (1 - tanh² c_t)",
             _carousel(local=lambda dh, o, c: dh * (1.0 - np.tanh(c) ** 2)),
             hint="h_t = o_t ⊙ tanh(c_t): going back from h_t to c_t multiplies by o_t as well as by tanh'."),
        Slip("activation_derivative_missing", "the factor 1 - tanh² c_t left out",
             _carousel(local=lambda dh, o, c: dh * o)),
        Slip("activation_derivative_wrong", "1 - c_t² instead of 1 - tanh² c_t",
             _carousel(local=lambda dh, o, c: dh * o * (1.0 - c * c)),
             hint="tanh'(c) = 1 - tanh(c)²: square the tanh of the cell state, not the cell state itself."),
        Slip("explicit_only", "no carry from c_{t+1}: only what h_t hands to c_t", _carousel(carry=False),
             hint="ĉ_t also receives f_{t+1} ⊙ ĉ_{t+1} from the next step's cell state: loop from t = T down "
                  "and carry it."),
    ),
    points=2.0, hints=("Compute c_1..c_T forward first; then loop t = T..1 with a carry that starts at zero.",),
    timeline=Timeline("rows", backward=True, symbol="ĉ_{t}"),
)
