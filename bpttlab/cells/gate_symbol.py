"""The logistic gate as a SymPy function, for the gated cells' symbolic steps (a module of its own:
defining the class imports SymPy, which only symbolic derivations need)."""
from __future__ import annotations

import numpy as np
import sympy as sp


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
