r"""Exercise of chapter 7b: one update of the end-of-window variant of truncated BPTT.

The variant slides a window of :math:`k_2` steps over the sequence and lets only the output at the
window's end give an error. One update, for a window :math:`x_{e-k_2+1}, \dots, x_e` entered with the
context :math:`h_{e-k_2}` (written ``h0``; a constant, nothing is back-propagated into it):

.. math::

    \theta \leftarrow \theta - \eta\, \frac{\partial E_e}{\partial \theta}
    = \theta - \eta \sum_{k=e-k_2+1}^{e} C[e][k],
    \qquad E_e = \tfrac12 \lVert o_e - y_e \rVert^2 .

The window is passed in alone (``xs`` has the :math:`k_2` rows of the window, ``targets`` likewise), so
step 1 of the arrays is the window's first step and the error is that of the last row. The reference comes
from the engine: :func:`bpttlab.bptt` on the window from ``h0`` with every target but the last set to the
network's own output, so that only :math:`E_e` has a nonzero error.
"""
from __future__ import annotations

import numpy as np

from ..engine import bptt, forward
from . import references as R
from .exercise import PREFIX, Exercise, Slip
from .instances import elman_problem
from .mistakes import derivative_slips, elman_site_cotangents

ARGS = "W, U, b, V, c, h0, xs, targets, lr"


def _inputs(rng) -> dict:
    """An Elman problem over a window of 4..6 steps, a context h0 and a learning rate."""
    p = elman_problem(rng)
    p["h0"] = rng.uniform(-0.8, 0.8, len(p["b"]))
    p["lr"] = 0.5
    return p


def _step(W, U, b, V, c, lr, grads) -> dict[str, np.ndarray]:
    params = dict(zip(R.ELMAN_PARAMETERS, (W, U, b, V, c)))
    return {k: np.asarray(params[k], dtype=np.float64) - lr * grads[k] for k in R.ELMAN_PARAMETERS}


def _window_gradient(W, U, b, V, c, h0, xs, targets, error_step=None):
    """dE_s/dθ of the single loss of window step s (1-based; the last by default), from h0."""
    net = R.elman(W, U, b, V, c)
    s = len(xs) if error_step is None else error_step
    kept = forward(net, xs, h0=h0).outputs.copy()
    kept[s - 1] = np.asarray(targets)[s - 1]
    return bptt(net, xs, kept, h0=h0).grads


def end_of_window_update(W, U, b, V, c, h0, xs, targets, lr):
    """The reference: θ - lr · dE_e/dθ, E_e the window's last loss, back-propagated through the window."""
    return _step(W, U, b, V, c, lr, _window_gradient(W, U, b, V, c, h0, xs, targets))


def _recursion_slip(derivative=None, recurrent_transposed=True):
    """The update with the backward recursion over the window slipped (a derivative, or W for Wᵀ)."""
    def compute(W, U, b, V, c, h0, xs, targets, lr):
        net = R.elman(W, U, b, V, c)
        tr = forward(net, xs, h0=h0)
        h = tr.h
        a = h[:-1] @ np.asarray(W).T + np.asarray(xs) @ np.asarray(U).T + np.asarray(b)
        obar = np.zeros_like(tr.outputs)
        obar[-1] = tr.outputs[-1] - np.asarray(targets)[-1]
        kwargs = {} if derivative is None else {"derivative": derivative}
        abar = elman_site_cotangents(np.asarray(W), np.asarray(V), a, h[1:], obar,
                                     recurrent_transposed=recurrent_transposed, **kwargs)
        grads = {"W": abar.T @ h[:-1], "U": abar.T @ np.asarray(xs), "b": abar.sum(axis=0),
                 "V": obar.T @ h[1:], "c": obar.sum(axis=0)}
        return _step(W, U, b, V, c, lr, grads)
    return compute


