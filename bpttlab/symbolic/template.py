r"""One copy of a cell in SymPy, with its local derivatives taken once.

The cell plugin's :meth:`~bpttlab.cells.base.Cell.symbolic_step` is called on placeholder symbols
(:math:`s_{prev}`, :math:`x`, the parameter entries). Every argument the cell passes through the
activation gets a pre-activation symbol :math:`a` and the activation becomes the abstract :math:`f(a)`
(a cell with fixed nonlinearities, such as a GRU, keeps its own tanh and sigmoid). On the template:

.. math::

    J = \frac{\partial s}{\partial s_{prev}}, \qquad
    \frac{\partial^+ s}{\partial \theta}, \qquad
    R = \frac{\partial o}{\partial s}, \qquad
    \frac{\partial^+ o}{\partial \theta},

where :math:`\partial^+` holds the other inputs of the copy fixed and every derivative goes through the
pre-activations by the chain rule, :math:`\frac{d}{dv} = \frac{\partial}{\partial v} + \sum_j
\frac{\partial}{\partial a_j}\frac{d a_j}{d v}`.

When the output is a *readout* of the new state, :math:`o = R(s, \theta)` (every built-in cell), the
derivatives of o are taken with respect to s; otherwise o is a function of :math:`(s_{prev}, x)` and
:math:`R` is :math:`\partial o/\partial s_{prev}`.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..activations import Activation
from ..cells.base import Cell
from .functions import f
from .names import Sizes


@dataclass(frozen=True)
class Template:
    """One copy over placeholders; derivatives are Matrices over the same placeholders.

    Attributes:
        params: parameter name -> Matrix of its symbols (a column for a vector parameter).
        entries: parameter name -> its symbols in row-major order (the order of ``array.ravel()``).
        s_prev, x, s_new: placeholders for s_{k-1}, x_k and s_k.
        alphas, alpha_defs: pre-activation placeholders and their definitions, in order (a later one may
            use an earlier one through f).
        state, output: s_k and o_k; ``output`` is over ``s_new`` when ``readout`` is true.
        jacobian: (S, S) ds_k/ds_{k-1}.
        explicit: name -> (S, n) d+s_k/dtheta, one column per entry.
        out_state: (O, S) do_k/ds_k (readout) or do_k/ds_{k-1}.
        out_explicit: name -> (O, n) d+o_k/dtheta.
        chain: (L, R) names when the Jacobian factors as L diag(f'(a)) R with named matrices (None for I),
            e.g. (None, "W") for Elman and ("V", "W") for Jordan; None when it does not.
    """

    params: dict[str, sp.Matrix]
    entries: dict[str, list[sp.Symbol]]
    s_prev: tuple[sp.Symbol, ...]
    x: tuple[sp.Symbol, ...]
    s_new: tuple[sp.Symbol, ...]
    alphas: tuple[sp.Symbol, ...]
    alpha_defs: tuple[sp.Expr, ...]
    state: tuple[sp.Expr, ...]
    output: tuple[sp.Expr, ...]
    readout: bool
    jacobian: sp.Matrix
    explicit: dict[str, sp.Matrix]
    out_state: sp.Matrix
    out_explicit: dict[str, sp.Matrix]
    chain: tuple[str | None, str] | None

    @property
    def output_is_state(self) -> bool:
        """o_k = s_k (Jordan): outputs and states are the same symbols."""
        return self.readout and tuple(self.output) == tuple(self.s_new)


def _call_step(cell: Cell, params, s_prev, x, activation: Activation):
    """Call the plugin's symbolic step with an activation that records its arguments."""
    recorded: list[sp.Expr] = []

    def activation_hook(arg):
        arg = sp.sympify(arg)
        recorded.append(arg)
        return activation.symbolic(arg)

    try:
        s, o = cell.symbolic_step(params, sp.Matrix(s_prev), sp.Matrix(x), activation_hook)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, sp.SympifyError) as exc:
        raise ValueError(f"cell {cell.name!r}: symbolic_step failed: {type(exc).__name__}: {exc}") from exc
    return s, o, recorded


def _check_shapes(cell: Cell, s, o, S: int, O: int) -> None:
    for what, m, n in (("s", s, S), ("o", o, O)):
        if not isinstance(m, sp.MatrixBase) or m.shape != (n, 1):
            got = m.shape if isinstance(m, sp.MatrixBase) else type(m).__name__
            raise TypeError(f"cell {cell.name!r}: symbolic_step must return (s, o) as SymPy column Matrices "
                            f"of shapes ({S}, 1) and ({O}, 1); {what} is {got}")


def _preactivations(recorded, activation: Activation, allowed: set):
    """Distinct recorded arguments (probes such as f(z) made by the cell itself are dropped), their
    placeholders, and the substitution activation(arg) -> f(a)."""
    args: list[sp.Expr] = []
    for arg in recorded:
        if arg.free_symbols <= allowed and arg not in args:
            args.append(arg)
    alphas = [sp.Dummy(f"a{j}", real=True) for j in range(len(args))]
    images = [activation.symbolic(arg) for arg in args]
    defs = [arg.xreplace({img: f(al) for img, al in zip(images[:j], alphas[:j])}) for j, arg in enumerate(args)]
    return alphas, defs, {img: f(al) for img, al in zip(images, alphas)}


