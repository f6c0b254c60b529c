r"""Activation functions f in :math:`h_t = f(a_t)`, as plugins.

An :class:`Activation` carries the same function three ways: a vectorised NumPy ``f`` and its
derivative ``df(a, h)`` (``h = f(a)`` is passed so tanh and sigmoid can reuse it), a SymPy ``symbolic``
form for :mod:`bpttlab.symbolic`, and, for the built-ins, an integer ``code`` that selects the branch of
the Numba kernels (:func:`act`, :func:`dact`).

.. math::

    \tanh'(a) = 1 - h^2, \qquad \sigma'(a) = h (1 - h), \qquad
    \mathrm{relu}'(a) = [a > 0], \qquad \mathrm{id}'(a) = 1.

The derivative of relu at 0 is taken to be 0 (the subgradient most libraries use); the symbolic form
uses the same convention, ``Heaviside(a, 0)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp
from numba import njit

IDENTITY_CODE, TANH_CODE, RELU_CODE, SIGMOID_CODE = 0, 1, 2, 3

# Cephes' rational approximation of tanh on |x| < 0.625 (relative error 2.5e-16).
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_P0, _P1, _P2 = _TANH_P
_Q0, _Q1, _Q2 = _TANH_Q
# ln 2 split so that k * _LN2_HI is exact for the k used here (Cody and Waite).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
# 1.5 * 2**52: y + _ROUND rounds y to an integer k and leaves k in the low bits of the result.
_ROUND = 6755399441055744.0
_ONE_BITS = 1023 << 52  # the bits of 1.0: adding k << 52 to them gives 2**k


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


@njit(cache=True, error_model="numpy")
def tanh(x):
    r"""tanh(x) to within 2 ulp, in branch-free arithmetic that LLVM vectorises.

    .. math::

        \tanh x = x + x^3 \frac{P(x^2)}{Q(x^2)} \quad (|x| < 0.625), \qquad
        \tanh x = \operatorname{sign}(x)\Bigl(1 - \frac{2}{e^{2|x|} + 1}\Bigr) \quad \text{otherwise},

    with :math:`e^{y} = 2^k e^{r}`, :math:`k = \operatorname{round}(y / \ln 2)`, :math:`|r| \le \ln 2 / 2`,
    :math:`e^r` by its Taylor polynomial of degree 13 (truncation error below 5e-18, evaluated by
    Estrin's scheme for a short dependency chain) and :math:`2^k` written straight into the exponent
    bits. ``y`` is capped at 40, where tanh is 1 in float64. Both branches are computed and one is
    selected, so a loop over an array has no branches; NaN stays NaN.
    """
    ax = abs(x)
    z = x * x
    small = x + x * z * (((_P0 * z + _P1) * z + _P2) / (((z + _Q0) * z + _Q1) * z + _Q2))
    y = 2.0 * ax
    y = y if y < 40.0 else 40.0
    kk = y * _INV_LN2 + _ROUND
    k = kk - _ROUND
    r = (y - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    c01 = 1.0 + r
    c23 = 0.5 + r * (1.0 / 6.0)
    c45 = (1.0 / 24.0) + r * (1.0 / 120.0)
    c67 = (1.0 / 720.0) + r * (1.0 / 5040.0)
    c89 = (1.0 / 40320.0) + r * (1.0 / 362880.0)
    c1011 = (1.0 / 3628800.0) + r * (1.0 / 39916800.0)
    c1213 = (1.0 / 479001600.0) + r * (1.0 / 6227020800.0)
    p = ((c01 + c23 * r2) + (c45 + c67 * r2) * r4) + ((c89 + c1011 * r2) + c1213 * r4) * (r4 * r4)
    two_k = np.int64((np.float64(kk).view(np.int64) << 52) + _ONE_BITS).view(np.float64)
    big = 1.0 - 2.0 / (p * two_k + 1.0)
    big = big if x >= 0.0 else -big
    return big if ax >= 0.625 else small


@njit(cache=True)
def act(code: int, a: float) -> float:
    """f(a) for a built-in activation code."""
    if code == TANH_CODE:
        return tanh(a)
    if code == RELU_CODE:
        return a if a > 0.0 else 0.0
    if code == SIGMOID_CODE:
        if a >= 0.0:
            return 1.0 / (1.0 + math.exp(-a))
        e = math.exp(a)
        return e / (1.0 + e)
    return a


@njit(cache=True)
def dact(code: int, a: float, h: float) -> float:
    """f'(a) for a built-in activation code, given h = f(a)."""
    if code == TANH_CODE:
        return 1.0 - h * h
    if code == RELU_CODE:
        return 1.0 if a > 0.0 else 0.0
    if code == SIGMOID_CODE:
        return h * (1.0 - h)
    return 1.0


def _sigmoid(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


TANH = Activation("tanh", np.tanh, lambda a, h: 1.0 - h * h, sp.tanh,
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
