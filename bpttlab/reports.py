r"""Tables shown by the ``%bptt`` magics and the ``bpttlab`` command: plain text for terminals (and
nbval, which compares it), HTML for notebooks.

:class:`GradientReport` lays one BPTT pass out per time step. For the parameter :math:`\theta` it follows,
row t holds the gradient of the loss :math:`E_t` split into its explicit and implicit parts, and the
gradient reaching copy t of the parameter (ARCHITECTURE.md):

.. math::

    \frac{\partial E_t}{\partial \theta} = \underbrace{C[t][t]}_{\text{explicit}}
    + \underbrace{\sum_{k<t} C[t][k]}_{\text{implicit}}, \qquad
    \frac{\partial E}{\partial \theta_t} = \sum_{s \ge t} C[s][t].

:class:`PluginList` lists the registered plugins with where each comes from.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from . import registry
from .engine import BPTTResult, bptt, contributions
from .network import Network

#: Time steps shown in full; longer sequences show the first and last half of this many rows.
MAX_ROWS = 20
#: Longest sequence whose whole C[t][k] table is printed (it has T columns).
MAX_TABLE_T = 8


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest entry; the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def html_table(header: list[str], rows: list[list[str]], caption: str = "") -> str:
    """The same table as HTML, entries escaped."""
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _elide(rows: list[list[str]]) -> list[list[str]]:
    if len(rows) <= MAX_ROWS:
        return rows
    half = MAX_ROWS // 2
    return rows[:half] + [["..."] * len(rows[0])] + rows[-half:]


def _number(a: np.ndarray) -> str:
    """A signed value for a single number, the Frobenius norm otherwise."""
    a = np.asarray(a)
    return f"{float(a.reshape(-1)[0]):.4e}" if a.size == 1 else f"{float(np.linalg.norm(a)):.4e}"


@dataclass
class GradientReport:
    """The gradients of one BPTT pass and their per-timestep split, as tables.

    Attributes:
        result: the :class:`~bpttlab.engine.BPTTResult`; its public attributes are also reachable on
            the report (``report.grads["W"]``, ``report.by_loss``, ...).
        wrt: the parameter whose per-timestep split is tabulated.
        description: the network, loss and truncation the pass used, for the title.
        per_loss: dE_t/d``wrt`` for each loss (T, *shape), or None where it is not defined (see ``notes``).
        table: C[t-1, k-1] for ``wrt`` (T, T, *shape), or None where it is not shown (see ``notes``).
        notes: why a part of the split is missing.
    """

    result: BPTTResult
    wrt: str
    description: str
    per_loss: np.ndarray | None
    table: np.ndarray | None
    notes: list[str] = field(default_factory=list)

    def __getattr__(self, name: str):
        if name.startswith("_") or name == "result":
            raise AttributeError(name)
        return getattr(self.result, name)

    @property
    def scalar(self) -> bool:
        """Whether ``wrt`` is a single number (values are shown signed) rather than a matrix (norms)."""
        return self.result.grads[self.wrt].size == 1

    def parameter_rows(self) -> tuple[list[str], list[list[str]]]:
        """name, shape, dE/dtheta (value or norm) for every parameter."""
        rows = [[name, str(tuple(g.shape)), _number(g)] for name, g in self.result.grads.items()]
        return ["parameter", "shape", "dE/dθ (value or norm)"], rows

    def step_rows(self) -> tuple[list[str], list[list[str]]]:
        """Per time step t: E_t, dE_t/dθ, explicit, implicit, and dE/dθ_t (the gradient reaching copy t)."""
        res, p = self.result, self.wrt
        T = len(res.losses)
        columns = {"E_t": [f"{e:.4e}" for e in res.losses]}
        if self.per_loss is not None:
            columns[f"dE_t/d{p}"] = [_number(g) for g in self.per_loss]
        if self.table is not None:
            diag = np.array([self.table[t, t] for t in range(T)])
            columns["explicit C[t][t]"] = [_number(d) for d in diag]
            columns["implicit Σ_{k<t} C[t][k]"] = [_number(self.table[t, :t].sum(axis=0)) for t in range(T)]
        columns[f"dE/d{p}_t (copy t)"] = [_number(g) for g in res.by_copy[p]]
        rows = [[str(t + 1)] + [col[t] for col in columns.values()] for t in range(T)]
        return ["t", *columns], _elide(rows)

    def contribution_rows(self) -> tuple[list[str], list[list[str]]] | None:
        """The C[t][k] table itself (rows: loss E_t, columns: copy k), for short sequences."""
        if self.table is None or len(self.table) > MAX_TABLE_T:
            return None
        T = len(self.table)
        rows = [[f"E_{t + 1}"] + [_number(self.table[t, k]) if k <= t else "" for k in range(T)]
                for t in range(T)]
        return ["C[t][k]", *(f"k={k + 1}" for k in range(T))], rows

    def _sections(self) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
        kind = "value" if self.scalar else "Frobenius norm"
        sections = [("gradients", self.parameter_rows()),
                    (f"per time step, parameter {self.wrt} ({kind}s)", self.step_rows())]
        table = self.contribution_rows()
        if table is not None:
            sections.append((f"contributions C[t][k] = dE_t/d{self.wrt}_k ({kind}s)", table))
        return sections

    def _title(self) -> str:
        return f"BPTT gradients: {self.description}; E = {self.result.loss:.6e}"

    def __repr__(self) -> str:
        parts = [self._title()]
        for caption, (header, rows) in self._sections():
            parts += ["", caption + ":", text_table(header, rows)]
        parts += [f"note: {n}" for n in self.notes]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self._title())}</b></p>"]
        parts += [html_table(header, rows, caption) for caption, (header, rows) in self._sections()]
        parts += [f"<p><i>note: {html.escape(n)}</i></p>" for n in self.notes]
        return "\n".join(parts)


def gradient_report(net: Network, xs, targets, loss="mse", reduction: str = "sum", k2: int | None = None,
                    clip=None, wrt: str | None = None) -> GradientReport:
    """Run :func:`~bpttlab.bptt` and tabulate the gradient per time step.

    Args:
        net, xs, targets, loss, reduction, k2, clip: as for :func:`bpttlab.bptt`.
        wrt: the parameter to split per time step; default the cell's first recurrent matrix.

    Returns:
        a :class:`GradientReport`. The C[t][k] table is left out (with a note) where it is not defined
        (step clipping changes the terms during the pass) or would be too large.

    Raises:
        ValueError: ``wrt`` is not a parameter of ``net``, or any error of :func:`bpttlab.bptt`.
    """
    res = bptt(net, xs, targets, loss=loss, reduction=reduction, k2=k2, clip=clip)
    wrt = net.cell.recurrent[0] if wrt is None else wrt
    if wrt not in net.shapes:
        raise ValueError(f"wrt must be one of the parameters {', '.join(net.shapes)}, got {wrt!r}")
    notes = []
    table = per_loss = None
    try:
        per_loss = res.by_loss[wrt]
    except ValueError as exc:
        notes.append(f"dE_t/d{wrt} per loss is not shown: {exc}")
    if res.clip is not None and res.clip[0] == "step":
        notes.append("step clipping rescales dE/dh during the pass, so the C[t][k] split is not shown")
    else:
        try:
            table = contributions(net, xs, targets, wrt, loss=loss, reduction=reduction, k2=k2)
        except ValueError as exc:
            notes.append(f"the C[t][k] split is not shown: {exc}")
        if res.clipped:
            notes.append(f"the per-timestep terms are before clipping {res.clip}; the gradients after")
    trunc = "full BPTT" if res.k2 is None else f"truncated, k2={res.k2}"
    clip_text = f", clip={res.clip[0]}:{res.clip[1]:g}" if res.clip else ""
    loss_name = loss if isinstance(loss, str) else loss.name
    T = len(res.losses)
    description = (f"{net.cell.name} {net.activation.name}, T={T}, loss={loss_name} ({reduction}), "
                   f"{trunc}{clip_text}")
    return GradientReport(res, wrt, description, per_loss, table, notes)


@dataclass
class PluginList:
    """The registered plugins of each group.

    Attributes:
        groups: group title -> rows (name, origin, description).
        broken: group title -> {name: reason} for plugins that failed to load or validate.
    """

    groups: dict[str, list[tuple[str, str, str]]]
    broken: dict[str, dict[str, str]]

    def names(self, group: str) -> list[str]:
        return [row[0] for row in self.groups[group]]

    def __repr__(self) -> str:
        parts = []
        for group, rows in self.groups.items():
            body = text_table(["name", "from", "description"], [list(r) for r in rows]) if rows else "(none)"
            parts += [f"{group}:", body]
            parts += [f"  broken: {name}: {why}" for name, why in self.broken[group].items()]
            parts.append("")
        return "\n".join(parts).rstrip()

    def _repr_html_(self) -> str:
        parts = []
        for group, rows in self.groups.items():
            parts.append(html_table(["name", "from", "description"], [list(r) for r in rows], group))
            parts += [f"<p>broken {html.escape(group)} plugin <b>{html.escape(name)}</b>: "
                      f"{html.escape(why)}</p>" for name, why in self.broken[group].items()]
        return "\n".join(parts)


def _describe(kind: str, obj) -> str:
    if kind == "activations":
        import sympy as sp

        return f"f(a) = {obj.symbolic(sp.Symbol('a'))}"
    text = getattr(obj, "description", "") or getattr(obj, "title", "")
    return text if isinstance(text, str) else ""


def plugin_list() -> PluginList:
    """Every registered cell, activation, loss and exercise pack, with its origin and description."""
    groups, broken = {}, {}
    for kind, reg in registry.ALL.items():
        title = "exercise packs" if kind == "exercises" else kind
        groups[title] = [(name, reg.origins.get(name, ""), _describe(kind, obj)) for name, obj in reg.items()]
        broken[title] = dict(reg.broken)
    return PluginList(groups, broken)
