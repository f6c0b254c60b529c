r"""The symbolic term beside the numbers of a backward step: SymPy's :math:`C[k][k]`, its value, and its
difference from the engine's.

At the backward event of copy k the stepper shows the explicit term of :math:`\partial E_k/\partial\theta`,

.. math::

    C[k][k] = \frac{\partial E_k}{\partial s_k}\,\frac{\partial^+ s_k}{\partial \theta},

as :func:`bpttlab.derive` writes it (LaTeX), evaluated at the values of the pass by the symbolic package's
own forward pass (no engine number goes in), and the largest absolute difference from the engine's
``contributions(...)[k-1, k-1]``. Derivations are cached, so stepping back and forth costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .formatting import array_html, escape, number
from .stepper_model import BackwardNumbers, Frame, StepperModel

#: Relative difference below which SymPy and the engine are said to agree.
AGREEMENT = 1e-12


@dataclass(frozen=True)
class SymbolicTerm:
    """The explicit term of one backward step.

    Attributes:
        k: the copy; wrt: the parameter.
        latex: :math:`C[k][k]` in LaTeX.
        value: its value at the pass (the parameter's shape).
        difference: the largest absolute difference from the engine's value.
    """

    k: int
    wrt: str
    latex: str
    value: np.ndarray
    difference: float


@lru_cache(maxsize=64)
def _derivation(cell, T: int, wrt: str, k: int, size, activation, loss, k2, targets, h0: str):
    from ..symbolic.derivation import derive

    return derive(cell, T=T, wrt=wrt, t=k, size=size, activation=activation, loss=loss, k2=k2,
                  targets=targets, h0=h0)


def symbolic_term(model: StepperModel, numbers: BackwardNumbers) -> SymbolicTerm:
    """Derive, evaluate and compare the explicit term of the backward step ``numbers``.

    Raises:
        ValueError: the derivation is not available at this size (the message says why).
    """
    from ..symbolic.numeric import evaluator
    from .. import validation as V

    net, k = model.net, numbers.k
    D, H, O = net.n_in, net.n_hidden, net.n_out
    size = "scalar" if D == H == O == 1 else (D, H, O)
    loss = V.loss_plugin(model.loss)
    y = np.asarray(model.targets)
    classes = tuple(int(c) for c in y.reshape(-1)) if loss.integer_targets else None
    h0 = "zero" if model.h0 is None else "symbol"
    d = _derivation(net.cell, model.T, numbers.wrt, k, size, net.activation, loss, model.k2, classes, h0)
    expr = d.explicit
    entries = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    ev = evaluator(d.graph)
    s0 = np.zeros((1, net.state_size)) if model.h0 is None else np.asarray(model.h0, float).reshape(1, -1)
    vals = ev.forward(net.params, model.xs[:, None, :], s0)
    names = d.graph.names
    for t in range(1, model.T + 1):
        vals.update(zip(names.inputs(t), (np.array([v]) for v in model.xs[t - 1])))
    if not loss.integer_targets:
        y = y.reshape(model.T, O)
        for t in range(1, model.T + 1):
            vals.update(zip(names.targets(t), (np.array([v]) for v in y[t - 1])))
    value = ev.compile(entries)(vals, 1)[:, 0].reshape(np.shape(numbers.explicit))
    if model.reduction == "mean":
        value = value / model.T
    latex = sp.latex(expr, symbol_names=d.graph.names.latex)
    return SymbolicTerm(k, numbers.wrt, latex, value, float(np.max(np.abs(value - numbers.explicit))))


def symbolic_html(model: StepperModel, frame: Frame) -> str:
    """The symbolic term of a backward frame as HTML with inline LaTeX (for an HTMLMath widget), or the
    reason it cannot be shown."""
    n = frame.numbers
    if not isinstance(n, BackwardNumbers):
        return ""
    try:
        term = symbolic_term(model, n)
    except (ValueError, ImportError) as exc:
        return f'<div class="bpttlab-symbolic"><i>symbolic term not shown: {escape(str(exc))}</i></div>'
    k, w = term.k, escape(term.wrt)
    return (f'<div class="bpttlab-symbolic" style="max-width:40em;overflow-x:auto">'
            f"<div>explicit term C[{k}][{k}] for {w}, derived by SymPy:</div>"
            f"<div>$$C[{k}][{k}] = {term.latex}$$</div>"
            f"<div>its value: {array_html(term.value)}</div>"
            f"<div>{agreement(term)}</div></div>")


def agreement(term: SymbolicTerm) -> str:
    """How far SymPy's value is from the engine's, in words that do not depend on rounding noise."""
    scale = max(1.0, float(np.max(np.abs(term.value))))
    if term.difference <= AGREEMENT * scale:
        return f"SymPy and the engine agree to within {AGREEMENT:g} (relative)"
    return f"SymPy and the engine differ by up to {number(term.difference, 3)}"
