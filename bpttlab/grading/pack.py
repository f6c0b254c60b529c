r"""The built-in exercise pack, ``core``: twenty exercises, from the forward pass to a character model.

The twelve exercises defined here work on a tanh Elman network with the mse loss, in ARCHITECTURE.md's
notation (:math:`a_t = W h_{t-1} + U x_t + b`, :math:`h_t = \tanh(a_t)`, :math:`o_t = V h_t + c`,
:math:`E = \sum_t \tfrac12 \lVert o_t - y_t\rVert^2`, :math:`h_0 = 0`, arrays 0-based in time), except the
last, which takes one step of a GRU; the others come from modules of their own (``pack_<topic>.py``). References come from the engine
(:mod:`bpttlab.grading.references`); each slip is a catalogued mistake
(:mod:`bpttlab.grading.mistakes`) computed from the same engine quantities.

Registered in ``pyproject.toml`` as the ``bpttlab.exercises`` entry point ``core``.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from ..engine import bptt, forward
from . import references as R
from .exercise import PREFIX, Exercise, ExercisePack, Slip, Timeline
from .instances import elman_problem
from .mistakes import derivative_slips, elman_site_cotangents, tanh_derivative
from .pack_charlm import CE_OUTPUT_GRADIENT
from .pack_checkpoint import CHECKPOINT_SEGMENT
from .pack_end_of_window import END_OF_WINDOW_UPDATE
from .pack_evolution import ES_GRADIENT
from .pack_jacobian import JACOBIAN_PRODUCT
from .pack_jordan import JORDAN_GRAD_V
from .pack_lstm import LSTM_CELL_STATE
from .pack_sweep import BACKWARD_SWEEP

ELMAN_ARGS = "W, U, b, V, c, xs, targets"

#: The hint for W where Wᵀ belongs in a backward recursion.
BACK_THROUGH_W = ("Going back through a_{t+1} = W h_t multiplies by Wᵀ: dE/dh_t receives W.T @ ā_{t+1} "
                  "(or ā_{t+1} @ W), not W @ ā_{t+1}.")

#: For a gradient returned transposed: what entry [i, j] of dE/d(name) pairs, per parameter.
_OUTER_FACTORS = {"V": ("o_t - y_t", "h_t"), "W": ("ā_t", "h_{t-1}"), "U": ("ā_t", "x_t")}


def _net(kw: dict):
    """The Elman network of an instance's keyword arguments."""
    return R.elman(*(kw[k] for k in R.ELMAN_PARAMETERS))


def _unrolled(compute):
    """A slip computed from the engine's pass over the instance: ``compute(u, **inputs)``."""
    return lambda **kw: compute(R.unroll(**{k: kw[k] for k in (*R.ELMAN_PARAMETERS, "xs", "targets")}), **kw)


def _negated(reference):
    return lambda **kw: -reference(**kw)


def _transposed(reference):
    return lambda **kw: np.swapaxes(reference(**kw), -1, -2)


def _sign_slip(reference) -> Slip:
    return Slip("sign_flipped", "dE_t/do_t taken as y_t - o_t, so every term has the wrong sign",
                _negated(reference))


