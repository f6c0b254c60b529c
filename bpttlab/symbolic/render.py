r"""LaTeX and plain text for a :class:`~bpttlab.symbolic.derivation.Derivation`.

The rendering puts the explicit and the implicit part on separate, labelled lines and writes every term
as the chain it is, each factor braced with its meaning:

.. math::

    C_{3,2} = \underbrace{(o_3 - y_3)}_{\partial E_3/\partial o_3}\,
              \underbrace{V}_{\partial o_3/\partial h_3}\,
              \underbrace{f'(a_3)\,W}_{\partial h_3/\partial h_2}\,
              \underbrace{f'(a_2)\,h_2}_{\partial^+ h_2/\partial W},

with the Jacobian chain :math:`\partial h_t/\partial h_k = \prod_{j=k+1}^{t}\operatorname{diag}(f'(a_j))\,W`
stated once (for a cell whose Jacobian has that form; otherwise as the product of the step Jacobians).
A factor too large to print (vector mode, long chains) is shown by its meaning only.
"""
from __future__ import annotations

import sympy as sp

#: A factor or value whose LaTeX is longer than this is shown by its meaning only.
MAX_LATEX = 1200


def _tex(d, expr) -> str:
    return sp.latex(expr, symbol_names=d.graph.names.latex)


def _text(expr) -> str:
    return sp.sstr(expr)


class _Factors:
    """The meaning and the value of each factor of C[t][k], for one derivation."""

    def __init__(self, d):
        self.d = d
        g = d.graph
        self.h = g.names.state
        self.theta = sp.latex(sp.Symbol(d.wrt))
        self.readout = g.template.readout
        #: the fed-back state is the output itself (Jordan): the factor do_t/do_t = 1 is left out
        self.output_is_state = self.readout and self.h == "o"
        self.chain = g.template.chain
        self.vector = not d.sizes.scalar

    # meanings: (numerator, denominator) -------------------------------------------------------------
    def m_loss(self, t):
        return rf"\partial E_{{{t}}}", rf"\partial o_{{{t}}}"

    def m_out(self, t):
        src = t if self.readout else t - 1
        return rf"\partial o_{{{t}}}", rf"\partial {self.h}_{{{src}}}"

    def m_jac(self, j):
        return rf"\partial {self.h}_{{{j}}}", rf"\partial {self.h}_{{{j - 1}}}"

    def m_explicit(self, k):
        return rf"\partial^+ {self.h}_{{{k}}}", rf"\partial {self.theta}"

    def m_out_explicit(self, t):
        return rf"\partial^+ o_{{{t}}}", rf"\partial {self.theta}"

    # values ----------------------------------------------------------------------------------------
    def chain_tex(self, j) -> str | None:
        """f'(a_j) W, V diag(f'(a_j)) W, ... when the Jacobian has that form."""
        if self.chain is None:
            return None
        left, right = self.chain
        a = rf"a_{{{j}}}"
        mid = rf"\operatorname{{diag}}\!\left(f'({a})\right)" if self.vector else rf"f'\left({a}\right)"
        parts = [sp.latex(sp.Symbol(left))] if left else []
        return r"\,".join(parts + [mid, sp.latex(sp.Symbol(right))])

    def chain_text(self, j) -> str | None:
        if self.chain is None:
            return None
        left, right = self.chain
        mid = f"diag(f'(a_{j}))" if self.vector else f"f'(a_{j})"
        return "*".join(([left] if left else []) + [mid, right])

    def value(self, m: sp.Matrix, row: bool = False):
        """A factor as an expression (1 x 1) or Matrix; a column loss gradient becomes a row."""
        if m.shape == (1, 1):
            return m[0]
        return m.T if row else m


