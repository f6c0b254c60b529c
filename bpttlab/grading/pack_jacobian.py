r"""Exercise ``jacobian-product`` (chapter 04): the product of state Jacobians and its singular-value bound.

A tanh Elman network starts from a given state :math:`h_k` (``h0``) and reads ``xs`` =
:math:`x_{k+1}, \dots, x_{k+n}`. With :math:`J_j = \partial h_j/\partial h_{j-1} = \operatorname{diag}(1 - h_j^2)\,W`,

.. math::

    \frac{\partial h_{k+n}}{\partial h_k} = J_{k+n} J_{k+n-1} \cdots J_{k+1}, \qquad
    \Bigl\lVert \frac{\partial h_{k+n}}{\partial h_k} \Bigr\rVert_2 \le \sigma_{\max}(W)^{\,n}

(tanh' is at most 1). The student returns both, for n = 1..T: ``{"J": (T, H, H), "bound": (T,)}``. The
instances have a non-normal W, so the spectral radius is strictly below the largest singular value and
the bound with :math:`\rho(W)` differs from the right one on every instance.
"""
from __future__ import annotations

import numpy as np

from .. import forward
from .exercise import Exercise, Slip, Timeline
from .references import elman

ARGS = "W, U, b, h0, xs"


def _inputs(rng: np.random.Generator) -> dict:
    D, H = 2, 3
    T = int(rng.integers(4, 7))
    gain = rng.uniform(1.0, 1.5)
    return {"W": rng.normal(0.0, gain / np.sqrt(H), (H, H)), "U": rng.normal(0.0, 1.0 / np.sqrt(D), (H, D)),
            "b": rng.normal(0.0, 0.3, H), "h0": rng.uniform(-0.8, 0.8, H), "xs": rng.normal(0.0, 1.0, (T, D))}


def _states(W, U, b, h0, xs) -> tuple[np.ndarray, np.ndarray]:
    """(a_1..a_T, h_0..h_T) of the tanh network from h0, by the engine's forward pass."""
    xs = np.asarray(xs, dtype=float)
    h = forward(elman(W, U, b), xs, h0=np.asarray(h0, dtype=float)).h
    return h[:-1] @ np.transpose(W) + xs @ np.transpose(U) + b, h


def _right_factor(W, a, h, h_prev):
    return (1.0 - h * h)[:, None] * W


def _products(factor=_right_factor, newest_left=True, bound="sigma"):
    """The answer with one slip: ``factor(W, a_j, h_j, h_{j-1}) -> J_j``, the order of multiplication,
    and which size of W the bound uses."""
    def compute(W, U, b, h0, xs):
        W = np.asarray(W, dtype=float)
        a, h = _states(W, U, b, h0, xs)
        P, out = np.eye(W.shape[0]), []
        for j in range(1, len(a) + 1):
            Jj = factor(W, a[j - 1], h[j], h[j - 1])
            P = Jj @ P if newest_left else P @ Jj
            out.append(P)
        size = {"sigma": np.linalg.norm(W, 2), "rho": float(np.max(np.abs(np.linalg.eigvals(W)))),
                "frobenius": np.linalg.norm(W)}[bound]
        return {"J": np.array(out), "bound": size ** np.arange(1, len(a) + 1)}
    return compute


reference = _products()

JACOBIAN_PRODUCT = Exercise(
    id="jacobian-product", title="The Jacobian product dh_t/dh_k and its bound", chapter="4 Vanishing and exploding",
    prompt="A tanh Elman network starts from the state h0 = h_k and reads xs = x_{k+1}, ..., x_{k+T}. For "
           "n = 1..T return J[n-1] = ∂h_{k+n}/∂h_k = J_{k+n} ⋯ J_{k+1}, with J_j = diag(1 - h_j²) W, and "
           "bound[n-1] = σ_max(W)^n, the bound on its 2-norm. Return {'J': (T, H, H), 'bound': (T,)}.",
    function="jacobian_products", signature=f"jacobian_products({ARGS}) -> dict", parameter="answer",
    generate=_inputs, reference=reference,
    slips=(
        Slip("wrong_matrix_norm", "bound ρ(W)^n with the spectral radius", _products(bound="rho"),
             hint="The spectral radius bounds nothing for a single product: ‖W v‖ can exceed ρ(W)‖v‖. "
                  "Use σ_max(W) = np.linalg.norm(W, 2)."),
        Slip("wrong_matrix_norm", "bound with the Frobenius norm ‖W‖_F^n", _products(bound="frobenius"),
             hint="‖W‖_F is a bound too, but not the one asked for (and a loose one): the largest singular "
                  "value is np.linalg.norm(W, 2), with the 2."),
        Slip("product_order_reversed", "J_{k+1} ⋯ J_{k+n}: each new Jacobian multiplied in on the right",
             _products(newest_left=False)),
        Slip("transposed", "J_j = diag(1 - h_j²) Wᵀ", _products(factor=lambda W, a, h, hp: (1 - h * h)[:, None] * W.T),
             hint="h_j = tanh(W h_{j-1} + ...), so ∂h_j/∂h_{j-1}[i, l] = (1 - h_j[i]²) W[i, l]: W itself."),
        Slip("elementwise_product", "(1 - h_j²) * W, which broadcasts over the columns (W diag(1 - h_j²))",
             _products(factor=lambda W, a, h, hp: W * (1 - h * h)),
             hint="diag(f') W scales the rows of W: (1 - h**2)[:, None] * W or np.diag(1 - h**2) @ W; "
                  "(1 - h**2) * W scales its columns.",
             explanation="An elementwise product with broadcasting scaled the columns of W where diag(f') W "
                         "scales its rows."),
        Slip("activation_derivative_missing", "J_j = W, the factor 1 - h_j² left out",
             _products(factor=lambda W, a, h, hp: W)),
        Slip("activation_derivative_wrong", "1 - a_j² (at the pre-activation) instead of 1 - h_j²",
             _products(factor=lambda W, a, h, hp: (1 - a * a)[:, None] * W)),
        Slip("off_by_one_time", "diag(1 - h_{j-1}²) W: the derivative of the previous step",
             _products(factor=lambda W, a, h, hp: (1 - hp * hp)[:, None] * W),
             hint="J_j differentiates h_j = tanh(a_j): its factor is 1 - h_j², the new state's."),
    ),
    points=2.0, hints=("Keep a running product P = I and multiply P ← J_j @ P for j = k+1, k+2, ...",),
    timeline=Timeline("prefix", args=("xs",)),
)