def _outer_sum(rows: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Σ_k rows[k] inputs[k]ᵀ."""
    return np.einsum("ti,tj->ij", rows, inputs)


def _parameter_gradient(name: str, shape: str, title: str, prompt: str, slips: tuple[Slip, ...], points: float,
                        hint: str) -> Exercise:
    """An exercise "return dE/d(name) of the whole sequence": ``grad_<name>(W, U, b, V, c, xs, targets)``.

    Besides ``slips``, the answer is checked against the slips every such gradient has: the sign flipped,
    the answer transposed, and the mean over time instead of the sum."""
    reference = partial(R.gradient, name)
    left, right = _OUTER_FACTORS[name]
    common = (_sign_slip(reference),
              Slip("transposed", f"returned (dE/d{name})ᵀ", _transposed(reference),
                   hint=f"dE/d{name} has the shape of {name}: entry [i, j] is Σ_t ({left})[i] ({right})[j], "
                        f"the sum of np.outer({left}, {right}), not np.outer({right}, {left})."),
              Slip("mean_instead_of_sum", "divided by T", partial(R.gradient, name, reduction="mean")))
    return Exercise(
        id=f"grad-{name}", title=title, chapter="2 Backpropagation through time", prompt=prompt,
        function=f"grad_{name}", signature=f"grad_{name}({ELMAN_ARGS}) -> ndarray {shape}", parameter=f"dE/d{name}",
        generate=elman_problem, reference=reference, slips=(*slips, *common), points=points, hints=(hint,),
        timeline=PREFIX)


# -- 1. forward pass --------------------------------------------------------------------------------


def _forward_inputs(rng) -> dict:
    p = elman_problem(rng)
    return {k: p[k] for k in ("W", "U", "b", "xs")}


def _forward_elementwise(W, U, b, xs):
    """The student's loop with W * h (broadcast) for W @ h."""
    h, hs = np.zeros(len(b)), []
    for x in xs:
        h = np.tanh(W * h + U @ x + b)
        hs.append(h)
    return np.array(hs)


FORWARD_PASS = Exercise(
    id="forward-pass", title="The forward pass of an Elman network", chapter="1 Unfolding",
    prompt="Unfold the network over the sequence: for t = 1..T, a_t = W h_{t-1} + U x_t + b and "
           "h_t = tanh(a_t), from h_0 = 0. Return the hidden states h_1..h_T as an array hs of shape (T, H): "
           "hs[0] = h_1.",
    function="rnn_forward", signature="rnn_forward(W, U, b, xs) -> ndarray (T, H)", parameter="hs",
    generate=_forward_inputs, reference=R.hidden_states,
    slips=(
        Slip("off_by_one_time", "returned h_0..h_{T-1} instead of h_1..h_T",
             lambda W, U, b, xs: np.vstack([np.zeros(len(b)), R.hidden_states(W, U, b, xs)[:-1]])),
        Slip("transposed", "Wᵀ h_{t-1} instead of W h_{t-1}",
             lambda W, U, b, xs: R.hidden_states(np.transpose(W), U, b, xs),
             hint="The forward pass uses W itself: a_t = W @ h + U @ x_t + b, since W[i, j] connects unit j "
                  "of h_{t-1} to unit i of a_t; W.T @ h (or h @ W) sends each unit's output to the wrong "
                  "units."),
        Slip("elementwise_product", "W * h_{t-1} (elementwise, broadcast) instead of W @ h_{t-1}",
             _forward_elementwise,
             hint="W h_{t-1} is a matrix-vector product, W @ h, a vector of length H; W * h broadcasts h "
                  "over the rows of W and gives an (H, H) array.",
             explanation="W * h multiplies entry by entry (broadcasting h across W) where the matrix-vector "
                         "product W @ h belongs, so every h_t comes out with the wrong shape."),
    ),
    points=1.0, hints=("xs[t] is x_{t+1}: the loop over xs produces h_1, h_2, ... in turn.",),
    timeline=Timeline("rows", symbol="h_{t}"),
)

# -- 2. total loss ----------------------------------------------------------------------------------


def _loss_from_previous_state(W, U, b, V, c, xs, targets):
    h = np.vstack([np.zeros(len(b)), R.hidden_states(W, U, b, xs)])
    o = h[:-1] @ np.transpose(V) + c
    return np.array(0.5 * np.sum((o - targets) ** 2))


TOTAL_LOSS = Exercise(
    id="total-loss", title="The total loss of a sequence", chapter="1 Unfolding",
    prompt="With o_t = V h_t + c and E_t = ½‖o_t - y_t‖², return the total loss E = Σ_t E_t (a float).",
    function="total_loss", signature=f"total_loss({ELMAN_ARGS}) -> float", parameter="E",
    generate=elman_problem, reference=R.total_loss,
    slips=(
        Slip("off_by_one_time", "o_t computed from h_{t-1} instead of h_t", _loss_from_previous_state),
        Slip("no_accumulation", "only the last step's loss E_T",
             lambda **kw: np.array(bptt(_net(kw), kw["xs"], kw["targets"]).losses[-1]),
             hint="E = Σ_t E_t: add every step's loss (E += E_t inside the loop), do not overwrite it."),
        Slip("mean_instead_of_sum", "E divided by T",
             lambda **kw: np.array(bptt(_net(kw), kw["xs"], kw["targets"], reduction="mean").loss)),
    ),
    points=1.0, hints=("Keep the ½: E_t = ½‖o_t - y_t‖².",), timeline=PREFIX,
)

# -- 3. dE/dV ---------------------------------------------------------------------------------------


GRAD_V = _parameter_gradient(
    "V", "(O, H)", "dE/dV: the output layer",
    "Return dE/dV (shape (O, H)). V is used only by the output of its own step, so "
    "dE/dV = Σ_t (o_t - y_t) h_tᵀ: no implicit terms.",
    slips=(
        Slip("off_by_one_time", "h_{t-1} where h_t belongs: Σ_t (o_t - y_t) h_{t-1}ᵀ",
             _unrolled(lambda u, **kw: _outer_sum(u.obar, u.h[:-1]))),
        Slip("no_accumulation", "only the last step's term (o_T - y_T) h_Tᵀ",
             _unrolled(lambda u, **kw: np.outer(u.obar[-1], u.h[-1]))),
    ),
    points=1.0, hint="np.outer(o_t - y_t, h_t) is one step's term.",
)

# -- 4. dE/dh_t -------------------------------------------------------------------------------------


def _hidden_from(W, V, obar, abar, recurrent_transposed=True):
    """dE/dh_t = Vᵀ ō_t + M ā_{t+1} (M = Wᵀ, or W for the transposition slip), rows t = 1..T."""
    later = np.vstack([abar[1:], np.zeros((1, abar.shape[1]))])
    return obar @ V + later @ (W if recurrent_transposed else W.T)


def _slipped_abar(u: R.Unrolled, W, V, obar, derivative=tanh_derivative, recurrent_transposed=True):
    """ā_t from the engine's forward pass by a backward recursion with (at most) one slip."""
    return elman_site_cotangents(np.asarray(W), np.asarray(V), u.a, u.h[1:], obar, derivative,
                                 recurrent_transposed)


def _hidden_slip(derivative=tanh_derivative, recurrent_transposed=True):
    def compute(u, W, V, **kw):
        abar = _slipped_abar(u, W, V, u.obar, derivative, recurrent_transposed)
        return _hidden_from(np.asarray(W), np.asarray(V), u.obar, abar, recurrent_transposed)
    return _unrolled(compute)


def _hidden_shifted(u, W, **kw):
    hbar = _hidden_from(np.asarray(W), np.asarray(kw["V"]), u.obar, u.abar)
    return np.vstack([u.abar[0] @ np.asarray(W), hbar[:-1]])


GRAD_HIDDEN = Exercise(
    id="grad-hidden", title="dE/dh_t for every step", chapter="2 Backpropagation through time",
    prompt="Return the gradients dE/dh_t for t = 1..T (shape (T, H)), by the backward recursion "
           "dE/dh_t = Vᵀ(o_t - y_t) + Wᵀ (f'(a_{t+1}) ⊙ dE/dh_{t+1}), starting from t = T; call it dhs: "
           "dhs[0] = dE/dh_1.",
    function="grad_hidden", signature=f"grad_hidden({ELMAN_ARGS}) -> ndarray (T, H)", parameter="dhs",
    generate=elman_problem, reference=R.hidden_gradients,
    slips=(
        Slip("explicit_only", "only Vᵀ(o_t - y_t): the path through h_{t+1} is missing",
             _unrolled(lambda u, V, **kw: u.obar @ np.asarray(V)),
             hint="Except at t = T, dE/dh_t also receives Wᵀ (f'(a_{t+1}) ⊙ dE/dh_{t+1}) from the step after "
                  "it: loop from t = T down and carry that term along.",
             explanation="dE/dh_t holds only the part from its own loss E_t; the later losses, which reach h_t "
                         "through h_{t+1}, are missing."),
        *(Slip(m, d, _hidden_slip(derivative=f)) for m, d, f in derivative_slips()),
        Slip("transposed", "W ā_{t+1} instead of Wᵀ ā_{t+1}", _hidden_slip(recurrent_transposed=False),
             hint=BACK_THROUGH_W),
        Slip("off_by_one_time", "returned dE/dh_0..dE/dh_{T-1} instead of dE/dh_1..dE/dh_T",
             _unrolled(_hidden_shifted)),
        _sign_slip(R.hidden_gradients),
    ),
    points=2.0, hints=("Go backwards: dE/dh_T has no future term; each earlier step adds one.",),
    timeline=Timeline("rows", backward=True, symbol="dE/dh_{t}"),
)

# -- 5. explicit term of dh_t/dW --------------------------------------------------------------------


def _explicit_inputs(rng) -> dict:
    p = elman_problem(rng)
    T = len(p["xs"])
    return {"W": p["W"], "U": p["U"], "b": p["b"], "xs": p["xs"], "t": int(rng.integers(2, T + 1))}


def _explicit_from(factor: np.ndarray, h_prev: np.ndarray) -> np.ndarray:
    """J[i, i, :] = factor[i] h_prev, zero elsewhere."""
    H = len(factor)
    J = np.zeros((H, H, len(h_prev)))
    J[np.arange(H), np.arange(H)] = factor[:, None] * h_prev[None, :]
    return J


def _explicit_slip(derivative=tanh_derivative, state_shift=0, step_shift=0):
    """The explicit Jacobian built from engine states with one slip: another derivative, h_{t-1+state_shift}
    for h_{t-1}, or everything taken at step t+step_shift."""
    def compute(W, U, b, xs, t):
        tr = forward(R.elman(W, U, b), xs)
        s = t + step_shift
        if not 1 <= s <= len(xs):
            return None
        return _explicit_from(derivative(tr.arrays["a"][s - 1, 0], tr.h[s]), tr.h[s - 1 + state_shift])
    return compute


EXPLICIT_DH_DW = Exercise(
    id="explicit-dh-dW", title="The explicit term of dh_t/dW", chapter="2 Backpropagation through time",
    prompt="The explicit (immediate) derivative of h_t with respect to W holds h_{t-1} constant: "
           "∂⁺h_t[i]/∂W[j, k] = δ_ij f'(a_t)[i] h_{t-1}[k]. Return it as an array J of shape (H, H, H) with "
           "J[i, j, k] = ∂⁺h_t[i]/∂W[j, k], for the step t given (1-based: t = 1 is the first step).",
    function="explicit_dh_dW", signature="explicit_dh_dW(W, U, b, xs, t) -> ndarray (H, H, H)",
    parameter="J", generate=_explicit_inputs, reference=R.explicit_dh_dW,
    slips=(
        *(Slip(m, d, _explicit_slip(derivative=f),
               explanation="h_t = f(a_t) with a_t = W h_{t-1} + ..., so ∂⁺h_t/∂W needs the factor f'(a_t) (for "
                           "tanh, 1 - h_t²); it was left out." if m == "activation_derivative_missing" else None)
          for m, d, f in derivative_slips()),
        Slip("off_by_one_time", "h_t in place of h_{t-1}", _explicit_slip(state_shift=1)),
        Slip("off_by_one_time", "taken at step t+1 (t used as a 0-based index)", _explicit_slip(step_shift=1)),
        Slip("transposed", "J[i, k, j] in place of J[i, j, k]", _transposed(R.explicit_dh_dW),
             hint="J[i, j, k] = ∂⁺h_t[i]/∂W[j, k]: the last two axes are W's row j and column k, so "
                  "J[i, i, :] = f'(a_t)[i] h_{t-1}, not J[i, :, i]."),
    ),
    points=1.0, hints=("Only the row j = i of W touches h_t[i] directly.",),
    timeline=Timeline("prefix", args=("xs",), step_arg="t"),
)

# -- 6. dE_t/dW -------------------------------------------------------------------------------------


def _loss_inputs(rng) -> dict:
    """A problem and a loss E_t with t >= 3: with h_0 = 0 the copy-1 term is zero, so t = 2 would have no
    implicit term to get wrong."""
    p = elman_problem(rng)
    p["t"] = int(rng.integers(3, len(p["xs"]) + 1))
    return p


def _Et_W(t, **kw):
    return R.loss_gradient("W", t=t, **kw)


def _Et_slip(derivative=tanh_derivative, recurrent_transposed=True):
    def compute(u, W, V, t, **kw):
        obar = np.zeros_like(u.obar)
        obar[t - 1] = u.obar[t - 1]
        return _outer_sum(_slipped_abar(u, W, V, obar, derivative, recurrent_transposed), u.h[:-1])
    return _unrolled(compute)


GRAD_ET_W = Exercise(
    id="grad-Et-W", title="dE_t/dW: one loss, all its paths", chapter="2 Backpropagation through time",
    prompt="Return the gradient of the single loss E_t (step t, 1-based) with respect to W, shape (H, H): "
           "dE_t/dW = Σ_{k=1..t} dE_t/dh_t (∂h_t/∂h_k) ∂⁺h_k/∂W, the explicit term k = t plus the implicit "
           "ones k < t.",
    function="grad_Et_W", signature=f"grad_Et_W({ELMAN_ARGS}, t) -> ndarray (H, H)", parameter="dE_t/dW",
    generate=_loss_inputs, reference=_Et_W,
    slips=(
        Slip("explicit_only", "only the explicit term C[t][t]",
             lambda t, **kw: R.contribution_table("W", **kw)[t - 1, t - 1],
             hint="Carry dE_t/dh_t back from k = t: dE_t/dh_{k-1} = Wᵀ (f'(a_k) ⊙ dE_t/dh_k), and add the term "
                  "ā_k h_{k-1}ᵀ of every copy k = t, t-1, ..., 1."),
        *(Slip(m, d, _Et_slip(derivative=f)) for m, d, f in derivative_slips()),
        Slip("transposed", "returned (dE_t/dW)ᵀ", _transposed(_Et_W),
             hint="dE_t/dW has the shape of W: entry [i, j] is Σ_k ā_k[i] h_{k-1}[j], the sum of "
                  "np.outer(ā_k, h_{k-1}), not np.outer(h_{k-1}, ā_k)."),
        Slip("transposed", "W ā_{k+1} instead of Wᵀ ā_{k+1} going back", _Et_slip(recurrent_transposed=False),
             hint=BACK_THROUGH_W),
        Slip("off_by_one_time", "h_k in place of h_{k-1} in ā_k h_{k-1}ᵀ",
             _unrolled(lambda u, t, **kw: _outer_sum(u.abar_by_loss[t - 1], u.h[1:]))),
        Slip("elementwise_product", "ā_k * h_{k-1} (elementwise) instead of the outer product ā_k h_{k-1}ᵀ",
             _unrolled(lambda u, t, **kw: np.sum(u.abar_by_loss[t - 1] * u.h[:-1], axis=0))),
        Slip("sign_flipped", "dE_t/do_t taken as y_t - o_t", lambda t, **kw: -_Et_W(t, **kw)),
    ),
    points=2.0, hints=("Back-propagate from step t only: later losses do not enter E_t.",),
    timeline=Timeline("prefix", step_arg="t"),
)

# -- 7. dE/dW ---------------------------------------------------------------------------------------


def _full_slip(name: str, derivative=tanh_derivative, recurrent_transposed=True):
    """dE/d(name) for W or U with a slipped backward recursion."""
    def compute(u, W, V, xs, **kw):
        abar = _slipped_abar(u, W, V, u.obar, derivative, recurrent_transposed)
        return _outer_sum(abar, u.h[:-1] if name == "W" else np.asarray(xs))
    return _unrolled(compute)


def _backward_slips(name: str) -> tuple[Slip, ...]:
    """The slips dE/dW and dE/dU share: the implicit paths left out, or a wrong backward recursion for ā_t."""
    return (
        Slip("explicit_only", "only the explicit terms Σ_t C[t][t]",
             lambda **kw: np.trace(R.contribution_table(name, **kw), axis1=0, axis2=1)),
        *(Slip(m, d, _full_slip(name, derivative=f)) for m, d, f in derivative_slips()),
        Slip("transposed", "W ā_{t+1} instead of Wᵀ ā_{t+1} going back", _full_slip(name, recurrent_transposed=False),
             hint=BACK_THROUGH_W),
    )


GRAD_W = _parameter_gradient(
    "W", "(H, H)", "dE/dW by backpropagation through time",
    "Return dE/dW (shape (H, H)) for E = Σ_t E_t. With ā_t = dE/da_t from the backward recursion "
    "ā_t = f'(a_t) ⊙ (Vᵀ(o_t - y_t) + Wᵀ ā_{t+1}), dE/dW = Σ_t ā_t h_{t-1}ᵀ.",
    slips=(
        *_backward_slips("W"),
        Slip("off_by_one_time", "h_t in place of h_{t-1}: Σ_t ā_t h_tᵀ",
             _unrolled(lambda u, **kw: _outer_sum(u.abar, u.h[1:]))),
        Slip("no_accumulation", "only the last copy's term ā_T h_{T-1}ᵀ",
             _unrolled(lambda u, **kw: np.outer(u.abar[-1], u.h[-2]))),
        Slip("elementwise_product", "ā_t * h_{t-1} (elementwise) instead of the outer product ā_t h_{t-1}ᵀ",
             _unrolled(lambda u, **kw: np.sum(u.abar * u.h[:-1], axis=0))),
    ),
    points=3.0, hint="Check your answer against bl.bptt(net, xs, targets).grads['W'] on your own example.",
)

# -- 8. dE/dU ---------------------------------------------------------------------------------------


GRAD_U = _parameter_gradient(
    "U", "(H, D)", "dE/dU: the input weights",
    "Return dE/dU (shape (H, D)). U is shared by every step like W: dE/dU = Σ_t ā_t x_tᵀ with the "
    "same ā_t = dE/da_t as for W.",
    slips=(
        *_backward_slips("U"),
        Slip("off_by_one_time", "x_{t-1} in place of x_t: Σ_t ā_t x_{t-1}ᵀ",
             _unrolled(lambda u, xs, **kw: _outer_sum(u.abar[1:], np.asarray(xs)[:-1]))),
        Slip("no_accumulation", "only the last copy's term ā_T x_Tᵀ",
             _unrolled(lambda u, xs, **kw: np.outer(u.abar[-1], xs[-1]))),
        Slip("no_accumulation", "only the first copy's term ā_1 x_1ᵀ",
             _unrolled(lambda u, xs, **kw: np.outer(u.abar[0], xs[0]))),
    ),
    points=2.0, hint="Only the last factor changes from dE/dW: x_t instead of h_{t-1}.",
)

# -- 9. truncated dE/dW -----------------------------------------------------------------------------


def _truncated_inputs(rng) -> dict:
    p = elman_problem(rng, T=int(rng.integers(6, 8)))
    p["k2"] = int(rng.integers(3, 5))
    return p


def _truncated_W(k2, **kw):
    return R.gradient("W", k2=k2, **kw)


def _truncated_slip(recurrent_transposed=True):
    """dE/dW truncated at k2 by a backward recursion (W or Wᵀ) run for each loss E_t over its copies
    max(1, t-k2+1)..t only."""
    def compute(u, W, V, k2, **kw):
        W, V = np.asarray(W), np.asarray(V)
        g = np.zeros_like(W)
        for t in range(1, len(u.a) + 1):
            s = max(1, t - k2 + 1)
            obar = np.zeros((t - s + 1, u.obar.shape[1]))
            obar[-1] = u.obar[t - 1]
            abar = elman_site_cotangents(W, V, u.a[s - 1:t], u.h[s:t + 1], obar,
                                         recurrent_transposed=recurrent_transposed)
            g += _outer_sum(abar, u.h[s - 1:t])
        return g
    return _unrolled(compute)


TRUNCATED_GRAD_W = Exercise(
    id="truncated-grad-W", title="Truncated BPTT: dE/dW with k2", chapter="3 Truncation",
    prompt="Return dE/dW (shape (H, H)) truncated at k2: each loss E_t is back-propagated through its last "
           "k2 copies only, keeping C[t][k] for t-k2 < k ≤ t (h_{t-k2} is held constant).",
    function="truncated_grad_W", signature=f"truncated_grad_W({ELMAN_ARGS}, k2) -> ndarray (H, H)",
    parameter="dE/dW", generate=_truncated_inputs, reference=_truncated_W,
    slips=(
        Slip("wrong_truncation", "one copy too few (k2 - 1)", lambda k2, **kw: _truncated_W(k2 - 1, **kw)),
        Slip("wrong_truncation", "one copy too many (k2 + 1)", lambda k2, **kw: _truncated_W(k2 + 1, **kw)),
        Slip("wrong_truncation", "not truncated at all", lambda k2, **kw: R.gradient("W", **kw)),
        Slip("explicit_only", "only the explicit terms (as if k2 = 1)", lambda k2, **kw: _truncated_W(1, **kw),
             hint="Truncation keeps k2 copies per loss, not one: carry dE/dh back from h_t to h_{t-1} = Wᵀ ā_t "
                  "k2 - 1 times, adding each copy's term."),
        Slip("transposed", "W ā_{k+1} instead of Wᵀ ā_{k+1} going back", _truncated_slip(recurrent_transposed=False),
             hint=BACK_THROUGH_W),
        Slip("mean_instead_of_sum", "divided by T",
             lambda k2, **kw: R.gradient("W", k2=k2, reduction="mean", **kw)),
        Slip("sign_flipped", "dE_t/do_t taken as y_t - o_t", lambda k2, **kw: -_truncated_W(k2, **kw)),
    ),
    points=2.0, hints=("For each loss E_t, stop the backward loop after k2 copies (or at t = 1).",),
    timeline=PREFIX,
)

# -- 10. norm clipping -------------------------------------------------------------------------------


def _clip_inputs(rng) -> dict:
    p = elman_problem(rng)
    grads = bptt(_net(p), p["xs"], p["targets"]).grads
    norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
    return {"grads": grads, "tau": float(norm * rng.uniform(0.3, 1.8))}


def _per_tensor(grads, tau):
    return {k: R.clip_by_norm({k: g}, tau)[k] for k, g in grads.items()}


def _always(grads, tau):
    norm = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())))
    return {k: np.asarray(g) * (tau / norm) for k, g in grads.items()}


