"""The gradient-flow map: how much of each loss reaches each earlier step, under live controls.

``GradientFlow()`` draws a random network; ``GradientFlow(net=net, xs=xs, targets=ys)`` (or ``%bptt flow
net xs ys``) uses yours. Turning the spectral radius, the activation, the initialisation, the clipping
or the truncation redraws the T x T map of :class:`~bpttlab.widgets.flow_model.FlowModel` at once, so
vanishing and exploding gradients are seen as the colours fade or flare away from the diagonal.
"""
from __future__ import annotations

import ipywidgets as widgets

from .. import registry
from ..network import INITS
from .flow_model import FlowModel
from .formatting import escape
from .heatmap import heatmap_svg
from .view import View

CLIP_MODES = ("none", "norm", "value", "step")


class GradientFlow(View):
    """The T x T map of ||dE_t/ds_k|| (or ||ds_t/ds_k||) with controls.

    Args:
        net, xs, targets: a network and one sequence with its targets, or none of them (a random
            network and sequence are drawn).
        **settings: for :class:`FlowModel` (loss, reduction, radius, activation, init, clip, measure,
            k2, and cell, T, n_hidden, seed for a random network).

    Attributes:
        model: the :class:`FlowModel` behind the view.
        radius, activation, init, clip_mode, tau, measure, k2_menu: the controls.
        heatmap, summary: the HTML parts; errors: the Output for callback errors.

    Example:
        >>> flow = GradientFlow(T=10, n_hidden=4, radius=0.5)
        >>> flow.radius.value = 1.5
        >>> flow.model.settings.radius
        1.5
    """

    def __init__(self, net=None, xs=None, targets=None, **settings):
        self.model = FlowModel(net, xs, targets, **settings)
        s = self.model.settings
        tau = s.clip[1] if s.clip else 1.0
        self.radius = widgets.FloatSlider(value=s.radius, min=0.0, max=max(2.0, round(1.5 * s.radius, 2)),
                                          step=0.01, description="radius", continuous_update=False,
                                          readout_format=".2f")
        self.activation = widgets.Dropdown(options=registry.activations.names(), value=s.activation,
                                           description="activation", layout=widgets.Layout(width="14em"))
        inits = ([("as given", None)] if s.init is None else []) + [(name, name) for name in INITS]
        self.init = widgets.Dropdown(options=inits, value=s.init, description="init",
                                     layout=widgets.Layout(width="14em"))
        self.clip_mode = widgets.Dropdown(options=CLIP_MODES, value=s.clip[0] if s.clip else "none",
                                          description="clip", layout=widgets.Layout(width="12em"))
        self.tau = widgets.FloatLogSlider(value=tau, base=10, min=-3, max=3, step=0.1, description="tau",
                                          continuous_update=False, readout_format=".3g")
        sym = self.model.base.cell.state_symbol
        self.measure = widgets.ToggleButtons(options=[(f"|dE_t/d{sym}_k|", "loss"), (f"|d{sym}_t/d{sym}_k|", "state")],
                                             value=s.measure, description="map")
        k2_options = [("full", None)] + [(str(k), k) for k in range(1, self.model.T + 1)]
        if s.k2 is not None and s.k2 > self.model.T:
            k2_options.append((str(s.k2), s.k2))
        self.k2_menu = widgets.Dropdown(options=k2_options, value=s.k2, description="k2",
                                        layout=widgets.Layout(width="10em"))
        self.heatmap = widgets.HTML()
        self.summary = widgets.HTML()
        for control in (self.radius, self.activation, self.init, self.clip_mode, self.tau, self.measure,
                        self.k2_menu):
            control.observe(self.guard(self._on_change), names="value")
        rows = [widgets.HBox([self.radius, self.activation, self.init]),
                widgets.HBox([self.clip_mode, self.tau, self.k2_menu]), self.measure,
                self.summary, self.heatmap]
        super().__init__(rows)
        self.add_class("bpttlab-gradient-flow")
        self.refresh()

    def _on_change(self, _change) -> None:
        mode = self.clip_mode.value
        self.model.update(radius=self.radius.value, activation=self.activation.value, init=self.init.value,
                          clip=None if mode == "none" else (mode, self.tau.value), measure=self.measure.value,
                          k2=self.k2_menu.value)
        self.refresh()

    def refresh(self) -> None:
        """Redraw the map and the summary from the model."""
        self.heatmap.value = heatmap_svg(self.model.map.norms, self.model.symbol())
        self.summary.value = f'<div class="bpttlab-flow-summary">{escape(self.model.summary())}</div>'

    def static_html(self) -> str:
        """The map and its summary as static HTML."""
        return (f'<div class="bpttlab-gradient-flow"><div>{escape(self.model.summary())}</div>'
                f"<div>{heatmap_svg(self.model.map.norms, self.model.symbol())}</div></div>")

    def __repr__(self) -> str:
        m = self.model
        s = m.settings
        clip = "none" if s.clip is None else f"{s.clip[0]}:{s.clip[1]:.3g}"
        return (f"GradientFlow({m.base.cell.name}, T={m.T}, H={m.base.n_hidden}: {m.symbol()}, radius "
                f"{s.radius:.3g}, {s.activation}, init {s.init or 'as given'}, clip {clip}, k2 {s.k2 or 'full'})")
