r"""What the gated cells (GRU, LSTM) share: fixed nonlinearities and the logistic gate.

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

from ..activations import SIGMOID, SIGMOID_CODE, Activation, act as _act

#: The one activation a gated cell accepts (the candidate nonlinearity of PyTorch's GRU and LSTM).
CANDIDATE = "tanh"


@njit(cache=True)
def sigmoid(a: float) -> float:
    """The logistic gate, overflow-free for either sign of a."""
    return _act(SIGMOID_CODE, a)


def gate(params, name: str, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    r"""A gate's value on a batch, :math:`\sigma(x U_g^\top + h W_g^\top + b_g)` (B, H), for the per-copy step."""
    return SIGMOID.f(x @ params[f"U_{name}"].T + h @ params[f"W_{name}"].T + params[f"b_{name}"])


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