CLIP_NORM = Exercise(
    id="clip-norm", title="Gradient clipping by the global norm", chapter="4 Training",
    prompt="grads is a dict name -> gradient array. If the global norm ‖g‖ = √(Σ_θ Σ g_θ²) exceeds tau, "
           "rescale every gradient by tau/‖g‖; otherwise leave them as they are. Return a dict with the "
           "same keys.",
    function="clip_by_norm", signature="clip_by_norm(grads, tau) -> dict", parameter="grads",
    generate=_clip_inputs, reference=R.clip_by_norm,
    slips=(
        Slip("per_tensor_clipping", "each grads[name] rescaled by tau / ‖grads[name]‖ when its own norm "
                                    "exceeds tau", _per_tensor),
        Slip("always_rescaled", "rescaled to norm tau although ‖g‖ ≤ tau", _always),
        Slip("clipped_by_value", "entries clipped to [-tau, tau]",
             lambda grads, tau: {k: np.clip(g, -tau, tau) for k, g in grads.items()}),
    ),
    points=1.0, n_public=3, hints=("‖g‖² adds np.sum(g ** 2) over every array g in grads.",),
)

# -- 11. one TBPTT(k1, k2) update --------------------------------------------------------------------


def _tbptt_inputs(rng) -> dict:
    p = elman_problem(rng, T=int(rng.integers(6, 9)))
    k1 = int(rng.integers(2, 4))
    p.update(k1=k1, k2=int(rng.integers(k1 + 1, k1 + 3)), lr=0.5)
    return p


