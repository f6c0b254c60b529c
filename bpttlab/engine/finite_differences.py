r"""Finite-difference check of the engine's gradients.

For every parameter entry :math:`\theta_i`, the central difference

.. math::

    g_i \approx \frac{E(\theta + \varepsilon e_i) - E(\theta - \varepsilon e_i)}{2 \varepsilon}

is compared with the BPTT gradient, per parameter, by the relative error

.. math::

    \frac{\lVert g_{fd} - g \rVert}{\max\bigl(\lVert g_{fd} \rVert + \lVert g \rVert,\; 10^6 r\bigr)},
    \qquad r = 10 \sqrt{n}\, \frac{u \max(1, |E|)}{\varepsilon},

where :math:`u` is the float64 unit roundoff and n the parameter's size: r is (ten times) how much
rounding in E alone moves n central differences, and :math:`10^6 r` the smallest gradient they resolve
to six digits. Where the gradient is smaller than that (an LSTM in saturation, where the differences
round to 0), the error is measured against that floor instead of against 0, so it cannot read 100 % for
two numbers that are both below what finite differences can see. It
needs only forward passes, so it is independent of the backward kernels. The parameters are perturbed
in place and restored whatever happens (an exception, Ctrl-C).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core import bptt
from .passes import prepare
from ..network import Network


@dataclass
class GradCheck:
    """Relative error per parameter, with the gradients compared."""

    rel_error: dict[str, float]
    numeric: dict[str, np.ndarray]
    analytic: dict[str, np.ndarray]
    tol: float

    @property
    def passed(self) -> bool:
        return all(e < self.tol for e in self.rel_error.values())

    @property
    def max_error(self) -> float:
        return max(self.rel_error.values())

    def __repr__(self) -> str:
        rows = "\n".join(f"  {k:<6} {e:.2e}  {'ok' if e < self.tol else 'FAIL'}" for k, e in self.rel_error.items())
        return f"GradCheck(tol={self.tol:g}, {'passed' if self.passed else 'FAILED'})\n{rows}"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{k}</td><td>{e:.2e}</td><td>{'ok' if e < self.tol else 'FAIL'}</td></tr>"
                       for k, e in self.rel_error.items())
        return (f"<table><tr><th>parameter</th><th>relative error</th><th>tol {self.tol:g}</th></tr>{rows}"
                "</table>")


def total_loss(net: Network, xs, targets, loss="mse", reduction="sum", h0=None) -> float:
    """E for the current parameters (a forward pass and the loss, nothing else)."""
    return float(prepare(net, xs, targets, loss, reduction, h0).E.sum())


def gradcheck(net: Network, xs, targets, loss="mse", reduction: str = "sum", h0=None,
              eps: float = 1e-6, tol: float = 1e-6) -> GradCheck:
    """Compare full-BPTT gradients with central finite differences.

    Args:
        net, xs, targets, loss, reduction, h0: as for :func:`bpttlab.bptt`.
        eps: the finite-difference step.
        tol: the relative error under which a parameter passes.

    Returns:
        a :class:`GradCheck` (``.passed``, ``.rel_error``, a table in Jupyter).
    """
    if not (isinstance(eps, float) and 0 < eps < 1):
        raise ValueError(f"eps must be a float in (0, 1), got {eps!r}")
    res = bptt(net, xs, targets, loss=loss, reduction=reduction, h0=h0)
    numeric, errors = {}, {}
    for name, p in net.params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            try:
                p[idx] = old + eps
                up = total_loss(net, xs, targets, loss, reduction, h0)
                p[idx] = old - eps
                down = total_loss(net, xs, targets, loss, reduction, h0)
            finally:
                p[idx] = old
            g[idx] = (up - down) / (2 * eps)
        a = res.grads[name]
        numeric[name] = g
        noise = 10.0 * np.sqrt(p.size) * np.finfo(np.float64).eps * max(1.0, abs(res.loss)) / eps
        errors[name] = float(np.linalg.norm(g - a) / max(np.linalg.norm(g) + np.linalg.norm(a), 1e6 * noise))
    return GradCheck(errors, numeric, res.grads, tol)
