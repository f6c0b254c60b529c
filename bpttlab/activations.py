r"""Activation functions f in :math:`h_t = f(a_t)`, as plugins.

An :class:`Activation` carries the same function three ways: a vectorised NumPy ``f`` and its
derivative ``df(a, h)`` (``h = f(a)`` is passed so tanh and sigmoid can reuse it), a SymPy ``symbolic``
form for :mod:`bpttlab.symbolic`, and, for the built-ins, an integer ``code`` that selects the branch of
the Numba kernels (:func:`bpttlab.cells.kernels.act`, :func:`~bpttlab.cells.kernels.dact`).

.. math::

    \tanh'(a) = 1 - h^2, \qquad \sigma'(a) = h (1 - h), \qquad
    \mathrm{relu}'(a) = [a > 0], \qquad \mathrm{id}'(a) = 1.

The derivative of relu at 0 is taken to be 0 (the subgradient most libraries use); the symbolic form
uses the same convention, ``Heaviside(a, 0)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .lazy import LazyModule

#: the branches of the compiled kernels (:func:`bpttlab.cells.kernels.act`)
IDENTITY_CODE, TANH_CODE, RELU_CODE, SIGMOID_CODE = 0, 1, 2, 3

sp = LazyModule("sympy")  # imported by the first symbolic use, not by ``import bpttlab``

@dataclass(frozen=True)
class Activation:
    """An elementwise activation.

    Attributes:
        name: registry name.
        f: NumPy ufunc-like ``f(a) -> h``.
        df: NumPy ``df(a, h) -> f'(a)``.
        symbolic: SymPy ``symbolic(a) -> f(a)`` for a scalar expression ``a``.
        symbolic_derivative: SymPy ``f'(a)``; ``None`` means "differentiate ``symbolic``".
        code: branch of the built-in Numba kernels, or ``None`` for a plugin activation that only
            plugin cells written in NumPy can use.
    """

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray, np.ndarray], np.ndarray]
    symbolic: Callable[[sp.Expr], sp.Expr]
    symbolic_derivative: Callable[[sp.Expr], sp.Expr] | None = None
    code: int | None = None

    def sym_df(self, a: sp.Expr) -> sp.Expr:
        """f'(a) as a SymPy expression."""
        if self.symbolic_derivative is not None:
            return self.symbolic_derivative(a)
        z = sp.Dummy("z")
        return sp.diff(self.symbolic(z), z).subs(z, a)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


TANH = Activation("tanh", np.tanh, lambda a, h: 1.0 - h * h, lambda a: sp.tanh(a),
                  lambda a: 1 - sp.tanh(a) ** 2, TANH_CODE)
RELU = Activation("relu", lambda a: np.maximum(a, 0.0), lambda a, h: (np.asarray(a) > 0).astype(float),
                  lambda a: sp.Max(a, 0), lambda a: sp.Heaviside(a, 0), RELU_CODE)
SIGMOID = Activation("sigmoid", _sigmoid, lambda a, h: h * (1.0 - h),
                     lambda a: 1 / (1 + sp.exp(-a)), lambda a: sp.exp(-a) / (1 + sp.exp(-a)) ** 2,
                     SIGMOID_CODE)
IDENTITY = Activation("identity", lambda a: np.asarray(a, dtype=float), lambda a, h: np.ones_like(a),
                      lambda a: a, lambda a: sp.Integer(1), IDENTITY_CODE)


def validate_activation(name: str, obj: object) -> None:
    """Check an activation plugin: its type, and that df and the symbolic form agree with f.

    ``df`` is compared with central differences of ``f`` and ``symbolic`` with ``f`` at points away from
    0 (where relu-like functions have a kink).
    """
    if not isinstance(obj, Activation):
        raise TypeError(f"an activation plugin must be a bpttlab.activations.Activation, got {type(obj).__name__}")
    if obj.name != name:
        raise ValueError(f"activation registered as {name!r} calls itself {obj.name!r}")
    pts = np.array([-1.7, -0.6, -0.2, 0.3, 0.9, 2.1])
    h = np.asarray(obj.f(pts), dtype=float)
    eps = 1e-6
    fd = (np.asarray(obj.f(pts + eps)) - np.asarray(obj.f(pts - eps))) / (2 * eps)
    d = np.asarray(obj.df(pts, h), dtype=float)
    if h.shape != pts.shape or not np.allclose(d, fd, rtol=1e-5, atol=1e-7):
        raise ValueError(f"activation {name!r}: df does not match finite differences of f")
    z = sp.Symbol("z")
    # evaluated by SymPy itself: lambdify's first call costs about half a second (at every kernel start)
    fs, dfs = obj.symbolic(z), obj.sym_df(z)
    if not np.allclose([float(sp.sympify(fs).subs(z, p)) for p in pts], h, rtol=1e-12, atol=1e-12):
        raise ValueError(f"activation {name!r}: the symbolic form does not match f")
    if not np.allclose([float(sp.sympify(dfs).subs(z, p)) for p in pts], d, rtol=1e-9, atol=1e-12):
        raise ValueError(f"activation {name!r}: the symbolic derivative does not match df")