def _per_loss_window(W, U, b, V, c, xs, targets, k1, k2, lr):
    """Each of the last k1 losses truncated k2 copies back from itself (not from the block end)."""
    net = R.elman(W, U, b, V, c)
    kept = R.without_losses_before(net, xs, targets, len(xs) - k1)
    grads = bptt(net, xs, kept, k2=k2).grads
    return {k: net.params[k] - lr * grads[k] for k in R.ELMAN_PARAMETERS}


def _tbptt_transposed(W, U, b, V, c, xs, targets, k1, k2, lr, recurrent_transposed=False):
    """The TBPTT(k1, k2) update with W where Wᵀ belongs in the window's backward recursion."""
    u = R.unroll(W, U, b, V, c, xs, targets)
    T = len(xs)
    s = max(1, T - k2 + 1)  # the window: copies s..T; the losses: E_{T-k1+1}..E_T
    obar = u.obar[s - 1:].copy()
    obar[:max(0, T - k1 + 1 - s)] = 0.0
    abar = elman_site_cotangents(np.asarray(W), np.asarray(V), u.a[s - 1:], u.h[s:], obar,
                                 recurrent_transposed=recurrent_transposed)
    grads = {"W": _outer_sum(abar, u.h[s - 1:-1]), "U": _outer_sum(abar, np.asarray(xs)[s - 1:]),
             "b": abar.sum(axis=0), "V": _outer_sum(obar, u.h[s:]), "c": obar.sum(axis=0)}
    params = dict(zip(R.ELMAN_PARAMETERS, (W, U, b, V, c)))
    return {k: np.asarray(params[k]) - lr * grads[k] for k in R.ELMAN_PARAMETERS}