def total_jacobian(exprs, wrt, alphas, defs) -> sp.Matrix:
    r""":math:`d\,\text{expr}_i / d v_j` through the pre-activations (each ``defs[j]`` may use f(a_i), i < j)."""
    wrt = list(wrt)
    d_alpha: list[sp.Matrix] = []
    for j, d in enumerate(defs):
        row = sp.Matrix([[sp.diff(d, v) for v in wrt]])
        for i in range(j):
            c = sp.diff(d, alphas[i])
            if c != 0:
                row += c * d_alpha[i]
        d_alpha.append(row)
    rows = []
    for e in exprs:
        row = sp.Matrix([[sp.diff(e, v) for v in wrt]])
        for j, al in enumerate(alphas):
            c = sp.diff(e, al)
            if c != 0:
                row += c * d_alpha[j]
        rows.append(row)
    return sp.Matrix.vstack(*rows) if rows else sp.zeros(0, len(wrt))


def _readout(output, state_to_new, unwanted: set):
    """o as a function of the new state alone, or None."""
    for attempt in (lambda: output.xreplace(state_to_new),
                    lambda: output.subs(state_to_new, simultaneous=True)):
        o = attempt()
        if not (o.free_symbols & unwanted):
            return o
    return None


def _name_matrix(M: sp.Matrix, params: dict[str, sp.Matrix]) -> tuple[bool, str | None]:
    """(True, name) when M is a parameter matrix, (True, None) for the identity."""
    if M.is_square and M == sp.eye(M.rows):
        return True, None
    for name, P in params.items():
        if P.shape == M.shape and P == M:
            return True, name
    return False, None


def _chain_factors(state, s_prev, alphas, defs, params) -> tuple[str | None, str] | None:
    """Names (L, R) with ds/ds_prev = L diag(f'(a)) R, when the cell has that shape."""
    if not alphas or any(d.has(f) for d in defs):
        return None
    if any(e != 0 for e in state.jacobian(list(s_prev))):
        return None
    phis = [sp.Dummy() for _ in alphas]
    L = state.xreplace({f(a): p for a, p in zip(alphas, phis)}).jacobian(phis)
    R = sp.Matrix(defs).jacobian(list(s_prev))
    ok_l, name_l = _name_matrix(L, params)
    ok_r, name_r = _name_matrix(R, params)
    if ok_l and ok_r and name_r is not None:
        return name_l, name_r
    return None


def build_template(cell: Cell, sizes: Sizes, activation: Activation, param_symbols) -> Template:
    """Build the template of ``cell`` at ``sizes``; ``param_symbols(name, shape)`` makes parameter Matrices.

    Raises:
        ValueError / TypeError: the plugin's symbolic step fails or returns the wrong shapes.
    """
    D, H, O = sizes.D, sizes.H, sizes.O
    S = cell.state_size(H, O)
    shapes = cell.param_shapes(D, H, O)
    params = {name: param_symbols(name, shape) for name, shape in shapes.items()}
    entries = {name: list(P) for name, P in params.items()}
    s_prev = tuple(sp.Dummy(f"s{i}", real=True) for i in range(S))
    x = tuple(sp.Dummy(f"x{i}", real=True) for i in range(D))
    s, o, recorded = _call_step(cell, params, s_prev, x, activation)
    _check_shapes(cell, s, o, S, O)
    theta = {sym for syms in entries.values() for sym in syms}
    alphas, defs, to_f = _preactivations(recorded, activation, theta | set(s_prev) | set(x))
    state = s.xreplace(to_f)
    output = o.xreplace(to_f)
    used = {a for e in list(state) + list(output) + defs for a in e.free_symbols}
    keep = [j for j, a in enumerate(alphas) if a in used]
    alphas, defs = [alphas[j] for j in keep], [defs[j] for j in keep]

    s_new = tuple(sp.Dummy(f"n{i}", real=True) for i in range(S))
    state_to_new = {}
    for e, n in zip(state, s_new):
        if not e.is_Atom and e not in state_to_new:
            state_to_new[e] = n
    unwanted = set(s_prev) | set(x) | set(alphas)
    readout_expr = _readout(output, state_to_new, unwanted)
    readout = readout_expr is not None

    def local(m: sp.Matrix) -> sp.Matrix:
        return m.xreplace(state_to_new)

    jacobian = local(total_jacobian(state, s_prev, alphas, defs))
    explicit = {name: local(total_jacobian(state, syms, alphas, defs)) for name, syms in entries.items()}
    if readout:
        out_state = readout_expr.jacobian(list(s_new))
        out_explicit = {name: readout_expr.jacobian(syms) for name, syms in entries.items()}
        output = readout_expr
    else:
        out_state = local(total_jacobian(output, s_prev, alphas, defs))
        out_explicit = {name: local(total_jacobian(output, syms, alphas, defs)) for name, syms in entries.items()}
    return Template(params, entries, s_prev, x, s_new, tuple(alphas), tuple(defs), tuple(state),
                    tuple(output), readout, jacobian, explicit, out_state, out_explicit,
                    _chain_factors(state, s_prev, alphas, defs, params))
