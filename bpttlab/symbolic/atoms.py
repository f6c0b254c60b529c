r"""Exact comparison of deeply nested expressions: every non-polynomial node becomes a symbol.

An unrolled loss such as :math:`E_3 = \tfrac12\bigl(V f(W f(W f(U x_1 + b) + U x_2 + b) + U x_3 + b) + c
- y_3\bigr)^2` nests t levels of functions, and expanding it (or its derivative) as a whole grows
exponentially with t. :class:`Atoms` walks an expression bottom-up, once per distinct node, and replaces
each function application (f, f', tanh, sigma, exp, Heaviside, ...) and each non-integer power by a
symbol :math:`q_j`, after putting its arguments in canonical (expanded) form:

.. math::

    f\bigl(W f(U x_1 + b) + U x_2 + b\bigr) \;\mapsto\; q_2, \qquad
    q_1 := f(U x_1 + b), \quad q_2 := f(W q_1 + U x_2 + b).

Two expressions that are equal as polynomials (or rational functions) in the leaves and the
:math:`q_j` are equal for every value of the functions, so ``expand(atoms(A) - atoms(B)) == 0`` proves
A = B without expanding inside any function. (The converse need not hold; a failure is then reported,
never a false pass.) :meth:`Atoms.evaluate` gives the value of an expression at a point to any number
of digits, visiting each shared node once.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import sympy as sp


def _polynomial_node(e) -> bool:
    return isinstance(e, (sp.Add, sp.Mul)) or (isinstance(e, sp.Pow) and e.exp.is_Integer)


class Atoms:
    """A table of atoms :math:`q_j` (see the module docstring), shared by every expression it walks.

    Attributes:
        defs: (q_j, node over earlier atoms) in creation order (arguments before the node using them).
    """

    def __init__(self):
        self.defs: list[tuple[sp.Symbol, sp.Expr]] = []
        self._table: dict = {}
        self._memos: dict = {}

    def __call__(self, expr, rename: dict | None = None) -> sp.Expr:
        """``expr`` with every non-polynomial node replaced by its atom symbol; ``rename`` (symbol ->
        symbol) is applied to the leaves on the way (e.g. a copy theta^(k) back to theta)."""
        rename = rename or {}
        key = tuple(sorted(rename.items(), key=lambda kv: str(kv[0])))
        memo = self._memos.setdefault(key, {})
        return self._walk(sp.sympify(expr), rename, memo)

    def _walk(self, e, rename: dict, memo: dict):
        hit = memo.get(e)
        if hit is not None:
            return hit
        if e.is_Atom:
            out = rename.get(e, e)
        elif _polynomial_node(e):
            out = e.func(*(self._walk(a, rename, memo) for a in e.args))
        else:
            args = tuple(sp.expand(self._walk(a, rename, memo)) for a in e.args)
            key = (e.func, args)
            out = self._table.get(key)
            if out is None:
                out = self._table[key] = sp.Dummy(f"q{len(self.defs) + 1}", real=True)
                self.defs.append((out, e.func(*args)))
        memo[e] = out
        return out

    def evaluate(self, expr, values: dict, digits: int):
        """The value of ``expr`` at ``values`` (leaf symbol -> number) with ``digits`` significant digits,
        as an mpmath number; every distinct node is evaluated once."""
        dps = digits + 10

        def call(e, args):
            value = sp.N(e.func(*(sp.Float(a, dps) for a in args)), dps)
            if not value.is_Number:
                raise ValueError(f"cannot evaluate {e.func}({', '.join(map(str, args))}) to a number")
            return mpmath.mpf(value)

        with mpmath.workdps(dps):
            num = {s: mpmath.mpf(sp.Float(v, dps)) for s, v in values.items()}
            return _fold(sp.sympify(expr), num.__getitem__, lambda n: mpmath.mpf(sp.Float(n, dps)), call, {})


def _fold(e, symbol, number, call, memo: dict):
    """``e`` evaluated bottom-up, each distinct node once: ``symbol(s)`` at a symbol, ``number(n)`` at a
    number, the arithmetic of sums, products and integer powers, and ``call(node, arg values)`` else."""
    hit = memo.get(e)
    if hit is not None:
        return hit
    if e.is_Symbol:
        out = symbol(e)
    elif e.is_Number:
        out = number(e)
    elif isinstance(e, sp.Add):
        out = number(sp.Integer(0))
        for a in e.args:
            out += _fold(a, symbol, number, call, memo)
    elif isinstance(e, sp.Mul):
        out = number(sp.Integer(1))
        for a in e.args:
            out *= _fold(a, symbol, number, call, memo)
    elif isinstance(e, sp.Pow) and e.exp.is_Integer:
        out = _fold(e.base, symbol, number, call, memo) ** int(e.exp)
    else:
        out = call(e, [_fold(a, symbol, number, call, memo) for a in e.args])
    memo[e] = out
    return out


def difference(a, b):
    r"""``a - b`` (expressions over leaves and atoms) expanded in the polynomial ring
    :math:`\mathbb{Q}[\text{symbols}]` (its fraction field where there are denominators), visiting
    each shared node once; 0 exactly when the two are equal as polynomials (rational functions).

    Returns:
        the difference as a SymPy expression (``sp.Integer(0)`` when it vanishes).
    """
    a, b = sp.sympify(a), sp.sympify(b)
    gens = sorted(a.free_symbols | b.free_symbols, key=sp.default_sort_key)
    if not gens:
        return sp.expand(a - b)
    try:
        R = sp.ring(gens, sp.QQ)[0]
        return (_fold(a, R, R, _not_polynomial, {}) - _fold(b, R, R, _not_polynomial, {})).as_expr()
    except ValueError:          # a negative power: rational functions
        K = sp.field(gens, sp.QQ)[0]
        return (_fold(a, K, K, _not_polynomial, {}) - _fold(b, K, K, _not_polynomial, {})).as_expr()


def derivative(expr, x):
    r""":math:`\partial\,\text{expr}/\partial x` by SymPy's own rule at every node (sums, products,
    powers, and each function's ``fdiff``), each shared subexpression differentiated once.

    ``sympy.diff`` gives the same result, but differentiates a subexpression again wherever it occurs;
    an unrolled loss contains :math:`h_{t-1}` in several places, :math:`h_{t-2}` in more, and so on.
    """
    return _Differentiator(x)(sp.sympify(expr))


class _Differentiator:
    """Memoized derivative with respect to ``x`` (and memoized "depends on x")."""

    def __init__(self, x):
        self.x = x
        self.memo: dict = {}
        self.uses: dict = {}

    def depends(self, e) -> bool:
        hit = self.uses.get(e)
        if hit is None:
            hit = self.uses[e] = (e == self.x) if e.is_Atom else any(self.depends(a) for a in e.args)
        return hit

    def __call__(self, e):
        hit = self.memo.get(e)
        if hit is not None:
            return hit
        if e == self.x:
            out = sp.Integer(1)
        elif not self.depends(e):
            out = sp.Integer(0)
        elif isinstance(e, sp.Add):
            out = sp.Add(*(self(a) for a in e.args))
        elif isinstance(e, sp.Mul):
            out = sp.Add(*(sp.Mul(*e.args[:i], self(a), *e.args[i + 1:])
                           for i, a in enumerate(e.args) if self.depends(a)))
        elif isinstance(e, sp.Pow) and not self.depends(e.exp):
            out = e.exp * e.base ** (e.exp - 1) * self(e.base)
        elif isinstance(e, sp.Function):
            out = sp.Add(*(e.fdiff(i + 1) * self(a) for i, a in enumerate(e.args) if self.depends(a)))
        else:
            out = sp.diff(e, self.x)
        self.memo[e] = out
        return out


def vanishes_at_random_points(expr, rng, points: int = 2) -> tuple[bool, sp.Expr]:
    r"""Exact test that ``expr`` (over leaves and atoms, no function left) is the zero rational
    function: evaluate it in exact rational arithmetic at ``points`` random assignments of all its
    symbols (numerators up to :math:`10^{12}`). A nonzero polynomial of degree d vanishes at such a
    point with probability at most :math:`d / 10^{12}` (Schwartz-Zippel), so this is how an identity
    too large to expand is proved, up to that probability.

    Returns:
        (vanishes, the largest absolute value met, as a Rational).
    """
    syms = sorted(sp.sympify(expr).free_symbols, key=sp.default_sort_key)
    worst = Fraction(0)
    for _ in range(points):
        values = {s: Fraction(int(rng.integers(1, 10**12)), int(rng.integers(1, 10**6))) for s in syms}
        worst = max(worst, abs(_fold(sp.sympify(expr), values.__getitem__, _fraction, _not_polynomial, {})))
    return worst == 0, sp.Rational(worst.numerator, worst.denominator)


def _fraction(n) -> Fraction:
    if not n.is_Rational:
        raise ValueError(f"not a rational number: {n}")
    return Fraction(int(n.p), int(n.q))


def _not_polynomial(e, args):
    raise ValueError(f"not a polynomial node: {e}")
