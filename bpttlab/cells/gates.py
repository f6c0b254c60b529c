r"""What the gated cells (GRU, LSTM) share: fixed nonlinearities, the logistic gate, small kernels.

A gate is a logistic sigmoid of a pre-activation, :math:`\sigma(a) = 1/(1 + e^{-a})`, with
:math:`\sigma'(a) = \sigma(a)(1 - \sigma(a))`; the candidate (and, in the LSTM, the squashing of the cell
state) is :math:`\tanh`, with :math:`\tanh'(a) = 1 - \tanh^2(a)`. This is the definition of the cells in
PyTorch's nn.GRU / nn.LSTM, so the nonlinearities are not a choice: the ``activation=`` of a gated network
names its candidate nonlinearity and must be ``"tanh"``.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from numba import njit

from ..activations import SIGMOID_CODE, Activation, act as _act

#: A per-step product goes to BLAS from this many rows (batch) and multiply-adds; below, plain loops.
BLAS_MIN_ROWS = 8
BLAS_MIN_WORK = 4096

#: The one activation a gated cell accepts (the candidate nonlinearity of PyTorch's GRU and LSTM).
CANDIDATE = "tanh"


@njit(cache=True, inline="always")
def sigmoid(a: float) -> float:
    """The logistic gate, overflow-free for either sign of a."""
    return _act(SIGMOID_CODE, a)


@njit(cache=True, inline="always")
def rows_times(X, M, out):
    """out = X M for X (B, k), M (k, m): one step of the batch; plain loops (out_r += X_rj M_j, which
    vectorise) when the product is too small to pay for a BLAS call."""
    B, k = X.shape
    m = M.shape[1]
    if B >= BLAS_MIN_ROWS and B * k * m >= BLAS_MIN_WORK:
        np.dot(X, M, out)
    else:
        out[:] = 0.0
        for r in range(B):
            o = out[r]
            for j in range(k):
                d = X[r, j]
                row = M[j]
                for i in range(m):
                    o[i] += d * row[i]


@njit(cache=True, inline="always")
def rows_times_add(X, M, out, tmp):
    """out += X M for X (B, k), M (k, m); tmp (B, m) is scratch for the BLAS path."""
    B, k = X.shape
    m = M.shape[1]
    if B >= BLAS_MIN_ROWS and B * k * m >= BLAS_MIN_WORK:
        np.dot(X, M, tmp)
        for r in range(B):
            o = out[r]
            u = tmp[r]
            for i in range(m):
                o[i] += u[i]
    else:
        for r in range(B):
            vector_times_add(X[r], M, out[r])


@njit(cache=True, inline="always")
def vector_times_add(v, M, out):
    """out += v M for a vector v (k,) and M (k, m), i.e. out += M^T v."""
    for j in range(M.shape[0]):
        d = v[j]
        row = M[j]
        for i in range(M.shape[1]):
            out[i] += d * row[i]


def stacked(params, prefix: str, gates) -> np.ndarray:
    """The gates' matrices (or biases) ``prefix_g`` stacked row-wise in the order of ``gates``, so that
    one matrix product computes every gate's pre-activation at once."""
    return np.ascontiguousarray(np.concatenate([params[f"{prefix}_{g}"] for g in gates]))


class sigmoid_gate(sp.Function):  # noqa: N801 (SymPy names functions in lower case)
    r"""The gate in SymPy, printed :math:`\sigma(a)` so that derivations stay readable.

    Its derivative is :math:`\sigma(1 - \sigma)`; at a number it is :math:`1/(1 + e^{-a})`;
    ``rewrite(sp.exp)`` gives that form anywhere, and ``lambdify`` evaluates it with NumPy as
    :math:`\sigma(a) = (1 + \tanh(a/2))/2`, which cannot overflow (importing SciPy's ``expit`` would
    add more than half a second to every kernel start).
    """

    nargs = 1
    _imp_ = staticmethod(lambda a: 0.5 * (1.0 + np.tanh(0.5 * a)))

    @classmethod
    def eval(cls, a):
        if a.is_Number:
            return 1 / (1 + sp.exp(-a))
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return 1 / (1 + sp.exp(-a))

    def _eval_evalf(self, prec):
        return (1 / (1 + sp.exp(-self.args[0])))._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        s = r"\sigma\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "sigma(%s)" % printer._print(self.args[0])


def check_activation(cell_name: str, torch_name: str, activation: Activation) -> None:
    """Reject any activation but tanh for a gated cell, explaining why.

    Raises:
        ValueError: ``activation`` is not tanh.
    """
    if activation.name != CANDIDATE:
        raise ValueError(f"activation must be {CANDIDATE!r} for the {cell_name} cell, got {activation.name!r}: "
                         f"its gates are sigmoids and its candidate is tanh by definition (PyTorch's "
                         f"{torch_name}), so the nonlinearities are not a choice")


def check_symbolic_activation(cell_name: str, f) -> None:
    """The symbolic step's ``f`` must be tanh for a gated cell (see :func:`check_activation`)."""
    z = sp.Symbol("z")
    if f(z) != sp.tanh(z):
        raise ValueError(f"activation must be {CANDIDATE!r} for the {cell_name} cell, got f(z) = {f(z)}: "
                         "its gates are sigmoids and its candidate is tanh by definition")
