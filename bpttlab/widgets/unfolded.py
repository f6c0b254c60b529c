"""The unfolded network as SVG: one column per time step, the current event highlighted.

Rows, top to bottom: the losses E_t, the outputs o_t, the hidden states h_t and the inputs x_t; edges U
(x_t -> h_t), W (the previous state -> h_t: h_{t-1} for Elman, o_{t-1} for Jordan), V (h_t -> o_t) and
the loss edge o_t -> E_t. Column 0 holds the initial state. Values computed so far are written beside
their nodes (forward values above, gradients dE/ds_k below in blue); the truncation window is shaded.

The current column is the group of class ``bpttlab-current`` with ``data-phase``, ``data-step`` and
``data-position`` attributes, which is what the browser test reads.
"""
from __future__ import annotations

from .events import BACKWARD, FORWARD, LOSSES
from .formatting import compact, escape
from .stepper_model import StepperModel

COLUMN = 130
MARGIN = 60
RADIUS = 17
ROWS = {"E": 40, "o": 115, "h": 195, "x": 275}
HEIGHT = 320
FORWARD_COLOUR = "#e69500"
BACKWARD_COLOUR = "#1f77b4"
IDLE = "#555555"
FUTURE = "#c8c8c8"
PARAM_COLOUR = "#9467bd"


_MARKERS = {"bl-arrow": IDLE, "bl-arrow-f": FUTURE, "bl-arrow-o": FORWARD_COLOUR, "bl-arrow-b": BACKWARD_COLOUR,
            "bl-arrow-p": PARAM_COLOUR}


def parameter_place(model: StepperModel, name: str) -> str:
    """Where a parameter sits in the drawing: the edge "U", "W" or "V" it multiplies along, or the node
    row "h" / "o" whose bias it is, from the sites of the cell's compiled kernels; a cell without them
    is placed by its names (recurrent matrices on W, U*, V* on their edges, the output bias c on o)."""
    cell = model.net.cell
    if cell.kernels is None:
        if name in cell.recurrent:
            return "W"
        return {"U": "U", "V": "V"}.get(name[:1], "o" if name == "c" else "h")
    site, inp = cell.kernels.param_sites()[name]
    if inp == "x":
        return "U"
    if inp is not None and inp.endswith("_prev"):
        return "W"
    if inp is not None:
        return "V"
    return "o" if site == "o" else "h"


def _cx(j: int) -> float:
    return MARGIN + COLUMN * j + COLUMN / 2


def _node(row: str, j: int, state: str, value: str = "", grad: str = "") -> str:
    x, y = _cx(j), ROWS[row]
    stroke, fill, width = {
        "idle": (IDLE, "#ffffff", 1.5), "done": (IDLE, "#eef3fb", 1.5), "future": (FUTURE, "#ffffff", 1),
        "forward": (FORWARD_COLOUR, "#ffe2a8", 3), "backward": (BACKWARD_COLOUR, "#cfe6fb", 3)}[state]
    ink = FUTURE if state == "future" else "#222222"
    out = [f'<g class="bpttlab-node" data-node="{row}{j}">',
           f'<circle cx="{x:g}" cy="{y:g}" r="{RADIUS}" fill="{fill}" stroke="{stroke}" stroke-width="{width:g}"/>',
           f'<text x="{x:g}" y="{y + 4:g}" text-anchor="middle" font-size="13" fill="{ink}" '
           f'font-style="italic">{row}<tspan font-size="9" dy="4">{j}</tspan></text>']
    if value:
        out.append(f'<text x="{x + RADIUS - 2:g}" y="{y - RADIUS - 1:g}" font-size="9.5" fill="#333333">'
                   f'{escape(value)}</text>')
    if grad:
        out.append(f'<text x="{x + RADIUS - 2:g}" y="{y + RADIUS + 10:g}" font-size="9.5" '
                   f'fill="{BACKWARD_COLOUR}">{escape(grad)}</text>')
    out.append("</g>")
    return "".join(out)


def _edge(a: tuple[str, int], b: tuple[str, int], label: str, state: str) -> str:
    (ra, ja), (rb, jb) = a, b
    x1, y1, x2, y2 = _cx(ja), ROWS[ra], _cx(jb), ROWS[rb]
    dx, dy = x2 - x1, y2 - y1
    n = (dx * dx + dy * dy) ** 0.5
    ux, uy = dx / n, dy / n
    x1, y1, x2, y2 = x1 + ux * RADIUS, y1 + uy * RADIUS, x2 - ux * (RADIUS + 2), y2 - uy * (RADIUS + 2)
    colour, width, marker = {"idle": (IDLE, 1.2, "bl-arrow"), "future": (FUTURE, 1, "bl-arrow-f"),
                             "forward": (FORWARD_COLOUR, 3, "bl-arrow-o"), "backward": (BACKWARD_COLOUR, 3, "bl-arrow-b"),
                             "param": (PARAM_COLOUR, 4, "bl-arrow-p")}[state]
    # the gradient flows against the edge: a backward edge points from its head to its tail
    ends = (x2, y2, x1, y1) if state == "backward" else (x1, y1, x2, y2)
    if state == "backward":
        ends = (ends[0] - ux * 2, ends[1] - uy * 2, ends[2] - ux * 2, ends[3] - uy * 2)
    out = (f'<line class="bpttlab-edge" data-edge="{label}{jb}" x1="{ends[0]:.1f}" y1="{ends[1]:.1f}" '
           f'x2="{ends[2]:.1f}" y2="{ends[3]:.1f}" stroke="{colour}" stroke-width="{width:g}" '
           f'marker-end="url(#{marker})"/>')
    if label in ("U", "W", "V"):
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        off = (-11, -4) if label != "W" else (-3, 13)
        out += (f'<text x="{mx + off[0]:.1f}" y="{my + off[1]:.1f}" font-size="10" font-style="italic" '
                f'fill="{colour}">{label}</text>')
    return out


