r"""``bl.derive``: the gradient of one loss :math:`E_t` with respect to one parameter, term by term.

.. math::

    \frac{\partial E_t}{\partial \theta}
    = \underbrace{C[t][t]}_{\text{explicit}} + \underbrace{\sum_{k<t} C[t][k]}_{\text{implicit}},
    \qquad
    C[t][k] = \frac{\partial E_t}{\partial h_t}\,\frac{\partial h_t}{\partial h_k}\,
              \frac{\partial^+ h_k}{\partial \theta},
    \qquad \frac{\partial h_t}{\partial h_k} = \prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}},

where :math:`C[t][k] = \partial E_t/\partial\theta_k` is the derivative with respect to the copy of
:math:`\theta` that step k uses (ARCHITECTURE.md). The same gradient in recursive form (the seed
derivation):

.. math::

    \frac{d h_t}{d \theta} = \frac{\partial^+ h_t}{\partial \theta}
    + \frac{\partial h_t}{\partial h_{t-1}}\,\frac{d h_{t-1}}{d \theta}, \qquad
    \frac{d h_0}{d\theta} = 0 .

With truncation k2 only the terms with :math:`k > t - k_2` are kept (:math:`h_{t-k_2}` is a constant).
"""
from __future__ import annotations

from functools import cached_property

import sympy as sp

from .. import registry
from .. import validation as V
from ..activations import Activation
from ..cells.base import Cell
from ..losses import Loss
from . import limits
from .graph import Graph, graph
from .names import Sizes, parse_size

H0_MODES = ("zero", "symbol")