def _all_losses(W, U, b, V, c, h0, xs, targets, lr):
    grads = bptt(R.elman(W, U, b, V, c), xs, targets, h0=h0).grads
    return _step(W, U, b, V, c, lr, grads)


def _explicit_only(W, U, b, V, c, h0, xs, targets, lr):
    net = R.elman(W, U, b, V, c)
    kept = forward(net, xs, h0=h0).outputs.copy()
    kept[-1] = np.asarray(targets)[-1]
    return _step(W, U, b, V, c, lr, bptt(net, xs, kept, h0=h0, k2=1).grads)


def _previous_error(W, U, b, V, c, h0, xs, targets, lr):
    if len(xs) == 1:                          # no earlier step: the loop finds the last error after all
        return end_of_window_update(W, U, b, V, c, h0, xs, targets, lr)
    return _step(W, U, b, V, c, lr, _window_gradient(W, U, b, V, c, h0, xs, targets, error_step=len(xs) - 1))


WINDOW = ("Only the window's last output gives an error: E_e = ½‖o_e - y_e‖² with o_e from the last row of xs. "
          "Run forward from h0 over the whole window, then back-propagate dE_e/do_e = o_e - y_e through every "
          "copy of the window, adding each copy's term; the other steps add nothing of their own.")

END_OF_WINDOW_UPDATE = Exercise(
    id="end-of-window-update", title="One update of the end-of-window variant",
    chapter="7b Training with truncated BPTT",
    prompt="The window holds the last k2 steps, xs and targets (k2 rows each), entered with the context h0 (a "
           "constant). Only the output at the window's end gives an error, E_e = ½‖o_e - y_e‖² for the last row. "
           "Back-propagate dE_e/dθ through all k2 copies of the window and return the parameters after the step "
           "θ ← θ - lr · dE_e/dθ, as a dict with keys W, U, b, V, c.",
    function="end_of_window_update", signature=f"end_of_window_update({ARGS}) -> dict", parameter="params",
    generate=_inputs, reference=end_of_window_update,
    slips=(
        Slip("wrong_truncation", "every output of the window gave an error, not only the last", _all_losses,
             hint=WINDOW,
             explanation="The errors of all the window's outputs were summed: that is TBPTT(k2, k2) on the "
                         "window. In the end-of-window variant only the last output, E_e, is trained on."),
        Slip("explicit_only", "dE_e/dθ through copy e only: not back-propagated through the window",
             _explicit_only, hint=WINDOW),
        Slip("wrong_truncation", "the window was run from h = 0 instead of the context h0",
             lambda h0, **kw: end_of_window_update(h0=np.zeros_like(np.asarray(h0)), **kw),
             hint="The window starts from the context h0 carried over from the earlier steps: h_{e-k2} = h0, "
                  "not 0; it is a constant of the update, but it shapes every state of the window.",
             explanation="The window was run forward from a zero state, so its states, outputs and gradient are "
                         "those of a different computation from the one the network made."),
        Slip("off_by_one_time", "the error of step e-1 (the second-to-last row) instead of step e",
             _previous_error),
        *(Slip(m, d, _recursion_slip(derivative=f)) for m, d, f in derivative_slips()[:2]),
        Slip("transposed", "W ā_{k+1} instead of Wᵀ ā_{k+1} going back", _recursion_slip(recurrent_transposed=False),
             hint="Going back through a_{k+1} = W h_k multiplies by Wᵀ: dE_e/dh_k = Wᵀ ā_{k+1} (W.T @ abar)."),
        Slip("sign_flipped", "θ + lr · g: a step up the gradient",
             lambda lr, **kw: end_of_window_update(lr=-lr, **kw),
             hint="A gradient descent step goes downhill: θ ← θ - lr · g.",
             explanation="The update adds lr · g instead of subtracting it: it climbs the loss."),
    ),
    points=3.0, hints=("The context h0 enters a_1 = W h0 + U x_1 + b: copy 1's term for W is ā_1 h0ᵀ.",),
    timeline=PREFIX,
)
