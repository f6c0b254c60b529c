r"""Exercise of chapter 9: the antithetic evolution-strategy estimate of the gradient.

For the loss :math:`E(\theta) = \sum_t \tfrac12 \lVert o_t - y_t\rVert^2` of a tanh Elman network
(:math:`h_0 = 0`), noise directions :math:`\varepsilon_1, \dots, \varepsilon_m` and a width :math:`\sigma`,

.. math::

    \hat g = \frac{1}{2 m \sigma} \sum_{i=1}^{m}
    \big(E(\theta + \sigma \varepsilon_i) - E(\theta - \sigma \varepsilon_i)\big)\, \varepsilon_i ,

an estimate of the gradient of the Gaussian-smoothed loss from :math:`2m` forward passes. The noise is an
argument (a dict ``eps`` name -> array of shape ``(m, *shape)``), so that the answer is a deterministic
function of the inputs and can be graded; in training it is drawn afresh at every step.
"""
from __future__ import annotations

import numpy as np

from ..engine import bptt
from . import references as R
from .exercise import PREFIX, Exercise, Slip
from .instances import elman_problem

ARGS = "W, U, b, V, c, xs, targets, eps, sigma"


def _inputs(rng) -> dict:
    p = elman_problem(rng)
    m = int(rng.integers(3, 6))
    p["eps"] = {k: rng.normal(0.0, 1.0, (m, *np.shape(p[k]))) for k in R.ELMAN_PARAMETERS}
    p["sigma"] = float(rng.uniform(0.05, 0.2))
    return p


def _estimate(loss, W, U, b, V, c, eps, sigma, pairs=None):
    """The antithetic estimate with ``loss(params)`` as E; ``pairs`` limits the sum (a slip)."""
    theta = dict(zip(R.ELMAN_PARAMETERS, (np.asarray(p, dtype=np.float64) for p in (W, U, b, V, c))))
    m = len(eps["W"])
    g = {k: np.zeros_like(v) for k, v in theta.items()}
    for i in (range(m) if pairs is None else pairs(m)):
        plus = loss({k: theta[k] + sigma * eps[k][i] for k in theta})
        minus = loss({k: theta[k] - sigma * eps[k][i] for k in theta})
        for k in theta:
            g[k] += (plus - minus) * eps[k][i]
    return {k: v / (2 * m * sigma) for k, v in g.items()}


def _engine_loss(xs, targets, reduction="sum"):
    return lambda p: float(bptt(R.elman(*(p[k] for k in R.ELMAN_PARAMETERS)), xs, targets,
                                reduction=reduction).loss)


def es_gradient(W, U, b, V, c, xs, targets, eps, sigma):
    """The reference: the antithetic estimate, each E(θ ± σ ε_i) from the engine."""
    return _estimate(_engine_loss(xs, targets), W, U, b, V, c, eps, sigma)


def _loss_with(xs, targets, recurrent="W", readout_previous=False):
    """E(θ) of a slipped forward pass: Wᵀ for W, or o_t read from h_{t-1}."""
    def loss(p):
        W = p["W"].T if recurrent == "W.T" else p["W"]
        h, E = np.zeros(len(p["b"])), 0.0
        for x, y in zip(np.asarray(xs), np.asarray(targets)):
            h_next = np.tanh(W @ h + p["U"] @ x + p["b"])
            o = p["V"] @ (h if readout_previous else h_next) + p["c"]
            E += 0.5 * float(np.sum((o - y) ** 2))
            h = h_next
        return E
    return loss


def _slip(loss_maker, pairs=None, flip=1.0):
    def compute(W, U, b, V, c, xs, targets, eps, sigma):
        g = _estimate(loss_maker(xs, targets), W, U, b, V, c, eps, sigma, pairs)
        return {k: flip * v for k, v in g.items()}
    return compute


ES_GRADIENT = Exercise(
    id="es-gradient", title="The evolution-strategy gradient estimate", chapter="9 BPTT against search",
    prompt="E(θ) = Σ_t ½‖o_t - y_t‖² for a tanh Elman network with the parameters θ = (W, U, b, V, c), h_0 = 0. "
           "eps is a dict name -> array (m, *shape): m noise directions ε_i for every parameter. Return the "
           "antithetic estimate ĝ = Σ_i (E(θ + σ ε_i) - E(θ - σ ε_i)) ε_i / (2 m σ), as a dict with keys "
           "W, U, b, V, c; use forward passes only.",
    function="es_gradient", signature=f"es_gradient({ARGS}) -> dict", parameter="g_hat",
    generate=_inputs, reference=es_gradient,
    slips=(
        Slip("sign_flipped", "E(θ - σ ε_i) - E(θ + σ ε_i): the difference taken the wrong way round",
             _slip(_engine_loss, flip=-1.0),
             hint="A direction ε_i along which the loss grows, E(θ + σ ε_i) > E(θ - σ ε_i), must add +ε_i to the "
                  "gradient estimate."),
        Slip("no_accumulation", "only the last direction's term (= where += belongs)",
             _slip(_engine_loss, pairs=lambda m: (m - 1,)),
             hint="Add the term (E₊ - E₋) ε_i of every direction i = 1..m, then divide by 2 m σ."),
        Slip("mean_instead_of_sum", "E taken as the mean over the steps, not the sum",
             _slip(lambda xs, targets: _engine_loss(xs, targets, "mean")),
             hint="E is the sum Σ_t ½‖o_t - y_t‖² over the steps, not its mean."),
        Slip("off_by_one_time", "o_t read from h_{t-1} in the forward pass",
             _slip(lambda xs, targets: _loss_with(xs, targets, readout_previous=True))),
        Slip("transposed", "Wᵀ h_{t-1} instead of W h_{t-1} in the forward pass",
             _slip(lambda xs, targets: _loss_with(xs, targets, recurrent="W.T")),
             hint="The forward pass uses W itself: a_t = W @ h + U @ x_t + b."),
    ),
    points=2.0, rtol=1e-6,
    hints=("Write E(params) once (a forward pass and the summed loss), then call it at θ + σ ε_i and θ - σ ε_i "
           "with every parameter perturbed by its own ε[name][i].",),
    timeline=PREFIX,
)
