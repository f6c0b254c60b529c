r"""Proof of the split: explicit + implicit is the derivative of the fully unrolled loss.

For a derivation of :math:`\partial E_t/\partial\theta` the reference is SymPy's own derivative of
:math:`E_t` with :math:`h_1 .. h_t` substituted through (a function of the inputs, targets and parameters
alone); with truncation, of :math:`E_t` unrolled from :math:`h_{t-k_2}`, which stays a constant. Two
identities are checked, for every entry of the parameter:

.. math::

    \underbrace{C[t][t] + \sum_{k<t} C[t][k]}_{\text{derived}}
        - \frac{\partial E_t^{\text{unrolled}}}{\partial \theta} = 0, \qquad
    C[t][k] - \frac{\partial E_t^{\text{unrolled}}}{\partial \theta_k}\Big|_{\theta_k = \theta} = 0,

the second with a separate symbol :math:`\theta_k` for the copy of step k.

* **Expansion** (scalar mode, t <= 6): the differences are expanded to 0 as expressions, with the
  activation abstract (f, f'), so the identity holds for every differentiable f.
* **Rational points** (vector mode, or longer sequences): every leaf gets a random rational value and
  the difference, still exact (f of a rational stays a symbol), is expanded to 0.

In both, the activation's own formulas are then put in (:func:`~bpttlab.symbolic.functions.concrete`)
and the total is compared at the random points with 50 significant digits, against SymPy's derivative of
the concretely unrolled loss (e.g. its own rule for tanh), which checks the activation's derivative too.
No blanket ``simplify`` is used: only ``expand`` (and ``cancel`` where a cell has its own exponentials).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import numpy as np
import sympy as sp

from .functions import concrete

#: Scalar derivations up to this t are verified by expansion, symbolically.
EXACT_MAX_T = 6
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


def _is_zero(expr) -> bool:
    r = sp.expand(expr)
    if r == 0:
        return True
    return sp.cancel(sp.together(r)) == 0


def _entry_names(d) -> list[str]:
    syms = d.graph.entries[d.wrt]
    return [str(s) for s in syms]


def _flat(value) -> list:
    return [value] if not isinstance(value, sp.MatrixBase) else list(value)


def _loss(d, vals):
    g = d.graph
    o = [vals[s] for s in g.outputs(d.t)]
    target = d.targets[d.t - 1] if d.targets is not None else [vals.get(y, y) for y in g.names.targets(d.t)]
    return d.loss.symbolic(o, target)


def _start_values(d, full: dict | None) -> dict:
    """Leaves for the unrolling from the first kept copy: s_start as a symbol (truncation), 0 (h0 zero),
    or its value in ``full``."""
    g = d.graph
    start = d.first_kept - 1
    states = g.states(start)
    if full is not None:
        return {s: full[s] for s in states}
    if start == 0 and d.h0 == "zero":
        return {s: sp.Integer(0) for s in states}
    return {}


def _copies(d, syms):
    """k -> {theta: theta^(k)} for the symbols ``syms`` of the parameter."""
    made = {}

    def rename(k):
        if k not in made:
            made[k] = {s: sp.Symbol(f"{s}^({k})") for s in syms}
        return made[k]
    return rename


def _symbolic(d) -> list[Verdict]:
    g = d.graph
    start = d.first_kept - 1
    vals = g.unroll(d.t, _start_values(d, None), start)
    E = _loss(d, vals)
    rows = []
    syms, names = g.entries[d.wrt], _entry_names(d)
    for sym, name, ours in zip(syms, names, _flat(d.total)):
        res = sp.expand(ours.xreplace(vals) - sp.diff(E, sym))
        rows.append(Verdict("explicit + implicit", name, None, _is_zero(res), res))
    rename = _copies(d, syms)
    vals_c = g.unroll(d.t, _start_values(d, None), start, rename=rename)
    E_c = _loss(d, vals_c)
    back = {c: s for k in range(start + 1, d.t + 1) for s, c in rename(k).items()}
    for k, term in sorted(d.terms.items(), reverse=True):
        for sym, name, ours in zip(syms, names, _flat(term)):
            ref = sp.diff(E_c, rename(k)[sym]).xreplace(back)
            res = sp.expand(ours.xreplace(vals) - ref)
            rows.append(Verdict(f"C[{d.t}][{k}]", name, None, _is_zero(res), res))
    return rows


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


def _at_points(d, points: int, rng, exact: bool) -> list[Verdict]:
    g = d.graph
    start = d.first_kept - 1
    syms, names = g.entries[d.wrt], _entry_names(d)
    rows = []
    for p in range(1, points + 1):
        leaves = _point(d, rng)
        full = g.unroll(d.t, leaves)
        start_vals = _start_values(d, full)
        ours_total = [e.xreplace(full) for e in _flat(d.total)]
        ours_terms = {k: [e.xreplace(full) for e in _flat(v)] for k, v in d.terms.items()}
        for i, (sym, name) in enumerate(zip(syms, names)):
            free = {s: v for s, v in leaves.items() if s != sym and s not in start_vals} | start_vals
            if exact:
                E = _loss(d, g.unroll(d.t, free, start))
                ref = sp.diff(E, sym).xreplace({sym: leaves[sym]})
                res = sp.expand(ours_total[i] - ref)
                rows.append(Verdict("explicit + implicit", name, p, _is_zero(res), res))
                for k in sorted(ours_terms, reverse=True):
                    copy = sp.Symbol(f"{sym}^({k})")
                    with_copy = free | {sym: leaves[sym]}
                    E_k = _loss(d, g.unroll(d.t, with_copy, start, rename=lambda j, k=k, c=copy: {sym: c} if j == k else None))
                    ref_k = sp.diff(E_k, copy).xreplace({copy: leaves[sym]})
                    res = sp.expand(ours_terms[k][i] - ref_k)
                    rows.append(Verdict(f"C[{d.t}][{k}]", name, p, _is_zero(res), res))
            rows.append(_concrete(d, free, sym, leaves[sym], ours_total[i], name, p, start))
    return rows


def _concrete(d, free, sym, value, ours, name, p, start) -> Verdict:
    """The total with the activation's formulas put in, against SymPy's derivative of the concretely
    unrolled loss, to DIGITS significant digits."""
    g = d.graph
    E = _loss(d, g.unroll(d.t, free, start, transform=lambda e: concrete(e, d.activation)))
    ref = sp.diff(E, sym).xreplace({sym: value})
    a = sp.N(concrete(ours, d.activation), DIGITS)
    b = sp.N(ref, DIGITS)
    diff = abs(a - b)
    ok = bool(diff <= CONCRETE_TOL * max(1, abs(b)))
    return Verdict(f"f = {d.activation.name}", name, p, ok, sp.Float(diff, 3))


def verify(d, points: int = 3, seed: int = 0) -> Verification:
    """Verify a :class:`~bpttlab.symbolic.derivation.Derivation` (see the module docstring).

    Args:
        d: the derivation.
        points: how many random rational points.
        seed: their seed.

    Returns:
        a :class:`Verification` (``.passed``, a table in Jupyter).
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points must be a positive int, got {points!r}")
    rng = np.random.default_rng(seed)
    title = f"dE_{d.t}/d{d.wrt} ({d.cell.name}, {d.sizes}{f', k2={d.k2}' if d.k2 else ''})"
    if d.sizes.scalar and d.t <= EXACT_MAX_T:
        v = Verification(title, "expansion to zero, any f; then f = "
                                f"{d.activation.name} at {points} rational point(s), {DIGITS} digits")
        v.rows += _symbolic(d)
        v.rows += _at_points(d, points, rng, exact=False)
    else:
        v = Verification(title, f"exact expansion at {points} random rational point(s); then f = "
                                f"{d.activation.name} there, {DIGITS} digits")
        v.rows += _at_points(d, points, rng, exact=True)
    return v