def unfolded_svg(model: StepperModel) -> str:
    """The drawing of the model's pass at its current event, as an SVG string."""
    T, e, frame = model.T, model.event, model.frame()
    state_row = "o" if model.net.cell.state_symbol == "o" else "h"
    numbers = model.result
    tr = numbers.trace
    grads = model.state_gradients
    place = parameter_place(model, model.wrt)
    width = MARGIN + COLUMN * (T + 1) + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bpttlab-unfolded" width="{width}" '
             f'height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif">',
             '<defs>', *(f'<marker id="{m}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" '
                         f'markerWidth="9" markerHeight="9" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
                         f'fill="{c}"/></marker>' for m, c in _MARKERS.items()),
             '</defs>']
    for row, y in ROWS.items():
        parts.append(f'<text x="8" y="{y + 4}" font-size="12" fill="#666666">{row}</text>')
    if frame.window is not None:
        lo, hi = frame.window
        x0 = _cx(lo) - COLUMN / 2 + 4
        parts.append(f'<g class="bpttlab-window" data-lo="{lo}" data-hi="{hi}"><rect x="{x0:g}" y="6" '
                     f'width="{COLUMN * (hi - lo + 1) - 8:g}" height="{HEIGHT - 12}" rx="8" fill="#7f7f7f" '
                     f'fill-opacity="0.13"/><text x="{x0 + 6:g}" y="19" font-size="10" fill="#555555">'
                     f'k2 = {model.k2}</text></g>')
    if e.phase == LOSSES:
        x0, y0 = _cx(1) - COLUMN / 2 + 2, ROWS["E"] - RADIUS - 6
        box = f'x="{x0:g}" y="{y0:g}" width="{COLUMN * T - 4:g}" height="{2 * RADIUS + 12}"'
    else:
        box = f'x="{_cx(e.step) - COLUMN / 2 + 2:g}" y="2" width="{COLUMN - 4}" height="{HEIGHT - 4}"'
    colour = BACKWARD_COLOUR if e.phase == BACKWARD else FORWARD_COLOUR
    parts.append(f'<g class="bpttlab-current" data-phase="{e.phase}" data-step="{e.step}" '
                 f'data-position="{model.position}"><rect {box} rx="8" fill="{colour}" fill-opacity="0.08" '
                 f'stroke="{colour}" stroke-dasharray="4 3"/></g>')
    # edges first, so that the nodes are drawn over them
    for t in range(1, T + 1):
        parts.append(_edge((state_row, t - 1), ("h", t), "W", _edge_state("W", t, e, place)))
        parts.append(_edge(("x", t), ("h", t), "U", _edge_state("U", t, e, place)))
        parts.append(_edge(("h", t), ("o", t), "V", _edge_state("V", t, e, place)))
        parts.append(_edge(("o", t), ("E", t), "L", _edge_state("L", t, e, place)))
    parts.append(_node(state_row, 0, "done", compact(tr.states[0])))
    for t in range(1, T + 1):
        done = e.phase != FORWARD or t <= e.step
        for row in ("x", "h", "o"):
            value = {"x": model.xs[t - 1], "h": tr.h[t], "o": tr.outputs[t - 1]}[row]
            reached = row == state_row and e.phase == BACKWARD and t >= e.step
            parts.append(_node(row, t, _node_state(row, t, e, done), compact(value) if done else "",
                               compact(grads[:, t - 1].sum(axis=0)) if reached else ""))
        known = e.phase != FORWARD
        parts.append(_node("E", t, _node_state("E", t, e, known), compact(numbers.losses[t - 1]) if known else ""))
    parts.append(f'<text x="{width - 10}" y="{HEIGHT - 6}" text-anchor="end" font-size="10" fill="#666666">'
                 f'black: values; <tspan fill="{BACKWARD_COLOUR}">blue: ∂E/∂{state_row}_k</tspan>; '
                 f'<tspan fill="{PARAM_COLOUR}">purple: {escape(model.wrt)} at copy k</tspan></text>')
    parts.append("</svg>")
    return "".join(parts)


def _node_state(row: str, t: int, e, done: bool) -> str:
    if e.phase == FORWARD:
        if t == e.step and row in ("x", "h", "o"):
            return "forward"
        return "done" if done else "future"
    if e.phase == LOSSES:
        return "forward" if row == "E" else "done"
    if t == e.step and row in ("h", "o", "E"):
        return "backward"
    return "done"


def _edge_state(label: str, t: int, e, place: str) -> str:
    if e.phase == FORWARD:
        if t == e.step and label != "L":
            return "forward"
        return "idle" if t < e.step else "future"
    if e.phase == LOSSES:
        return "forward" if label == "L" else "idle"
    k = e.step
    if t == k and label == place:
        return "param"
    if (t == k and label in ("V", "L")) or (t == k + 1 and label == "W"):
        return "backward"
    return "idle"