#: How the TBPTT(k1, k2) window is laid out, for every wrong-truncation slip of the update.
TBPTT_WINDOW = ("At step T, TBPTT(k1, k2) back-propagates each of the last k1 losses E_{T-k1+1}..E_T to the same "
                "copy T-k2+1 (h_{T-k2} is a constant): one window of the last k2 steps for the whole block, not "
                "k1 steps, and not counted back from each loss.")


def _tbptt_with(**changes):
    def compute(**kw):
        kw = dict(kw)
        for name, value in changes.items():
            kw[name] = value(kw)
        return R.tbptt_update(**kw)
    return compute


TBPTT_UPDATE = Exercise(
    id="tbptt-update", title="One TBPTT(k1, k2) update", chapter="4 Training",
    prompt="The network has run forward over xs (T steps, from h_0 = 0) with these parameters, and at step T "
           "TBPTT(k1, k2) makes an update: the losses of the last k1 steps, E_{T-k1+1}..E_T, are "
           "back-propagated no further than copy T-k2+1 (h_{T-k2} is a constant), and each parameter takes "
           "the step θ ← θ - lr · g. Return the updated parameters as a dict with keys W, U, b, V, c.",
    function="tbptt_update", signature=f"tbptt_update({ELMAN_ARGS}, k1, k2, lr) -> dict",
    parameter="params", generate=_tbptt_inputs, reference=R.tbptt_update,
    slips=(
        Slip("wrong_truncation", "back-propagated k1 copies instead of k2", _tbptt_with(k2=lambda kw: kw["k1"]),
             hint=TBPTT_WINDOW),
        Slip("wrong_truncation", "back-propagated k2 + 1 copies", _tbptt_with(k2=lambda kw: kw["k2"] + 1),
             hint=TBPTT_WINDOW),
        Slip("wrong_truncation", "not truncated: back-propagated to copy 1", _tbptt_with(k2=lambda kw: len(kw["xs"])),
             hint=TBPTT_WINDOW),
        Slip("wrong_truncation", "the losses of all k2 steps of the window instead of the last k1",
             _tbptt_with(k1=lambda kw: kw["k2"]), hint=TBPTT_WINDOW),
        Slip("wrong_truncation", "each loss truncated k2 copies back from itself, not from step T",
             _per_loss_window, hint=TBPTT_WINDOW),
        Slip("no_accumulation", "only the last loss E_T", _tbptt_with(k1=lambda kw: 1),
             hint="The update adds up the gradients of all the last k1 losses, E_{T-k1+1} + ... + E_T."),
        Slip("transposed", "W ā_{k+1} instead of Wᵀ ā_{k+1} going back", _tbptt_transposed,
             hint=BACK_THROUGH_W),
        Slip("mean_instead_of_sum", "the k1 losses averaged instead of summed",
             _tbptt_with(lr=lambda kw: kw["lr"] / kw["k1"])),
        Slip("sign_flipped", "θ + lr · g: a step up the gradient", _tbptt_with(lr=lambda kw: -kw["lr"]),
             hint="A gradient descent step goes downhill: θ ← θ - lr · g.",
             explanation="The update adds lr · g instead of subtracting it: it climbs the loss."),
    ),
    points=3.0, hints=("Run forward from h_0 to get h_{T-k2}; then redo the last k2 steps as a short "
                       "sequence starting there.",),
)

