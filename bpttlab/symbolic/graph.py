r"""The unrolled network in SymPy: one symbol per intermediate quantity, terms built by the chain rule.

Copy k of the cell is the :class:`~bpttlab.symbolic.template.Template` renamed to the symbols of step k
(:math:`x_k, s_{k-1}, a_k, s_k`), so no expression carries the whole history: :math:`h_{k-1}` stays a
symbol and its definition is kept aside (:meth:`Graph.definitions`). With :math:`g_t = \partial E_t /
\partial o_t` (a row, symbols until the loss is put in) the contribution of copy k of
:math:`\theta` to :math:`E_t` is

.. math::

    C[t][k] = \rho_{t,k}\,\frac{\partial^+ s_k}{\partial \theta} \;(k < t), \qquad
    C[t][t] = g_t \frac{\partial^+ o_t}{\partial \theta} + \rho_{t,t}\frac{\partial^+ s_t}{\partial\theta},

    \rho_{t,t} = g_t \frac{\partial o_t}{\partial s_t}, \qquad \rho_{t,k-1} = \rho_{t,k} J_k
    \;\Bigl(= \frac{\partial E_t}{\partial s_{k-1}}\Bigr),

which is :math:`\partial E_t/\partial \theta_k` for a separate symbol :math:`\theta_k` per copy, all set
equal afterwards. Rows :math:`\rho` and terms are cached, so E_t for several parameters, or a longer T,
reuses what is built. Graphs are cached per (cell, sizes, activation).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import sympy as sp

from ..activations import Activation
from ..cells.base import Cell
from ..losses import Loss
from .names import Names, Sizes
from .template import Template, build_template

#: How many graphs the cache keeps.
CACHE_SIZE = 16


@dataclass(frozen=True)
class Step:
    """Copy k of the cell over the symbols of step k (see :class:`Template` for the fields)."""

    k: int
    alphas: tuple[sp.Symbol, ...]
    alpha_defs: tuple[sp.Expr, ...]
    state: tuple[sp.Expr, ...]
    output: tuple[sp.Expr, ...]
    jacobian: sp.Matrix
    explicit: dict[str, sp.Matrix]
    out_state: sp.Matrix
    out_explicit: dict[str, sp.Matrix]


class Graph:
    """The unrolled network of one cell at one size, grown one step at a time as terms need it.

    Attributes:
        cell, sizes, activation: what it unrolls.
        names: the symbols and their LaTeX names.
        template: the copy over placeholders.
        cache: what is built on the graph and lives as long as it (evaluators, compiled terms).
    """

    def __init__(self, cell: Cell, sizes: Sizes, activation: Activation):
        self.cell, self.sizes, self.activation = cell, sizes, activation
        S = cell.state_size(sizes.H, sizes.O)
        self.names = Names(cell.state_symbol or "s", S, sizes.D, sizes.O, sizes.scalar)
        self.template: Template = build_template(cell, sizes, activation, self.names.parameter)
        if self.names.state == "o" and not self.template.output_is_state:
            self.names.state = "s"
        self._steps: list[Step] = []
        self._rho: dict[tuple[int, int], sp.Matrix] = {}
        self._terms: dict[tuple[int, int, str], sp.Matrix] = {}
        self._loss_grads: dict = {}
        self.cache: dict = {}

    # -- symbols -------------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, sp.Matrix]:
        return self.template.params

    @property
    def entries(self) -> dict[str, list[sp.Symbol]]:
        return self.template.entries

    def states(self, k: int) -> list[sp.Symbol]:
        return self.names.states(k)

    def outputs(self, t: int) -> list[sp.Symbol]:
        return self.names.states(t) if self.template.output_is_state else self.names.outputs(t)

    # -- steps ---------------------------------------------------------------------------------------
    def step(self, k: int) -> Step:
        """Copy k (1-based), building copies up to k on first use."""
        while len(self._steps) < k:
            self._steps.append(self._instantiate(len(self._steps) + 1))
        return self._steps[k - 1]

    def _instantiate(self, k: int) -> Step:
        tp = self.template
        alphas = self.names.preactivations(k, len(tp.alphas)) if tp.alphas else []
        rename = dict(zip(tp.s_prev, self.states(k - 1)))
        rename |= dict(zip(tp.x, self.names.inputs(k)))
        rename |= dict(zip(tp.alphas, alphas))
        rename |= dict(zip(tp.s_new, self.states(k)))
        return Step(
            k, tuple(alphas), tuple(d.xreplace(rename) for d in tp.alpha_defs),
            tuple(e.xreplace(rename) for e in tp.state), tuple(e.xreplace(rename) for e in tp.output),
            tp.jacobian.xreplace(rename), {n: m.xreplace(rename) for n, m in tp.explicit.items()},
            tp.out_state.xreplace(rename), {n: m.xreplace(rename) for n, m in tp.out_explicit.items()})

    def step_definitions(self, k: int) -> list[tuple[sp.Symbol, sp.Expr]]:
        """(symbol, definition) of step k in evaluation order: a_k, then s_k, then o_k."""
        st = self.step(k)
        out = list(zip(st.alphas, st.alpha_defs)) + list(zip(self.states(k), st.state))
        if not self.template.output_is_state:
            out += list(zip(self.outputs(k), st.output))
        return out

    def definitions(self, t: int, start: int = 0) -> list[tuple[sp.Symbol, sp.Expr]]:
        """(symbol, definition) for steps start+1..t in evaluation order."""
        return [d for k in range(start + 1, t + 1) for d in self.step_definitions(k)]

    def unroll(self, t: int, values: dict, start: int = 0, rename=None, transform=None) -> dict:
        """``values`` (leaf symbol -> value; s_start included if it is not to stay a symbol) extended by
        every quantity of steps start+1..t, each substituted through: with symbolic leaves, the fully
        unrolled network.

        Args:
            rename: k -> dict applied to step k's definitions first (a separate symbol per copy).
            transform: applied to each definition before substitution (e.g. the concrete activation).
        """
        vals = dict(values)
        for k in range(start + 1, t + 1):
            ren = rename(k) if rename is not None else None
            for sym, expr in self.step_definitions(k):
                if ren:
                    expr = expr.xreplace(ren)
                if transform is not None:
                    expr = transform(expr)
                vals[sym] = expr.xreplace(vals)
        return vals

    # -- the chain rule ------------------------------------------------------------------------------
    def rho(self, t: int, k: int) -> sp.Matrix:
        r""":math:`\partial E_t / \partial s_k` as a row over the symbols g_t (k <= t; k < t without a readout)."""
        key = (t, k)
        if key not in self._rho:
            readout = self.template.readout
            if k == t - (0 if readout else 1):
                g = sp.Matrix([self.names.loss_gradient(t)])
                self._rho[key] = g * self.step(t).out_state
            else:
                self._rho[key] = self.rho(t, k + 1) * self.step(k + 1).jacobian
        return self._rho[key]

    def term(self, t: int, k: int, name: str) -> sp.Matrix:
        """C[t][k] for the parameter ``name`` as a row (1, n) in row-major entry order, over g_t."""
        key = (t, k, name)
        if key not in self._terms:
            st = self.step(k)
            if k < t:
                value = self.rho(t, k) * st.explicit[name]
            else:
                value = sp.Matrix([self.names.loss_gradient(t)]) * st.out_explicit[name]
                if self.template.readout:
                    value += self.rho(t, t) * st.explicit[name]
            self._terms[key] = value
        return self._terms[key]

    def loss_gradient(self, loss: Loss, t: int, target=None) -> sp.Matrix:
        r""":math:`\partial E_t / \partial o_t` (O, 1) over o_t and y_t (or the class ``target``)."""
        key = (loss, t, target)
        if key not in self._loss_grads:
            o = self.outputs(t)
            y = target if loss.integer_targets else self.names.targets(t)
            E = loss.symbolic(o, y)
            self._loss_grads[key] = sp.Matrix([sp.diff(E, oi) for oi in o])
        return self._loss_grads[key]


_CACHE: OrderedDict = OrderedDict()


def graph(cell: Cell, sizes: Sizes, activation: Activation) -> Graph:
    """The cached :class:`Graph` of (cell, sizes, activation)."""
    key = (cell, sizes, activation)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    g = _CACHE[key] = Graph(cell, sizes, activation)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return g


def clear_cache() -> None:
    """Forget every cached graph (and the derivations and evaluators built on them)."""
    _CACHE.clear()
