r"""Per-timestep losses :math:`E_t = \ell(o_t, y_t)`, as plugins.

.. math::

    \text{mse:}\quad E_t = \tfrac12 \lVert o_t - y_t \rVert^2, \qquad
    \frac{\partial E_t}{\partial o_t} = o_t - y_t

    \text{cross\_entropy:}\quad E_t = -\log \operatorname{softmax}(o_t)_{y_t}, \qquad
    \frac{\partial E_t}{\partial o_t} = \operatorname{softmax}(o_t) - \operatorname{onehot}(y_t)

A :class:`Loss` works on whole sequences at once: ``value(o, y)`` maps outputs of shape (T, B, O) to the
(T, B) table of E_t per batch element and ``grad(o, y)`` gives dE_t/do_t of shape (T, B, O). These are
O(T B O) vectorised NumPy, cheap next to the recurrence; the Numba kernels only ever see the gradient.
``symbolic(o, y)`` is the same loss over a list of SymPy output components, for :mod:`bpttlab.symbolic`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .lazy import LazyModule

sp = LazyModule("sympy")  # only the symbolic forms need it


@dataclass(frozen=True)
class Loss:
    """A per-timestep loss.

    Attributes:
        name: registry name.
        value: ``value(o (T,B,O), y) -> (T,B)`` array of E_t.
        grad: ``grad(o (T,B,O), y) -> (T,B,O)`` array of dE_t/do_t.
        symbolic: ``symbolic(o: list[Expr], y) -> Expr`` for one time step; ``y`` is a list of symbols
            (regression) or an int class index.
        targets: ``targets(y, T, B, O, batched) -> array`` validates and reshapes the targets to (T,B,...)
            and raises ValueError/TypeError naming ``targets`` otherwise.
        integer_targets: whether targets are class indices.
    """

    name: str
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]
    symbolic: Callable[[list, object], sp.Expr]
    targets: Callable[[object, int, int, int, bool], np.ndarray]
    integer_targets: bool = False


def _mse_targets(y, T, B, O, batched):
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"targets must be numeric for loss 'mse', got dtype {y.dtype}")
    want = (T, B, O) if batched else (T, O)
    if not batched and y.shape == (T,) and O == 1:
        y = y.reshape(T, 1)
    if y.shape != want:
        raise ValueError(f"targets must have shape {want} (the shape of the outputs) for loss 'mse', "
                         f"got {y.shape}")
    y = np.ascontiguousarray(y, dtype=np.float64).reshape(T, B, O)
    if not np.all(np.isfinite(y)):
        raise ValueError("targets contain NaN or inf")
    return y


def _ce_targets(y, T, B, O, batched):
    y = np.asarray(y)
    want = (T, B) if batched else (T,)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class indices for loss 'cross_entropy', got dtype {y.dtype}")
    if y.shape != want:
        raise ValueError(f"targets must have shape {want} (one class per step) for loss 'cross_entropy', "
                         f"got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= O):
        raise ValueError(f"targets must be class indices in [0, {O - 1}] (n_out={O}), "
                         f"got values from {y.min()} to {y.max()}")
    return np.ascontiguousarray(y, dtype=np.int64).reshape(T, B)


def _mse_value(o, y):
    d = o - y
    return 0.5 * np.einsum("tbo,tbo->tb", d, d)


def _mse_grad(o, y):
    return o - y


def _mse_symbolic(o, y):
    return sp.Rational(1, 2) * sum((oi - yi) ** 2 for oi, yi in zip(o, y))


def _log_softmax(o):
    m = o.max(axis=-1, keepdims=True)
    z = o - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _ce_value(o, y):
    lp = _log_softmax(o)
    return -np.take_along_axis(lp, y[..., None], axis=-1)[..., 0]


def _ce_grad(o, y):
    p = np.exp(_log_softmax(o))
    np.put_along_axis(p, y[..., None], np.take_along_axis(p, y[..., None], axis=-1) - 1.0, axis=-1)
    return p


def _ce_symbolic(o, y):
    return -o[int(y)] + sp.log(sum(sp.exp(oi) for oi in o))


MSE = Loss("mse", _mse_value, _mse_grad, _mse_symbolic, _mse_targets)
CROSS_ENTROPY = Loss("cross_entropy", _ce_value, _ce_grad, _ce_symbolic, _ce_targets, integer_targets=True)


def validate_loss(name: str, obj: object) -> None:
    """Check a loss plugin: its type, and that ``grad`` matches central differences of ``value``."""
    if not isinstance(obj, Loss):
        raise TypeError(f"a loss plugin must be a bpttlab.losses.Loss, got {type(obj).__name__}")
    if obj.name != name:
        raise ValueError(f"loss registered as {name!r} calls itself {obj.name!r}")
    rng = np.random.default_rng(0)
    T, B, O = 2, 2, 3
    o = rng.normal(size=(T, B, O))
    y = obj.targets(rng.integers(0, O, size=(T, B)) if obj.integer_targets else rng.normal(size=(T, B, O)),
                    T, B, O, True)
    g = obj.grad(o, y)
    eps = 1e-6
    fd = np.empty_like(o)
    for idx in np.ndindex(*o.shape):
        e = np.zeros_like(o)
        e[idx] = eps
        fd[idx] = (obj.value(o + e, y).sum() - obj.value(o - e, y).sum()) / (2 * eps)
    if g.shape != o.shape or not np.allclose(g, fd, rtol=1e-5, atol=1e-7):
        raise ValueError(f"loss {name!r}: grad does not match finite differences of value")
