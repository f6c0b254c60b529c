"""The stepper: watch one pass of BPTT, forward then backward, one event at a time.

``Stepper(net, xs, targets)`` (or ``%bptt step net xs ys``) shows the unfolded network with the current
step highlighted, the numbers of that step, and in the backward phase the symbolic term of the step next
to its numeric value. Play, Prev/Next and the slider move through the events of
:class:`~bpttlab.widgets.stepper_model.StepperModel`; the menus choose the parameter followed and the
truncation k2. The widget is a thin view: every number comes from the model.
"""
from __future__ import annotations

import ipywidgets as widgets

from ..network import Network
from .events import BACKWARD
from .formatting import escape
from .panel import numbers_html
from .stepper_model import StepperModel
from .symbolic_term import symbolic_html
from .unfolded import unfolded_svg
from .view import View


class Stepper(View):
    """Step through the forward and backward passes of BPTT on one sequence.

    Args:
        net: the network (its parameters are copied).
        xs: one input sequence (T, D); targets: its targets.
        wrt: the parameter whose gradient the backward pass follows (default: W).
        k2: truncation, None for full BPTT.
        loss, reduction, h0: as for :func:`bpttlab.bptt`.
        interval: milliseconds between events when playing.

    Attributes:
        model: the :class:`StepperModel` behind the view.
        play, slider, prev_button, next_button, wrt_menu, k2_menu: the controls.
        title, drawing, numbers, symbolic: the HTML parts; errors: the Output for callback errors.

    Example:
        >>> import numpy as np, bpttlab as bl
        >>> net = bl.make("elman", n_in=1, n_hidden=2, n_out=1, seed=0)
        >>> s = Stepper(net, np.ones((3, 1)), np.zeros((3, 1)))
        >>> s.next_button.click(); s
        Stepper(elman, T=3, H=2: event 2/7 forward t=2; wrt=W, k2=full)
    """

    def __init__(self, net: Network, xs, targets, *, wrt: str | None = None, k2: int | None = None,
                 loss="mse", reduction: str = "sum", h0=None, interval: int = 900):
        self.model = StepperModel(net, xs, targets, wrt=wrt, k2=k2, loss=loss, reduction=reduction, h0=h0)
        m = self.model
        last = len(m.events) - 1
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=interval, description="Play")
        self.slider = widgets.IntSlider(value=0, min=0, max=last, description="event", readout=False,
                                        continuous_update=True)
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.prev_button = widgets.Button(description="Prev", icon="step-backward", tooltip="previous event",
                                          layout=widgets.Layout(width="6em"))
        self.next_button = widgets.Button(description="Next", icon="step-forward", tooltip="next event",
                                          layout=widgets.Layout(width="6em"))
        k2_options = [("full", None)] + [(str(k), k) for k in range(1, m.T + 1)]
        if m.k2 is not None and m.k2 > m.T:
            k2_options.append((str(m.k2), m.k2))
        self.wrt_menu = widgets.Dropdown(options=m.parameters, value=m.wrt, description="parameter",
                                         layout=widgets.Layout(width="14em"))
        self.k2_menu = widgets.Dropdown(options=k2_options, value=m.k2, description="k2",
                                        layout=widgets.Layout(width="10em"))
        self.title = widgets.HTML()
        self.drawing = widgets.HTML(layout=widgets.Layout(overflow="auto"))
        self.numbers = widgets.HTML()
        self.symbolic = widgets.HTMLMath()

        self.slider.observe(self.guard(self._on_slider), names="value")
        self.prev_button.on_click(self.guard(lambda _: self._move(-1)))
        self.next_button.on_click(self.guard(lambda _: self._move(+1)))
        self.wrt_menu.observe(self.guard(self._on_wrt), names="value")
        self.k2_menu.observe(self.guard(self._on_k2), names="value")

        controls = widgets.HBox([self.play, self.prev_button, self.next_button, self.slider, self.wrt_menu,
                                 self.k2_menu])
        self.numbers.layout.margin = "0 2em 0 0"
        body = widgets.HBox([self.numbers, self.symbolic])
        super().__init__([controls, self.title, self.drawing, body])
        self.add_class("bpttlab-stepper")
        self.refresh()

    # -- callbacks -----------------------------------------------------------------------------------
    def _move(self, delta: int) -> None:
        self.slider.value = min(max(self.model.position + delta, 0), self.slider.max)

    def _on_slider(self, change) -> None:
        self.model.goto(change["new"])
        self.refresh()

    def _on_wrt(self, change) -> None:
        self.model.wrt = change["new"]
        self.refresh()

    def _on_k2(self, change) -> None:
        self.model.k2 = change["new"]
        self.refresh()

    # -- drawing -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw every part from the model."""
        m = self.model
        frame = m.frame()
        self.prev_button.disabled = m.at_start
        self.next_button.disabled = m.at_end
        self.title.value = self._title_html()
        self.drawing.value = unfolded_svg(m)
        self.numbers.value = numbers_html(m, frame)
        self.symbolic.value = symbolic_html(m, frame) if frame.event.phase == BACKWARD else ""

    def _title_html(self) -> str:
        m = self.model
        return (f'<b class="bpttlab-event">{escape(m.event.label)}</b> &nbsp; event {m.position + 1} of '
                f'{len(m.events)}')

    def static_html(self) -> str:
        """The current event as static HTML: title, drawing, numbers and symbolic term."""
        m = self.model
        frame = m.frame()
        parts = [self._title_html(), f'<div style="overflow-x:auto">{unfolded_svg(m)}</div>',
                 numbers_html(m, frame)]
        if frame.event.phase == BACKWARD:
            parts.append(symbolic_html(m, frame))
        return '<div class="bpttlab-stepper">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>"

    def __repr__(self) -> str:
        m = self.model
        k2 = "full" if m.k2 is None else m.k2
        return (f"Stepper({m.net.cell.name}, T={m.T}, H={m.net.n_hidden}: event {m.position + 1}/"
                f"{len(m.events)} {m.event.label}; wrt={m.wrt}, k2={k2})")