def _braced(d, value, meaning: tuple[str, str]) -> str:
    """``value`` with its meaning braced under it, or the meaning alone when the value is too long."""
    num, den = meaning
    tex = value if isinstance(value, str) else _tex(d, value)
    if len(tex) > MAX_LATEX:
        return rf"\frac{{{num}}}{{{den}}}"
    if isinstance(value, sp.Add):
        tex = rf"\left({tex}\right)"
    return rf"\underbrace{{{tex}}}_{{{num}/{den}}}"


def _named_matrix(d, m: sp.Matrix):
    """A parameter's name if m is that parameter (e.g. V), else None."""
    for name, P in d.graph.params.items():
        if P.shape == m.shape and P == m and P.shape != (1, 1):
            return sp.latex(sp.Symbol(name))
    return None


def _factor_tex(d, F: _Factors, t: int, k: int) -> str:
    """C[t][k] as braced factors."""
    step_t = d.graph.step(t)
    parts = [_braced(d, F.value(d.loss_gradient(), row=True), F.m_loss(t))]
    out = step_t.out_state.xreplace(d._substitution)
    if not F.output_is_state:
        parts.append(_braced(d, _named_matrix(d, out) or F.value(out), F.m_out(t)))
    top = t if F.readout else t - 1
    for j in range(top, k, -1):
        parts.append(_braced(d, F.chain_tex(j) or F.value(d.jacobian(j)), F.m_jac(j)))
    parts.append(_braced(d, F.value(d.explicit_state_derivative(k)), F.m_explicit(k)))
    return r"\,".join(parts)


def _explicit_tex(d, F: _Factors) -> str:
    t = d.t
    step = d.graph.step(t)
    pieces = []
    out_explicit = step.out_explicit[d.wrt].xreplace(d._substitution)
    if any(e != 0 for e in out_explicit):
        pieces.append(_braced(d, F.value(d.loss_gradient(), row=True), F.m_loss(t)) + r"\,"
                      + _braced(d, F.value(out_explicit), F.m_out_explicit(t)))
    if F.readout and any(e != 0 for e in d.explicit_state_derivative(t)):
        pieces.append(_factor_tex(d, F, t, t))
    return " + ".join(pieces) if pieces else "0"


def _value_tex(d, value) -> str:
    tex = _tex(d, value)
    return tex if len(tex) <= MAX_LATEX else r"\text{(large: see .terms)}"


def _general_tex(d, F: _Factors) -> list[str]:
    h, th = F.h, F.theta
    if F.readout:
        readout = "" if F.output_is_state else rf"\frac{{\partial o_t}}{{\partial {h}_t}}\,"
        form = (rf"C_{{t,k}} &= \frac{{\partial E_t}}{{\partial o_t}}\,{readout}"
                rf"\frac{{\partial {h}_t}}{{\partial {h}_k}}\,\frac{{\partial^+ {h}_k}}{{\partial {th}}}")
    else:
        form = (rf"C_{{t,k}} &= \frac{{\partial E_t}}{{\partial o_t}}\,\frac{{\partial o_t}}{{\partial {h}_{{t-1}}}}\,"
                rf"\frac{{\partial {h}_{{t-1}}}}{{\partial {h}_k}}\,\frac{{\partial^+ {h}_k}}{{\partial {th}}}")
    chain = F.chain_tex("j")
    prod = chain if chain else rf"\frac{{\partial {h}_j}}{{\partial {h}_{{j-1}}}}"
    return [form + r" \quad (k < t)",
            rf"\frac{{\partial {h}_t}}{{\partial {h}_k}} &= \prod_{{j=k+1}}^{{t}} {prod}"
            r" \quad \text{(the Jacobian chain, factors ordered } j = t, \dots, k+1)"]