class Derivation:
    r"""The derivation of :math:`\partial E_t/\partial\theta` (from :func:`derive`).

    Every expression is over the symbols of the unrolled network (x_k, h_k, a_k, o_t, y_t and the
    parameters), with the activation kept abstract as f and f' (see :meth:`concrete`); a matrix
    parameter gives Matrices of its shape, a vector parameter a column.

    Attributes:
        cell, T, t, wrt, sizes, activation, loss, k2, targets, h0: what was derived.
        graph: the unrolled network the terms come from.
    """

    def __init__(self, cell: Cell, T: int, t: int, wrt: str, sizes: Sizes, activation: Activation, loss: Loss,
                 k2: int | None, targets: tuple[int, ...] | None, h0: str, graph_: Graph):
        self.cell, self.T, self.t, self.wrt, self.sizes = cell, T, t, wrt, sizes
        self.activation, self.loss, self.k2, self.targets, self.h0 = activation, loss, k2, targets, h0
        self.graph = graph_
        self.shape = cell.param_shapes(sizes.D, sizes.H, sizes.O)[wrt]

    # -- which terms ---------------------------------------------------------------------------------
    @property
    def first_kept(self) -> int:
        """The earliest copy k whose term is kept: 1, or t - k2 + 1 under truncation."""
        return 1 if self.k2 is None else max(1, self.t - self.k2 + 1)

    @property
    def dropped(self) -> tuple[int, ...]:
        """Copies k whose terms truncation drops (k <= t - k2)."""
        return tuple(range(1, self.first_kept))

    # -- expressions ---------------------------------------------------------------------------------
    def loss_gradient(self, t: int | None = None) -> sp.Matrix:
        r""":math:`\partial E_t/\partial o_t` (O, 1)."""
        t = self.t if t is None else t
        target = self.targets[t - 1] if self.targets is not None else None
        return self.graph.loss_gradient(self.loss, t, target)

    @cached_property
    def _substitution(self) -> dict:
        sub = dict(zip(self.graph.names.loss_gradient(self.t), self.loss_gradient()))
        if self.h0 == "zero":
            sub |= {s: sp.Integer(0) for s in self.graph.states(0)}
        return sub

    def public(self, m: sp.Matrix):
        """A row over the parameter's entries (or any Matrix) with the loss put in and h_0 = 0 where
        asked: an expression in scalar mode, else a Matrix of the parameter's shape."""
        m = m.xreplace(self._substitution)
        if m.rows != 1 or m.cols != len(self.graph.entries[self.wrt]):
            return m
        if self.sizes.scalar:
            return m[0]
        return m.reshape(self.shape[0], 1 if len(self.shape) == 1 else self.shape[1])

    def _zero(self):
        return sp.Integer(0) if self.sizes.scalar else sp.zeros(self.shape[0], 1 if len(self.shape) == 1 else self.shape[1])

    @cached_property
    def terms(self) -> dict[int, sp.Expr | sp.Matrix]:
        r"""k -> C[t][k] for the kept copies, k ascending (the expanded form
        :math:`\sum_k C[t][k]`)."""
        return {k: self.public(self.graph.term(self.t, k, self.wrt)) for k in range(self.first_kept, self.t + 1)}

    @property
    def explicit(self):
        """C[t][t]: the copy of the parameter used by step t itself."""
        return self.terms[self.t]

    @cached_property
    def implicit(self):
        """The sum of C[t][k] over the kept k < t: every path through the earlier states."""
        out = self._zero()
        for k in range(self.first_kept, self.t):
            out = out + self.terms[k]
        return out

    @cached_property
    def total(self):
        """explicit + implicit = dE_t/dtheta (truncated when k2 is set)."""
        return self.explicit + self.implicit

    @property
    def expanded(self):
        """The unevaluated sum of the terms, latest copy first (``.doit()`` for the total in vector mode)."""
        ks = sorted(self.terms, reverse=True)
        if self.sizes.scalar:
            return sp.Add(*(self.terms[k] for k in ks), evaluate=False)
        return sp.MatAdd(*(sp.ImmutableMatrix(self.terms[k]) for k in ks), evaluate=False)

    def jacobian(self, k: int) -> sp.Matrix:
        """J_k = ds_k/ds_{k-1} (S, S), e.g. W f'(a_k) for a scalar Elman cell."""
        return self.graph.step(k).jacobian.xreplace(self._substitution)

    def explicit_state_derivative(self, k: int) -> sp.Matrix:
        r""":math:`\partial^+ s_k/\partial\theta` (S, n), one column per entry (row-major)."""
        return self.graph.step(k).explicit[self.wrt].xreplace(self._substitution)

    @cached_property
    def definitions(self) -> list[sp.Eq]:
        """a_k = ..., h_k = f(a_k), o_k = ... for steps 1..t (h_0 = 0 unless h0="symbol")."""
        return [sp.Eq(sym, expr.xreplace(self._substitution), evaluate=False)
                for sym, expr in self.graph.definitions(self.t)]

    @cached_property
    def recursive(self) -> list[sp.Eq]:
        r"""The recursive form, outermost first:

        .. math::

            \frac{\partial E_t}{\partial\theta} = g_t\Bigl(\frac{\partial^+ o_t}{\partial\theta}
            + \frac{\partial o_t}{\partial s_t}\frac{d s_t}{d\theta}\Bigr), \qquad
            \frac{d s_k}{d\theta} = \frac{\partial^+ s_k}{\partial\theta} + J_k \frac{d s_{k-1}}{d\theta},

        down to the first kept copy, whose predecessor counts as a constant (:math:`d s/d\theta = 0`).
        Scalar mode uses Symbols ``ds_k/dtheta``; otherwise (S, n) MatrixSymbols.
        """
        g = self.graph
        S, n, O = g.names.S, len(g.entries[self.wrt]), self.sizes.O
        scalar = (S, n) == (1, 1)
        sub = self._substitution

        def total(k):
            if k < self.first_kept:
                return sp.Integer(0) if scalar else sp.ZeroMatrix(S, n)
            name = f"d{g.names.state}_{k}/d{self.wrt}"
            return sp.Symbol(name) if scalar else sp.MatrixSymbol(name, S, n)

        def mat(m):
            return sp.ImmutableMatrix(m.xreplace(sub))

        step_t = g.step(self.t)
        head = total(self.t if g.template.readout else self.t - 1)
        out_explicit, out_state = step_t.out_explicit[self.wrt], step_t.out_state
        gt = self.loss_gradient().T
        lhs = sp.Symbol(f"dE_{self.t}/d{self.wrt}") if n == 1 else sp.MatrixSymbol(f"dE_{self.t}/d{self.wrt}", 1, n)
        if scalar and O == 1:
            rhs = (gt[0] * (out_explicit[0] + out_state[0] * head)).xreplace(sub)
        else:
            rhs = sp.MatMul(mat(gt), sp.MatAdd(mat(out_explicit), sp.MatMul(mat(out_state), head)))
        eqs = [sp.Eq(lhs, rhs, evaluate=False)]
        last = self.t if g.template.readout else self.t - 1
        for k in range(last, self.first_kept - 1, -1):
            E, J = self.explicit_state_derivative(k), self.jacobian(k)
            if scalar:
                rhs = E[0] + J[0] * total(k - 1)
            else:
                rhs = sp.MatAdd(sp.ImmutableMatrix(E), sp.MatMul(sp.ImmutableMatrix(J), total(k - 1)))
            eqs.append(sp.Eq(total(k), rhs, evaluate=False))
        return eqs

    # -- other forms ---------------------------------------------------------------------------------
    def concrete(self, expr):
        """``expr`` with f and f' replaced by the activation's formulas (tanh, Heaviside(a, 0), ...)."""
        from .functions import concrete

        return concrete(expr, self.activation)

    def unrolled(self, expr):
        """``expr`` with every intermediate quantity (a_k, h_k, o_k) substituted by its definition: a
        function of the inputs, targets and parameters alone."""
        leaves = {s: sp.Integer(0) for s in self.graph.states(0)} if self.h0 == "zero" else {}
        return expr.xreplace(self.graph.unroll(self.t, leaves))

    def verify(self, points: int = 3, seed: int = 0):
        """Prove explicit + implicit = the derivative of the unrolled E_t (see :mod:`.verify`)."""
        from .verify import verify

        return verify(self, points=points, seed=seed)

    # -- display -------------------------------------------------------------------------------------
    def latex(self) -> str:
        from .render import latex

        return latex(self)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __str__(self) -> str:
        from .render import text

        return text(self)

    def __repr__(self) -> str:
        return str(self)


