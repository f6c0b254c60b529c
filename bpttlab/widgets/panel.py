"""The numbers of the current event as an HTML table (beside the drawing of the stepper)."""
from __future__ import annotations

from .formatting import array_html, escape, number
from .stepper_model import BackwardNumbers, ForwardNumbers, Frame, LossNumbers, StepperModel


def _rows(rows: list[tuple[str, str]]) -> str:
    body = "".join(f'<tr><th style="text-align:left;padding:2px 10px 2px 0;font-weight:normal">{label}</th>'
                   f'<td style="padding:2px 0">{value}</td></tr>' for label, value in rows)
    return f'<table class="bpttlab-numbers" style="border-collapse:collapse">{body}</table>'


def numbers_html(model: StepperModel, frame: Frame) -> str:
    """The table for ``frame``: inputs and activities going forward, the losses, and going backward
    the state gradient (direct + carry), the explicit and implicit contributions and the running
    gradients."""
    n = frame.numbers
    s = escape(model.net.cell.state_symbol)
    if isinstance(n, ForwardNumbers):
        t = n.t
        rows = [(f"x<sub>{t}</sub>", array_html(n.x)), (f"h<sub>{t}</sub>", array_html(n.h))]
        if s != "h" and s != "o":
            rows.append((f"{s}<sub>{t}</sub>", array_html(n.state)))
        rows.append((f"o<sub>{t}</sub>", array_html(n.output)))
        return _rows(rows)
    if isinstance(n, LossNumbers):
        rows = [(f"E<sub>{t}</sub>", array_html(v)) for t, v in enumerate(n.losses, start=1)]
        rows.append(("E", f"<b>{number(n.loss)}</b>"))
        return _rows(rows)
    assert isinstance(n, BackwardNumbers)
    k, w = n.k, escape(n.wrt)
    rows = [
        (f"&part;E/&part;{s}<sub>{k}</sub>", array_html(n.dE_ds)),
        (f"&nbsp;&nbsp;direct &part;E<sub>{k}</sub>/&part;{s}<sub>{k}</sub>", array_html(n.direct)),
        ("&nbsp;&nbsp;carry from later steps", array_html(n.carry)),
        (f"explicit C[{k}][{k}] for {w}", array_html(n.explicit)),
        (f"implicit &sum;<sub>t&gt;{k}</sub> C[t][{k}]", array_html(n.implicit)),
        (f"copy {k} of {w}: by_copy[{k}]", array_html(n.copy_grad)),
    ]
    rows += [(f"running &part;E/&part;{escape(name)}", array_html(g)) for name, g in n.running.items()]
    return _rows(rows)

