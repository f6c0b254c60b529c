r"""``bl.check``: the SymPy derivation against the engine, term by term, at the network's own numbers.

For every parameter :math:`\theta`, every loss :math:`E_t` and every copy :math:`k \le t`, the derived
expressions (:mod:`bpttlab.symbolic`) are evaluated at the network's parameters, inputs and targets and
compared with what the Numba engine computes:

.. math::

    \underbrace{C[t][k]}_{\text{SymPy}} \;\text{vs}\; \texttt{contributions}[t-1, k-1], \qquad
    \underbrace{C[t][t]}_{\text{explicit}}, \;
    \underbrace{\textstyle\sum_{k<t} C[t][k]}_{\text{implicit}} \;\text{vs the same sums of the table},

    \underbrace{\textstyle\sum_{k} C[t][k]}_{\text{total}} \;\text{vs}\; \texttt{bptt(...).by_loss}[t-1],
    \qquad \textstyle\sum_t \sum_k C[t][k] \;\text{vs}\; \texttt{bptt(...).grads},

and the engine's gradient against central finite differences (:func:`~bpttlab.engine.gradcheck`), so
the three ways of computing the gradient meet in one report. With truncation k2 the symbolic side keeps
only :math:`k > t - k_2`; the dropped terms are still listed, and the engine must give 0 for them.

The symbolic side never calls the engine: its forward pass runs the cell's *symbolic* step
(:mod:`bpttlab.symbolic.numeric`) and the activation enters through its symbolic formulas, so relu's
derivative at an exact 0 is ``Heaviside(0, 0) = 0``, the engine's convention.

Errors: the absolute error is the largest entry of :math:`|s - e|`; the relative error is
:math:`\lVert s - e\rVert / (\lVert s\rVert + \lVert e\rVert)`, where for a sum :math:`\lVert s\rVert`
is the sum of the norms of its terms (rounding in a sum is relative to the size of what is added, so a
sum that cancels to nearly 0 is not flagged). A row passes when the relative error is below ``tol``
(default :data:`TOL`, float64).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, replace

import numpy as np
import sympy as sp

from . import validation as V
from .engine import bptt, contribution_tables
from .engine import gradcheck
from .network import Network
from .reports import html_table, text_table
from .symbolic import limits
from .symbolic.graph import Graph, graph
from .symbolic.names import Sizes
from .symbolic.numeric import evaluator

#: Relative error under which the symbolic and engine values agree (float64).
TOL = 1e-10
#: Relative error under which the engine and central finite differences agree.
FD_TOL = 1e-6
#: A pre-activation closer to a kink than this makes finite differences meaningless there.
KINK_DISTANCE = 1e-4


@dataclass(frozen=True)
class Row:
    """One comparison.

    Attributes:
        parameter: the parameter's name.
        t: the loss E_t (None for the gradient of the whole loss E).
        k: the copy for a single term C[t][k] (None for a sum).
        what: "C[t][k]", "explicit", "implicit", "total", "dE/dθ" or "finite differences".
        reference, engine: the two values compared (SymPy's, or the finite differences', and the engine's).
        abs_error, rel_error: see the module docstring.
        passed: rel_error < the tolerance of the row's kind.
        dropped: a term truncation drops (SymPy side 0).
    """

    parameter: str
    t: int | None
    k: int | None
    what: str
    reference: np.ndarray
    engine: np.ndarray
    abs_error: float
    rel_error: float
    passed: bool
    dropped: bool = False

    @property
    def source(self) -> str:
        """The comparison's kind: "fd" for the finite-difference row, "sympy" otherwise."""
        return "fd" if self.what == "finite differences" else "sympy"

    def where(self) -> str:
        """E.g. "W, t=3, C[3][1]"."""
        t = "" if self.t is None else f", t={self.t}"
        return f"{self.parameter}{t}, {self.what}"


@dataclass
class CheckReport:
    """The result of :func:`check`: every comparison, and the verdict.

    Attributes:
        rows: every :class:`Row`, parameter by parameter, t ascending; per t the terms C[t][k]
            (k ascending), then explicit, implicit, total; per parameter last dE/dθ and the
            finite-difference row.
        title: what was checked (cell, activation, sizes, T, loss, reduction, k2).
        parameters: name -> shape, in the cell's order.
        tol, fd_tol: the tolerances.
        fd_note: why finite differences were not compared ("" when they were).
        exact: show errors as numbers (True) or, below the tolerance, as "< tol" (see :meth:`rounded`).
    """

    rows: list[Row]
    title: str
    parameters: dict[str, tuple[int, ...]]
    tol: float
    fd_tol: float
    fd_note: str = ""
    exact: bool = True

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        """The rows that disagree, in the order of :attr:`rows` (see :attr:`first_failure`)."""
        return [r for r in self.rows if not r.passed]

    @property
    def first_failure(self) -> Row | None:
        """The disagreement earliest in time (smallest t, then k, then parameter order), or None."""
        order = {name: i for i, name in enumerate(self.parameters)}
        inf = float("inf")
        return min(self.failures, default=None, key=lambda r: (inf if r.t is None else r.t,
                                                               inf if r.k is None else r.k, order[r.parameter]))

    @property
    def worst(self) -> Row:
        """The SymPy-vs-engine row with the largest relative error."""
        return max((r for r in self.rows if r.source == "sympy"), key=lambda r: r.rel_error)

    def max_rel_error_by_parameter(self) -> dict[str, float]:
        """parameter -> the largest SymPy-vs-engine relative error over its rows."""
        return {name: max((r.rel_error for r in self.rows if r.parameter == name and r.source == "sympy"),
                          default=0.0) for name in self.parameters}

    def rounded(self) -> "CheckReport":
        """The same report showing errors below the tolerance as "< tol" (stable across machines)."""
        return replace(self, exact=False)

    # -- rendering -----------------------------------------------------------------------------------
    def _error(self, e: float, tol: float) -> str:
        if not self.exact and e < tol:
            return f"< {tol:.0e}"
        return f"{e:.1e}"

    def _summary(self) -> tuple[list[str], list[list[str]]]:
        header = ["parameter", "shape", "terms", "SymPy vs engine: max abs", "max rel", "engine vs FD: rel",
                  "agree"]
        rows = []
        for name, shape in self.parameters.items():
            mine = [r for r in self.rows if r.parameter == name]
            sym = [r for r in mine if r.source == "sympy"]
            fd = [r for r in mine if r.source == "fd"]
            fd_cell = self._error(fd[0].rel_error, self.fd_tol) if fd else "n/a"
            rows.append([name, str(shape), str(sum(r.what.startswith("C[") for r in sym)),
                         self._error(max(r.abs_error for r in sym), self.tol),
                         self._error(max(r.rel_error for r in sym), self.tol), fd_cell,
                         "yes" if all(r.passed for r in mine) else "NO"])
        return header, rows

    def _detail(self, rows: list[Row]) -> tuple[list[str], list[list[str]]]:
        header = ["parameter", "t", "term", "compared", "abs error", "rel error", "pass"]
        out = []
        for r in rows:
            tol = self.fd_tol if r.source == "fd" else self.tol
            what = r.what + (" (dropped by k2)" if r.dropped else "")
            out.append([r.parameter, "" if r.t is None else str(r.t), what,
                        "engine vs FD" if r.source == "fd" else "SymPy vs engine",
                        self._error(r.abs_error, tol) if r.source == "sympy" else "",
                        self._error(r.rel_error, tol), "yes" if r.passed else "NO"])
        return header, out

    def _verdict(self) -> str:
        n = sum(r.source == "sympy" for r in self.rows)
        if self.passed:
            return (f"PASSED: all {n} SymPy terms and sums agree with the engine (relative error < "
                    f"{self.tol:g})" + ("" if self.fd_note else f"; engine vs finite differences < {self.fd_tol:g}"))
        first = self.first_failure
        return (f"FAILED: {len(self.failures)} of {len(self.rows)} comparisons disagree; first at "
                f"{first.where()} (relative error {first.rel_error:.1e})")

    def to_text(self, detail: bool = False) -> str:
        """The summary per parameter, the verdict, and the failing rows (every row with ``detail``)."""
        parts = [f"bl.check: {self.title}", text_table(*self._summary()), self._verdict()]
        if self.fd_note:
            parts.append(f"finite differences not compared: {self.fd_note}")
        rows = self.rows if detail else self.failures[:20]
        if rows:
            parts.append(text_table(*self._detail(rows)))
        return "\n".join(parts)

    def to_html(self, detail: bool = True) -> str:
        """The summary table, the verdict, the failing rows, and every row in a collapsed section."""
        out = [html_table(*self._summary(), caption=f"bl.check: {self.title}"),
               f"<p><b>{html.escape(self._verdict())}</b></p>"]
        if self.fd_note:
            out.append(f"<p>finite differences not compared: {html.escape(self.fd_note)}</p>")
        if self.failures:
            out.append(html_table(*self._detail(self.failures[:20]), caption="disagreements"))
        if detail:
            out.append("<details><summary>every comparison</summary>"
                       + html_table(*self._detail(self.rows)) + "</details>")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return self.to_html()


# -- the symbolic side -------------------------------------------------------------------------------------
def _compiled(g: Graph, T: int):
    """Every C[t][k] (1 <= k <= t <= T, every parameter entry) in one lambdified function, cached on the
    graph; returns (function, index) with index[(name, t, k)] = the slice of its entries."""
    key = ("check", T)
    if key not in g.cache:
        exprs, index = [], {}
        for name in g.entries:
            for t in range(1, T + 1):
                for k in range(1, t + 1):
                    row = list(g.term(t, k, name))
                    index[(name, t, k)] = slice(len(exprs), len(exprs) + len(row))
                    exprs.extend(row)
        g.cache[key] = (evaluator(g).compile(exprs), index)
    return g.cache[key]


def symbolic_terms(g: Graph, params: dict[str, np.ndarray], xs: np.ndarray, s0: np.ndarray, loss, y: np.ndarray,
                   scale: float) -> tuple[dict[tuple[str, int, int], np.ndarray], dict]:
    """(name, t, k) -> C[t][k] summed over the batch, shaped like the parameter, from the derived
    expressions alone; and the values of every symbol (the symbolic forward pass).

    Args:
        g: the graph of the network's cell, sizes and activation.
        params: the parameter arrays; xs: (T, B, D); s0: (B, S); y: the validated targets.
        loss: the Loss; scale: 1, or 1/(T B) for reduction "mean" (each C[t][k] is linear in dE_t/do_t).
    """
    T, B, D = xs.shape
    ev = evaluator(g)
    vals = ev.forward(params, xs, s0)
    for k in range(1, T + 1):
        vals.update(zip(g.names.inputs(k), (xs[k - 1, :, i] for i in range(D))))
    ev.loss_gradients(loss, vals, y)
    if scale != 1.0:
        for t in range(1, T + 1):
            for s in g.names.loss_gradient(t):
                vals[s] = vals[s] * scale
    fn, index = _compiled(g, T)
    flat = fn(vals, B).sum(axis=1)
    return {key: flat[sl].reshape(params[key[0]].shape) for key, sl in index.items()}, vals


# -- comparison ---------------------------------------------------------------------------------------------
def _norm(a) -> float:
    return float(np.linalg.norm(np.ravel(a)))


def _row(name, t, k, what, ref, eng, scale, tol, dropped=False) -> Row:
    diff = np.abs(np.asarray(ref) - np.asarray(eng))
    abs_err = float(diff.max()) if diff.size else 0.0
    d = _norm(diff)
    rel = 0.0 if d == 0.0 else (d / scale if scale > 0.0 else float("inf"))
    if not np.isfinite(rel):
        rel = float("inf")
    return Row(name, t, k, what, np.asarray(ref), np.asarray(eng), abs_err, rel, rel < tol, dropped)


def _parameter_rows(name: str, sym: dict, kept: dict[int, range], table: np.ndarray, by_loss: np.ndarray,
                    grad: np.ndarray, tol: float) -> list[Row]:
    """The rows of one parameter: per t every C[t][k] (dropped ones against 0), explicit, implicit and
    total; then dE/dθ. ``kept[t]`` are the copies truncation keeps; ``table`` is the engine's C (T, T, ...),
    ``by_loss`` and ``grad`` its per-loss and total gradients."""
    rows, grad_ref, grad_scale = [], 0.0, 0.0
    for t, ks in kept.items():
        for k in range(1, t + 1):
            ref = sym[(name, t, k)] if k in ks else np.zeros_like(table[t - 1, k - 1])
            eng = table[t - 1, k - 1]
            rows.append(_row(name, t, k, f"C[{t}][{k}]", ref, eng, _norm(ref) + _norm(eng), tol, k not in ks))
        explicit = sym[(name, t, t)]
        rows.append(_row(name, t, t, "explicit", explicit, table[t - 1, t - 1],
                         _norm(explicit) + _norm(table[t - 1, t - 1]), tol))
        implicit = sum((sym[(name, t, k)] for k in ks if k < t), np.zeros_like(explicit))
        implicit_scale = sum(_norm(sym[(name, t, k)]) for k in ks if k < t)
        eng_implicit = table[t - 1, :t - 1].sum(axis=0)
        rows.append(_row(name, t, None, "implicit", implicit, eng_implicit, implicit_scale + _norm(eng_implicit), tol))
        total, total_scale = explicit + implicit, implicit_scale + _norm(explicit)
        rows.append(_row(name, t, None, "total", total, by_loss[t - 1], total_scale + _norm(by_loss[t - 1]), tol))
        grad_ref, grad_scale = grad_ref + total, grad_scale + total_scale
    rows.append(_row(name, None, None, "dE/dθ", grad_ref, grad, grad_scale + _norm(grad), tol))
    return rows


def _kink_note(g: Graph, vals: dict, T: int) -> str:
    """Where a non-smooth activation is evaluated (almost) at its kink, or ""."""
    z = sp.Symbol("z")
    act = g.activation
    kinked = (sp.sympify(act.symbolic(z)).has(sp.Max, sp.Min, sp.Abs, sp.Piecewise, sp.Heaviside)
              or sp.sympify(act.sym_df(z)).has(sp.Heaviside, sp.Piecewise, sp.sign))
    if not kinked:
        return ""
    for k in range(1, T + 1):
        for sym in g.step(k).alphas:
            if np.min(np.abs(vals[sym])) < KINK_DISTANCE:
                return (f"the {act.name} pre-activation {sym} is within {KINK_DISTANCE:g} of its kink at 0, "
                        "where E is not differentiable")
    return ""


def _tolerance(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def check(net: Network, xs, targets, loss="mse", reduction: str = "sum", k2: int | None = None, h0=None,
          tol: float = TOL, fd: bool = True, fd_tol: float = FD_TOL) -> CheckReport:
    r"""Check the engine against the SymPy derivation, term by term, and against finite differences.

    .. math::

        C[t][k]^{\text{SymPy}} \overset{?}{=} C[t][k]^{\text{engine}} \quad (1 \le k \le t \le T), \qquad
        \frac{\partial E}{\partial\theta}^{\text{engine}} \overset{?}{=}
        \frac{E(\theta + \varepsilon) - E(\theta - \varepsilon)}{2\varepsilon}

    Args:
        net: the network (any registered cell whose symbolic step SymPy can derive).
        xs, targets, loss, reduction, k2, h0: as for :func:`bpttlab.bptt`.
        tol: relative error under which SymPy and the engine agree (default 1e-10).
        fd: also compare the engine's gradient with central finite differences.
        fd_tol: relative error under which the engine and finite differences agree (default 1e-6).

    Returns:
        a :class:`CheckReport`: ``.passed``, ``.worst``, ``.failures``, ``.rows``; a table in Jupyter
        (``.rounded()`` for errors shown as "< tol") and text in a terminal.

    Raises:
        ValueError / TypeError: bad arguments (as for ``bptt``), or a network larger than a derivation
            serves (the message names the largest size).

    Example:
        >>> import numpy as np, bpttlab as bl
        >>> net = bl.make("elman", n_in=1, n_hidden=1, n_out=1, seed=0)
        >>> bl.check(net, np.ones((3, 1)), np.zeros((3, 1))).passed
        True
    """
    pb = V.problem(net, xs, targets, loss, reduction, h0)
    batch, loss_obj, red = pb.batch, pb.loss, pb.reduction
    k2 = V.positive_int(k2, "k2", allow_none=True)
    tol, fd_tol = _tolerance(tol, "tol"), _tolerance(fd_tol, "fd_tol")
    T, B = batch.T, batch.B
    sizes = Sizes(net.n_in, net.n_hidden, net.n_out)
    limits.check(net.cell, sizes, T, "check")
    g = graph(net.cell, sizes, net.activation)
    scale = 1.0 / (T * B) if red == "mean" else 1.0
    params = {name: p.copy() for name, p in net.params.items()}
    sym, vals = symbolic_terms(g, params, batch.xs, pb.s0, loss_obj, pb.y, scale)

    res = bptt(net, xs, targets, loss=loss_obj, reduction=red, k2=k2, h0=h0)
    kept = {t: range(1 if k2 is None else max(1, t - k2 + 1), t + 1) for t in range(1, T + 1)}
    rows: list[Row] = []
    tables = contribution_tables(net, xs, targets, tuple(net.shapes), loss=loss_obj, reduction=red, k2=k2, h0=h0)
    for name, table in tables.items():
        rows += _parameter_rows(name, sym, kept, table, res.by_loss[name], res.grads[name], tol)

    fd_note = ""
    if fd and k2 is not None and k2 < T:
        fd_note = f"the truncated gradient (k2={k2} < T={T}) is not the derivative of E"
    elif fd:
        fd_note = _kink_note(g, vals, T)
    if fd and not fd_note:
        fdc = gradcheck(net, xs, targets, loss=loss_obj, reduction=red, h0=h0, tol=fd_tol)
        for name in net.shapes:
            num, eng = fdc.numeric[name], fdc.analytic[name]
            rows.append(_row(name, None, None, "finite differences", num, eng, _norm(num) + _norm(eng), fd_tol))
    order = {name: i for i, name in enumerate(net.shapes)}
    rows.sort(key=lambda r: order[r.parameter])
    if not fd:
        fd_note = "not asked for (fd=False)"
    title = (f"{net.cell.name} {net.activation.name}, D={net.n_in} H={net.n_hidden} O={net.n_out}, T={T}"
             + (f", B={B}" if batch.batched else "") + f", loss {loss_obj.name} ({red})"
             + (f", k2={k2}" if k2 is not None else ""))
    return CheckReport(rows, title, dict(net.shapes), tol, fd_tol, fd_note)
