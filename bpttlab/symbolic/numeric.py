r"""Numbers for a symbolic graph: its own forward pass, and the derived terms evaluated at them.

Nothing here uses the engine. The forward pass runs the *symbolic* step of the cell (lambdified once
per graph) copy by copy, so the values of :math:`a_k, s_k, o_k` come from the cell's equations, and
:math:`\partial E_t/\partial o_t` from the loss plugin's symbolic formula. A batch is evaluated at
once: every symbol's value is an array over the batch.

Term evaluation lambdifies a list of expressions once, with common subexpressions shared (``cse``),
and f, f' bound to the activation's symbolic formulas (:func:`~bpttlab.symbolic.functions.numeric_functions`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import sympy as sp

from ..losses import Loss
from .functions import numeric_functions
from .graph import Graph


def _lambdify(args, exprs, namespace, cse=False) -> Callable:
    fn = sp.lambdify(list(args), list(exprs), modules=[namespace, "numpy"], cse=cse, use_imps=False)

    def run(*values):
        B = np.shape(values[0])[0] if values and np.ndim(values[0]) else 1
        return [np.broadcast_to(np.asarray(v, dtype=np.float64), (B,)) for v in fn(*values)]
    return run


def _implementations(tp) -> dict:
    """Function name -> NumPy implementation (``_imp_``) of each function class the cell's formulas use
    (e.g. a gate's sigmoid), found once in the small one-step template, so that ``lambdify`` does not
    search every large term for them (``use_imps=False``)."""
    mats = [*tp.explicit.values(), *tp.out_explicit.values(), tp.jacobian, tp.out_state]
    exprs = [*tp.alpha_defs, *tp.state, *tp.output, *(e for m in mats for e in m)]
    out = {}
    for e in exprs:
        for fn in sp.sympify(e).atoms(sp.Function):
            imp = getattr(type(fn), "_imp_", None)
            if imp is not None:
                out[type(fn).__name__] = imp
    return out


class Evaluator:
    """Lambdified pieces of one graph (built once, cached on the graph by :func:`evaluator`)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        tp = graph.template
        self.namespace = numeric_functions(graph.activation) | _implementations(tp)
        theta = [s for syms in tp.entries.values() for s in syms]
        self._theta = theta
        local = [*theta, *tp.s_prev, *tp.x]
        self._alpha_fns = [_lambdify(local + list(tp.alphas[:j]), [d], self.namespace)
                           for j, d in enumerate(tp.alpha_defs)]
        self._state_fn = _lambdify(local + list(tp.alphas), tp.state, self.namespace)
        out_args = [*theta, *tp.s_new] if tp.readout else local + list(tp.alphas)
        self._output_fn = _lambdify(out_args, tp.output, self.namespace)
        self._loss_fns: dict = {}

    def forward(self, params: dict[str, np.ndarray], xs: np.ndarray, s0: np.ndarray) -> dict:
        """Values (arrays over the batch) of every symbol of steps 1..T.

        Args:
            params: parameter arrays (shapes of the cell at the graph's sizes).
            xs: (T, B, D) inputs; s0: (B, S) initial state.
        """
        g, tp = self.graph, self.graph.template
        T, B, _ = xs.shape
        vals: dict = {}
        theta_vals = []
        for name, syms in tp.entries.items():
            flat = np.asarray(params[name], dtype=np.float64).ravel()
            for sym, v in zip(syms, flat):
                vals[sym] = np.full(B, v)
                theta_vals.append(vals[sym])
        s_prev = [s0[:, i] for i in range(s0.shape[1])]
        vals.update(zip(g.states(0), s_prev))
        for k in range(1, T + 1):
            x = [xs[k - 1, :, i] for i in range(xs.shape[2])]
            local = theta_vals + s_prev + x
            alphas: list[np.ndarray] = []
            for fn in self._alpha_fns:
                alphas.append(fn(*local, *alphas)[0])
            s_new = self._state_fn(*local, *alphas)
            out = self._output_fn(*theta_vals, *s_new) if tp.readout else self._output_fn(*local, *alphas)
            step = g.step(k)
            vals.update(zip(step.alphas, alphas))
            vals.update(zip(g.states(k), s_new))
            vals.update(zip(g.outputs(k), out))
            s_prev = s_new
        return vals

    def loss_gradients(self, loss: Loss, vals: dict, targets: np.ndarray) -> None:
        r"""Add :math:`\partial E_t/\partial o_t` (the symbols g_t) to ``vals``.

        Args:
            targets: (T, B, O) for a loss with real targets, (T, B) classes for an integer-target loss.
        """
        g = self.graph
        O = g.sizes.O
        o1 = g.outputs(1)
        for t in range(1, targets.shape[0] + 1):
            o = [vals[s] for s in g.outputs(t)]
            if loss.integer_targets:
                cls = targets[t - 1]
                grad = np.zeros((O, cls.shape[0]))
                for c in np.unique(cls):
                    fn = self._loss_fn(loss, int(c), o1)
                    sel = cls == c
                    grad[:, sel] = np.array(fn(*o))[:, sel]
            else:
                fn = self._loss_fn(loss, None, o1)
                grad = np.array(fn(*o, *(targets[t - 1, :, i] for i in range(O))))
            vals.update(zip(g.names.loss_gradient(t), grad))

    def _loss_fn(self, loss: Loss, target, o1):
        key = (loss, target)
        if key not in self._loss_fns:
            args = o1 if loss.integer_targets else o1 + self.graph.names.targets(1)
            self._loss_fns[key] = _lambdify(args, self.graph.loss_gradient(loss, 1, target), self.namespace)
        return self._loss_fns[key]

    def compile(self, exprs: Sequence[sp.Expr]) -> "Compiled":
        """One function for all of ``exprs`` (shared subexpressions computed once)."""
        symbols = sorted(set().union(*(e.free_symbols for e in exprs)), key=sp.default_sort_key)
        return Compiled(symbols, _lambdify(symbols, exprs, self.namespace, cse=True) if exprs else None)


class Compiled:
    """Lambdified expressions: call with the values dict, get an array (n_exprs, B)."""

    def __init__(self, symbols, fn):
        self.symbols, self.fn = symbols, fn

    def __call__(self, vals: dict, B: int) -> np.ndarray:
        if self.fn is None:
            return np.zeros((0, B))
        if not self.symbols:
            return np.array([np.broadcast_to(v, (B,)) for v in self.fn()])
        return np.array(self.fn(*(vals[s] for s in self.symbols)))


def evaluator(graph: Graph) -> Evaluator:
    """The graph's :class:`Evaluator`, built on first use."""
    if "evaluator" not in graph.cache:
        graph.cache["evaluator"] = Evaluator(graph)
    return graph.cache["evaluator"]