# -- 12. GRU update-gate derivative ------------------------------------------------------------------


def _gru_inputs(rng) -> dict:
    D, H = 2, 3
    P = {}
    for gate in ("r", "z", "n"):
        P[f"U_{gate}"] = rng.normal(0.0, 1.0 / np.sqrt(D), (H, D))
        P[f"W_{gate}"] = rng.normal(0.0, 1.0 / np.sqrt(H), (H, H))
        P[f"b_{gate}"] = rng.normal(0.0, 0.5, H)
    P["b_hn"] = rng.normal(0.0, 0.5, H)
    return {"P": P, "x": rng.normal(0.0, 1.0, D), "h_prev": rng.uniform(-0.9, 0.9, H),
            "dh": rng.normal(0.0, 1.0, H)}


def _gru_Wz(P, x, h_prev, dh):
    return R.gru_step_gradient("W_z", P, x, h_prev, dh)


def _gru_slip(gate_factor=None, left_sign=1.0, right="h_prev", outer=True):
    r"""dE/dW_z = (dh ⊙ (h_{t-1} - n) ⊙ σ'(·)) h_{t-1}ᵀ from engine gates, with one slip."""
    def compute(P, x, h_prev, dh):
        g = R.gru_gates(P, x, h_prev)
        z = g["z"]
        factor = z * (1.0 - z) if gate_factor is None else gate_factor(z)
        da = np.asarray(dh) * left_sign * (np.asarray(h_prev) - g["n"]) * factor
        vec = np.asarray(h_prev) if right == "h_prev" else g["h"]
        return np.outer(da, vec) if outer else da * vec
    return compute


