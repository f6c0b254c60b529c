r"""Proof of the split: explicit + implicit is the derivative of the fully unrolled loss.

For a derivation of :math:`\partial E_t/\partial\theta` the reference is SymPy's own derivative of
:math:`E_t` with :math:`h_1 .. h_t` substituted through (a function of the inputs, targets and parameters
alone; :func:`~bpttlab.symbolic.atoms.derivative` applies SymPy's rule at each node, each shared node
once); with truncation, of :math:`E_t` unrolled from :math:`h_{t-k_2}`, which stays a constant. Two
identities are checked, for every entry of the parameter:

.. math::

    \underbrace{C[t][t] + \sum_{k<t} C[t][k]}_{\text{derived}}
        - \frac{\partial E_t^{\text{unrolled}}}{\partial \theta} = 0, \qquad
    C[t][k] - \frac{\partial E_t^{\text{unrolled}}}{\partial \theta_k}\Big|_{\theta_k = \theta} = 0,

the second with a separate symbol :math:`\theta_k` for the copy of step k. Both sides are first written
over *atoms* (:mod:`.atoms`: every function application becomes a symbol, its argument in canonical
form), so nothing is expanded inside a function; then:

* **Symbolically** (scalar mode, t <= 6): every leaf is a symbol and the activation stays abstract
  (f, f'), so the identity holds for every differentiable f. Elman and Jordan: the difference is expanded
  to 0 in the polynomial ring. Gated cells beyond t = 2 (whose expansion grows too fast): the difference
  is evaluated exactly, in rational arithmetic, at random rational values of all its symbols
  (Schwartz-Zippel).
* **At rational points** (vector mode, or longer sequences): every leaf but the parameter gets a random
  rational value, and the difference (still exact: f of a rational stays an atom) is evaluated exactly at
  random values of the remaining symbols.

In both, the activation's own formulas are then put in (:func:`~bpttlab.symbolic.functions.concrete`)
and the total is compared at the random points with 50 significant digits against SymPy's derivative of
the concretely unrolled loss (e.g. its own rule for tanh), which checks the activation's derivative too.
No blanket ``simplify`` is used anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import numpy as np
import sympy as sp

from .atoms import Atoms, derivative, difference, vanishes_at_random_points
from .functions import concrete

#: Scalar derivations up to this t are verified symbolically (all leaves symbols).
EXACT_MAX_T = 6
#: Up to this t (per cell) identities are proved by expansion; beyond, by exact random evaluation
#: (a gated cell's expansion grows too fast: its state is a sum of gated paths).
EXPAND_MAX_T = {"elman": 6, "jordan": 6}
EXPAND_MAX_T_DEFAULT = 2
#: Significant digits of the concrete comparison, and the relative difference it accepts.
DIGITS, CONCRETE_TOL = 50, 1e-40


@dataclass(frozen=True)
class Verdict:
    """One identity: ``what`` (e.g. "explicit + implicit", "C[3][2]") for one ``entry`` at ``point``
    (None: symbolically), with the ``residual`` left after expansion (0 when it holds)."""

    what: str
    entry: str
    point: int | None
    ok: bool
    residual: sp.Expr


@dataclass
class Verification:
    """The result of :meth:`Derivation.verify`: ``passed``, ``method`` and every :class:`Verdict`."""

    title: str
    method: str
    rows: list[Verdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[Verdict]:
        return [r for r in self.rows if not r.ok]

    def __repr__(self) -> str:
        lines = [f"Verification of {self.title}: {'PASSED' if self.passed else 'FAILED'}", f"  method: {self.method}"]
        for r in self.rows:
            where = "symbolically" if r.point is None else f"at point {r.point}"
            lines.append(f"  {'ok  ' if r.ok else 'FAIL'} {r.what:<22} {r.entry:<12} {where:<14} "
                         f"residual {sp.sstr(r.residual)[:60]}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{escape(r.what)}</td><td>{escape(r.entry)}</td>"
            f"<td>{'symbolic' if r.point is None else r.point}</td>"
            f"<td>{escape(sp.sstr(r.residual)[:60])}</td><td>{'ok' if r.ok else '<b>FAIL</b>'}</td></tr>"
            for r in self.rows)
        return (f"<p><b>{escape(self.title)}</b>: {'passed' if self.passed else '<b>FAILED</b>'} "
                f"({escape(self.method)})</p><table><tr><th>identity</th><th>entry</th><th>point</th>"
                f"<th>residual</th><th></th></tr>{body}</table>")


def _entry_names(d) -> list[str]:
    return [str(s) for s in d.graph.entries[d.wrt]]


def _flat(value) -> list:
    return [value] if not isinstance(value, sp.MatrixBase) else list(value)


def _loss(d, vals):
    g = d.graph
    o = [vals[s] for s in g.outputs(d.t)]
    target = d.targets[d.t - 1] if d.targets is not None else [vals.get(y, y) for y in g.names.targets(d.t)]
    return d.loss.symbolic(o, target)


def _point(d, rng) -> dict:
    """Random nonzero rationals for every leaf (the initial state is 0 when h0 = "zero")."""
    g = d.graph

    def q():
        return sp.Rational(int(rng.integers(1, 10)) * int(rng.choice([-1, 1])), int(rng.integers(2, 12)))

    leaves = {s: q() for syms in g.entries.values() for s in syms}
    for k in range(1, d.t + 1):
        leaves |= {s: q() for s in g.names.inputs(k)}
        if not d.loss.integer_targets:
            leaves |= {s: q() for s in g.names.targets(k)}
    leaves |= {s: (sp.Integer(0) if d.h0 == "zero" else q()) for s in g.states(0)}
    return leaves


class _Unrolled:
    """E_t unrolled from the first kept copy, with the parameter's entries left as symbols and every
    other leaf at ``point`` (or symbolic when ``point`` is None); h_{t-k2} is a constant under truncation
    (a symbol, or its value at the point). With ``digits`` the point's values become Floats of that
    precision, so every quantity that does not depend on the parameter is a number at once."""

    def __init__(self, d, point: dict | None, transform=None, digits: int | None = None):
        g = d.graph
        if point is not None and digits is not None:    # numbers: each quantity evaluates at once
            point = {s: sp.Float(v, digits) for s, v in point.items()}
        self.syms = g.entries[d.wrt]
        start = d.first_kept - 1
        if point is None:
            base = {s: sp.Integer(0) for s in g.states(0)} if start == 0 and d.h0 == "zero" else {}
            self.theta = {}
        else:
            full = g.unroll(start, point, transform=transform) if start > 0 else point
            base = {s: v for s, v in point.items() if s not in self.syms}
            base |= {s: full[s] for s in g.states(start)}
            self.theta = {s: point[s] for s in self.syms}
        self.values = g.unroll(d.t, base, start, transform=transform)
        self.E = _loss(d, self.values)
        self.copies = {k: {s: sp.Symbol(f"{s}^({k})", real=True) for s in self.syms} for k in range(start + 1, d.t + 1)}
        values_c = g.unroll(d.t, base, start, rename=self.copies.get, transform=transform)
        self.E_copies = _loss(d, values_c)
        self.back = {c: self.theta.get(s, s) for ren in self.copies.values() for s, c in ren.items()}


def _identities(d, point: dict | None, label, expand: bool, rng) -> list[Verdict]:
    """explicit + implicit and every C[t][k] against SymPy's derivatives of the unrolled E_t, exactly,
    over atoms (see :mod:`.atoms`): by expansion, or by exact evaluation at random rationals."""
    u = _Unrolled(d, point)
    A = Atoms()
    names = _entry_names(d)

    def ours(expr):
        return A(expr.xreplace(u.values), rename=u.theta)

    def verdict(what, name, mine, ref):
        if expand:
            res = difference(mine, ref)
            return Verdict(what, name, label, res == 0, res)
        ok, worst = vanishes_at_random_points(mine - ref, rng)
        return Verdict(what, name, label, ok, worst)

    rows = []
    for sym, name, mine in zip(u.syms, names, _flat(d.total)):
        rows.append(verdict("explicit + implicit", name, ours(mine), A(derivative(u.E, sym), rename=u.theta)))
    for k, term in sorted(d.terms.items(), reverse=True):
        for sym, name, mine in zip(u.syms, names, _flat(term)):
            ref = A(derivative(u.E_copies, u.copies[k][sym]), rename=u.back)
            rows.append(verdict(f"C[{d.t}][{k}]", name, ours(mine), ref))
    return rows


def _concrete(d, point: dict, label) -> list[Verdict]:
    """The total with the activation's formulas put in, against SymPy's derivative of the concretely
    unrolled loss, to DIGITS significant digits."""
    u = _Unrolled(d, point, transform=lambda e: concrete(e, d.activation), digits=DIGITS + 10)
    A = Atoms()
    rows = []
    for sym, name, mine in zip(u.syms, _entry_names(d), _flat(d.total)):
        a = A.evaluate(concrete(mine, d.activation).xreplace(u.values), u.theta, DIGITS)
        b = A.evaluate(derivative(u.E, sym), u.theta, DIGITS)
        diff = abs(a - b)
        ok = bool(diff <= CONCRETE_TOL * max(1, abs(b)))
        rows.append(Verdict(f"f = {d.activation.name}", name, label, ok, sp.Float(diff, 3)))
    return rows


def verify(d, points: int = 3, seed: int = 0) -> Verification:
    """Verify a :class:`~bpttlab.symbolic.derivation.Derivation` (see the module docstring).

    Args:
        d: the derivation.
        points: how many random rational points.
        seed: their seed.

    Returns:
        a :class:`Verification` (``.passed``, a table in Jupyter).

    Raises:
        ValueError: ``points`` is not a positive int.
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points must be a positive int, got {points!r}")
    rng = np.random.default_rng(seed)
    title = f"dE_{d.t}/d{d.wrt} ({d.cell.name}, {d.sizes}{f', k2={d.k2}' if d.k2 else ''})"
    expand = d.sizes.scalar and d.t <= EXPAND_MAX_T.get(d.cell.name, EXPAND_MAX_T_DEFAULT)
    how = "expansion to zero" if expand else "exact evaluation at random rationals (over atoms)"
    symbolic = d.sizes.scalar and d.t <= EXACT_MAX_T
    concrete_how = f"then f = {d.activation.name} at {points} rational point(s), {DIGITS} digits"
    if symbolic:
        v = Verification(title, f"symbolic, any f: {how}; {concrete_how}")
        v.rows += _identities(d, None, None, expand, rng)
    else:
        v = Verification(title, f"at {points} random rational point(s): {how}; {concrete_how}")
    for p in range(1, points + 1):
        point = _point(d, rng)
        if not symbolic:
            v.rows += _identities(d, point, p, expand, rng)
        v.rows += _concrete(d, point, p)
    return v
