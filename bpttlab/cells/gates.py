r"""What the gated cells (GRU, LSTM) share: fixed nonlinearities and the logistic gate.

A gate is a logistic sigmoid of a pre-activation, :math:`\sigma(a) = 1/(1 + e^{-a})`, with
:math:`\sigma'(a) = \sigma(a)(1 - \sigma(a))`; the candidate (and, in the LSTM, the squashing of the cell
state) is :math:`\tanh`, with :math:`\tanh'(a) = 1 - \tanh^2(a)`. This is the definition of the cells in
PyTorch's nn.GRU / nn.LSTM, so the nonlinearities are not a choice: the ``activation=`` of a gated network
names its candidate nonlinearity and must be ``"tanh"``.
"""
from __future__ import annotations

import numpy as np

from ..activations import SIGMOID, Activation
from ..lazy import LazyModule

sp = LazyModule("sympy")

#: The one activation a gated cell accepts (the candidate nonlinearity of PyTorch's GRU and LSTM).
CANDIDATE = "tanh"


def gate(params, name: str, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    r"""A gate's value on a batch, :math:`\sigma(x U_g^\top + h W_g^\top + b_g)` (B, H), for the per-copy step."""
    return SIGMOID.f(x @ params[f"U_{name}"].T + h @ params[f"W_{name}"].T + params[f"b_{name}"])


def stacked(params, prefix: str, gates) -> np.ndarray:
    """The gates' matrices (or biases) ``prefix_g`` stacked row-wise in the order of ``gates``, so that
    one matrix product computes every gate's pre-activation at once."""
    return np.ascontiguousarray(np.concatenate([params[f"{prefix}_{g}"] for g in gates]))


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