def _cell(cell) -> Cell:
    if isinstance(cell, Cell):
        return cell
    return registry.cells.get(cell, "cell")


def _activation(activation) -> Activation:
    if isinstance(activation, Activation):
        return activation
    return registry.activations.get(activation, "activation")


def _targets(loss: Loss, targets, T: int, O: int) -> tuple[int, ...] | None:
    if not loss.integer_targets:
        if targets is not None:
            raise ValueError(f"targets are symbols y_t for loss {loss.name!r}; pass targets=None")
        return None
    if O < 2:
        raise ValueError(f"loss {loss.name!r} needs n_out >= 2 (size=(D, H, O) with O >= 2), got O={O}")
    if targets is None:
        return (0,) * T
    try:
        classes = tuple(int(c) for c in targets)
    except (TypeError, ValueError):
        raise TypeError(f"targets must be a sequence of {T} class indices, got {targets!r}") from None
    if len(classes) != T or any(c < 0 or c >= O for c in classes):
        raise ValueError(f"targets must be {T} class indices in [0, {O - 1}], got {targets!r}")
    return classes


def derive(cell, T: int, wrt: str, t: int | None = None, size="scalar", activation="tanh", loss="mse",
           k2: int | None = None, targets=None, h0: str = "zero") -> Derivation:
    r"""Derive :math:`\partial E_t/\partial\theta` symbolically, as explicit and implicit terms.

    Args:
        cell: a registered cell name ("elman", "jordan", ...) or a Cell.
        T: the sequence length (t <= T; E_t only depends on steps 1..t).
        wrt: the parameter (a name from the cell's ``param_shapes``).
        t: which loss; defaults to T.
        size: "scalar" (D = H = O = 1, the lecture formulas) or (D, H, O).
        activation: a registered activation name or an Activation.
        loss: a registered loss name or a Loss.
        k2: truncation: keep C[t][k] with k > t - k2 only.
        targets: class indices (T,) for an integer-target loss (default class 0 at every step).
        h0: "zero" (h_0 = 0) or "symbol" (h_0 kept as a symbol).

    Returns:
        a :class:`Derivation` (``.explicit``, ``.implicit``, ``.total``, ``.terms``, ``.recursive``,
        LaTeX in Jupyter, ``.verify()``).

    Raises:
        ValueError / TypeError: an unknown name, a bad size, t outside 1..T, or a size beyond what a
            derivation serves (the message gives the largest that is).

    Example:
        >>> import bpttlab as bl
        >>> d = bl.derive("elman", T=3, wrt="W", t=3)
        >>> d.explicit
        V*h_2*(o_3 - y_3)*f'(a_3)
    """
    c = _cell(cell)
    T = V.positive_int(T, "T")
    t = T if t is None else V.positive_int(t, "t")
    if t > T:
        raise ValueError(f"t must be in 1..T={T}, got {t}")
    sizes = parse_size(size)
    shapes = c.param_shapes(sizes.D, sizes.H, sizes.O)
    if not isinstance(wrt, str) or wrt not in shapes:
        raise ValueError(f"wrt must be one of the {c.name} parameters {', '.join(shapes)}, got {wrt!r}")
    act = _activation(activation)
    c.check_activation(act)
    loss_obj = V.loss_plugin(loss)
    k2 = V.positive_int(k2, "k2", allow_none=True)
    if h0 not in H0_MODES:
        raise ValueError(f"h0 must be 'zero' or 'symbol', got {h0!r}")
    classes = _targets(loss_obj, targets, T, sizes.O)
    limits.check(c, sizes, t, "derive")
    return Derivation(c, T, t, wrt, sizes, act, loss_obj, k2, classes, h0, graph(c, sizes, act))
