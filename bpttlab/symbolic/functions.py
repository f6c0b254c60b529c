r"""The activation in formulas: an abstract :math:`f` and its derivative :math:`f'`.

Derivations keep the activation abstract, so a term reads :math:`(o_3 - y_3)\, V f'(a_3)\, h_2` whatever
f is; :func:`concrete` puts in the activation plugin's own formulas when a value is needed:

.. math::

    f(a) \mapsto \texttt{activation.symbolic}(a), \qquad f'(a) \mapsto \texttt{activation.sym\_df}(a),

so relu's derivative is ``Heaviside(a, 0)`` (0 at a = 0, like the engine) and not SymPy's own
``Heaviside(a)``, which leaves the value at 0 open.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..activations import Activation


class f(sp.Function):  # noqa: N801 (SymPy names functions in lower case)
    """The activation, unspecified: :math:`h = f(a)`. Its derivative is :class:`f_prime`."""

    nargs = 1

    def fdiff(self, argindex=1):
        return f_prime(self.args[0])

    def _latex(self, printer, exp=None):
        s = r"f\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)


class f_prime(sp.Function):  # noqa: N801
    """The derivative :math:`f'(a)` of the activation, printed as f'(a)."""

    nargs = 1

    def _latex(self, printer, exp=None):
        s = r"f'\left(%s\right)" % printer._print(self.args[0])
        return s if exp is None else r"%s^{%s}" % (s, exp)

    def _sympystr(self, printer):
        return "f'(%s)" % printer._print(self.args[0])


def concrete(expr, activation: Activation):
    """``expr`` with f and f' replaced by the activation's symbolic formulas."""
    return expr.replace(f, activation.symbolic).replace(f_prime, activation.sym_df)


def numeric_functions(activation: Activation) -> dict:
    """NumPy implementations of f and f' built from the activation's *symbolic* formulas (not from its
    NumPy ``f``/``df``, which the engine uses), as a ``lambdify`` namespace."""
    z = sp.Symbol("z")
    fn = sp.lambdify(z, activation.symbolic(z), "numpy")
    dfn = sp.lambdify(z, activation.sym_df(z), "numpy")

    def value(a):
        return np.broadcast_to(fn(a), np.shape(a)) * 1.0

    def slope(a):
        return np.broadcast_to(dfn(a), np.shape(a)) * 1.0

    return {"f": value, "f_prime": slope}