_GATE_DERIVATIVE = ("The gate is z = σ(a_z) with a_z = U_z x + W_z h_{t-1} + b_z: going from dE/dz to dE/da_z "
                    "multiplies by σ'(a_z) = z(1 - z), written with the gate's value z.")


GRU_UPDATE_GATE = Exercise(
    id="gru-update-gate", title="GRU: the update gate's weight gradient", chapter="5 Gated cells",
    prompt="One GRU step (PyTorch's equations): r = σ(U_r x + W_r h_{t-1} + b_r), z = σ(U_z x + W_z h_{t-1} "
           "+ b_z), n = tanh(U_n x + b_n + r ⊙ (W_n h_{t-1} + b_hn)), h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}. Given "
           "dh = dE/dh_t, return dE/dW_z (shape (H, H)). P is a dict of the parameters.",
    function="gru_grad_Wz", signature="gru_grad_Wz(P, x, h_prev, dh) -> ndarray (H, H)", parameter="dE/dW_z",
    generate=_gru_inputs, reference=_gru_Wz,
    slips=(
        Slip("activation_derivative_missing", "σ'(a_z) = z(1 - z) left out", _gru_slip(gate_factor=np.ones_like),
             hint=_GATE_DERIVATIVE,
             explanation="Going back from dE/dz to dE/da_z needs the sigmoid's derivative σ'(a_z); it was "
                         "left out."),
        Slip("activation_derivative_wrong", "1 - z² (tanh's derivative) for the sigmoid gate",
             _gru_slip(gate_factor=lambda z: 1.0 - z * z), hint=_GATE_DERIVATIVE),
        Slip("activation_derivative_wrong", "σ(z)(1 - σ(z)): the derivative applied to z, not to a_z",
             _gru_slip(gate_factor=lambda z: (1 / (1 + np.exp(-z))) * (1 - 1 / (1 + np.exp(-z)))),
             hint=_GATE_DERIVATIVE),
        Slip("sign_flipped", "dh_t/dz = n - h_{t-1} instead of h_{t-1} - n", _gru_slip(left_sign=-1.0),
             hint="h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}, so ∂h_t/∂z = h_{t-1} - n (elementwise).",
             explanation="The derivative of h_t with respect to the gate z has the wrong sign, which negates "
                         "the whole gradient of W_z."),
        Slip("off_by_one_time", "h_t in place of h_{t-1} in the outer product", _gru_slip(right="h_t"),
             hint="W_z multiplies h_{t-1} in a_z = U_z x + W_z h_{t-1} + b_z, so dE/dW_z = ā_z h_{t-1}ᵀ uses "
                  "h_prev, not the new state h_t."),
        Slip("transposed", "returned (dE/dW_z)ᵀ", _transposed(_gru_Wz),
             hint="dE/dW_z has the shape of W_z: entry [i, j] is ā_z[i] h_{t-1}[j], np.outer(ā_z, h_prev), "
                  "not np.outer(h_prev, ā_z)."),
        Slip("elementwise_product", "ā_z * h_{t-1} (elementwise) instead of the outer product",
             _gru_slip(outer=False),
             hint="dE/dW_z is an (H, H) matrix: the outer product np.outer(ā_z, h_prev), not ā_z * h_prev."),
    ),
    points=2.0, hints=("dh_t/dz = h_{t-1} - n (elementwise), and dz/da_z = z(1 - z).",),
)

CORE_PACK = ExercisePack(
    name="core",
    description="the built-in exercises: forward pass, BPTT, clipping, gated cells, checkpointing, TBPTT, "
                "Jordan, evolution strategies and a character model (20 exercises)",
    exercises=(FORWARD_PASS, TOTAL_LOSS, GRAD_V, GRAD_HIDDEN, EXPLICIT_DH_DW, GRAD_ET_W, GRAD_W, GRAD_U,
               TRUNCATED_GRAD_W, CLIP_NORM, TBPTT_UPDATE, GRU_UPDATE_GATE, BACKWARD_SWEEP,
               JACOBIAN_PRODUCT, LSTM_CELL_STATE, CHECKPOINT_SEGMENT, END_OF_WINDOW_UPDATE, JORDAN_GRAD_V,
               ES_GRADIENT, CE_OUTPUT_GRADIENT),
)