def latex(d) -> str:
    """The whole derivation as one LaTeX ``aligned`` block."""
    F = _Factors(d)
    t, th = d.t, F.theta
    ks = sorted(d.terms, reverse=True)
    implicit = [k for k in ks if k < t]
    imp = " + ".join(f"C_{{{t},{k}}}" for k in implicit) or "0"
    lines = [rf"\frac{{\partial E_{{{t}}}}}{{\partial {th}}} &= \underbrace{{C_{{{t},{t}}}}}_{{\text{{explicit}}}}"
             rf" + \underbrace{{{imp}}}_{{\text{{implicit}}}}"]
    lines += _general_tex(d, F)
    lines.append(r"&\textbf{explicit}\ (k = t)")
    value = _value_tex(d, d.explicit)
    lines.append(rf"C_{{{t},{t}}} &= {_explicit_tex(d, F)} = {value}")
    lines.append(r"&\textbf{implicit}\ (k < t,\ \text{through } " + rf"{F.h}_{{{t - 1}}})")
    for k in implicit:
        lines.append(rf"C_{{{t},{k}}} &= {_factor_tex(d, F, t, k)} = {_value_tex(d, d.terms[k])}")
    if not implicit:
        lines.append(r"&\text{none}")
    if d.dropped:
        lines.append(rf"&\text{{dropped by truncation }} k_2 = {d.k2}:\ "
                     + ", ".join(f"C_{{{t},{k}}}" for k in d.dropped))
    lines.append(rf"\frac{{\partial E_{{{t}}}}}{{\partial {th}}} &= {_value_tex(d, d.total)}")
    lines.append(_activation_tex(d))
    return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"


def _activation_tex(d) -> str:
    a = sp.Symbol("a")
    if not d.graph.template.alphas:
        return rf"&\text{{(the {d.cell.name} cell's own nonlinearities are written out)}}"
    return (rf"&\text{{with }} f = \text{{{d.activation.name}}}:\ f(a) = {sp.latex(d.activation.symbolic(a))},"
            rf"\ f'(a) = {sp.latex(d.activation.sym_df(a))}")


def text(d) -> str:
    """The derivation as plain text: explicit and implicit terms on separate, labelled lines."""
    F = _Factors(d)
    t, h, th = d.t, F.h, d.wrt
    implicit = sorted((k for k in d.terms if k < t), reverse=True)
    src = f"{h}_{t}" if F.readout else f"{h}_{t - 1}"
    head = (f"dE_{t}/d{th}  ({d.cell.name}, {d.sizes}, f = {d.activation.name}, loss {d.loss.name}"
            f"{f', k2={d.k2}' if d.k2 else ''}, {h}_0 = {'0' if d.h0 == 'zero' else 'symbol'})")
    chain = F.chain_text("j") or f"d{h}_j/d{h}_(j-1)"
    readout = "" if F.output_is_state else f"do_t/d{h}_{'t' if F.readout else '(t-1)'} * "
    lines = [head,
             f"  = explicit C[{t}][{t}] + implicit (" + (" + ".join(f"C[{t}][{k}]" for k in implicit) or "0") + ")",
             f"  C[t][k] = dE_t/do_t * {readout}d{h}_t/d{h}_k * d+{h}_k/d{th},"
             f"  d{h}_t/d{h}_k = prod_(j=k+1..t) {chain}",
             "explicit:",
             f"  C[{t}][{t}] = {_text(d.explicit)}",
             f"implicit (through {h}_{t - 1}):"]
    for k in implicit:
        factors = [f"dE_{t}/do_{t}"] + ([] if F.output_is_state else [f"do_{t}/d{src}"])
        factors += [f"[{F.chain_text(j) or f'd{h}_{j}/d{h}_{j - 1}'}]" for j in range(t if F.readout else t - 1, k, -1)]
        factors.append(f"d+{h}_{k}/d{th}")
        lines.append(f"  C[{t}][{k}] = {' * '.join(factors)}\n          = {_text(d.terms[k])}")
    if not implicit:
        lines.append("  none")
    if d.dropped:
        lines.append(f"dropped by truncation k2={d.k2}: " + ", ".join(f"C[{t}][{k}]" for k in d.dropped))
    lines.append(f"total:\n  dE_{t}/d{th} = {_text(d.total)}")
    return "\n".join(lines)
