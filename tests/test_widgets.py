"""The widgets' models against the engine and independent references, and the views without a browser."""
from __future__ import annotations

import re
from dataclasses import fields

import numpy as np
import pytest

import bpttlab as bl
import naive
from bpttlab.widgets import FlowModel, GradientFlow, Stepper, StepperModel, pass_events
from bpttlab.widgets.events import BACKWARD, FORWARD, LOSSES
from bpttlab.widgets.formatting import compact, number
from bpttlab.widgets.heatmap import colour
from bpttlab.widgets.stepper_model import BackwardNumbers, ForwardNumbers, LossNumbers
from bpttlab.widgets.unfolded import unfolded_svg


def _case(cell="elman", T=5, D=1, H=2, O=1, seed=0, activation="tanh"):
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation=activation, seed=seed)
    rng = np.random.default_rng(seed + 10)
    for name, p in net.params.items():
        if p.ndim == 1:
            net.params[name] = rng.normal(scale=0.3, size=p.shape)
    return net, rng.normal(size=(T, D)), rng.normal(size=(T, O))


def _frames(model):
    model.goto(0)
    out = [model.frame()]
    while model.next():
        out.append(model.frame())
    return out


def _same(a, b) -> bool:
    """Deep equality of frames and numbers, arrays compared exactly."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    return a == b


# -- events --------------------------------------------------------------------------------------------


def test_a_pass_is_forward_then_the_losses_then_backward():
    events = pass_events(4)
    assert [(e.phase, e.step) for e in events] == (
        [(FORWARD, t) for t in (1, 2, 3, 4)] + [(LOSSES, 4)] + [(BACKWARD, k) for k in (4, 3, 2, 1)])
    assert events[0].label == "forward t=1" and events[4].label == "losses" and events[-1].label == "backward k=1"


# -- the stepper's model -------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["elman", "jordan"])
@pytest.mark.parametrize("k2", [None, 2])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_stepping_through_a_pass_reproduces_the_engine(cell, k2, reduction):
    net, xs, ys = _case(cell, T=5, H=3, O=2, D=2, seed=1)
    model = StepperModel(net, xs, ys, k2=k2, reduction=reduction)
    res = bl.bptt(net, xs, ys, k2=k2, reduction=reduction)
    tr = bl.forward(net, xs)
    frames = _frames(model)
    assert len(frames) == 11
    for wrt in model.parameters:
        model.wrt = wrt
        C = bl.contributions(net, xs, ys, wrt, k2=k2, reduction=reduction)
        for pos in range(6, 11):
            model.goto(pos)
            n = model.frame().numbers
            k = n.k
            np.testing.assert_array_equal(n.copy_grad, res.by_copy[wrt][k - 1])
            np.testing.assert_array_equal(n.explicit, C[k - 1, k - 1])
            np.testing.assert_allclose(n.explicit + n.implicit, res.by_copy[wrt][k - 1], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(n.implicit, C[k:, k - 1].sum(axis=0), rtol=1e-12, atol=1e-15)
    for f in frames[:5]:
        n = f.numbers
        assert isinstance(n, ForwardNumbers)
        t = n.t
        np.testing.assert_array_equal(n.x, xs[t - 1])
        np.testing.assert_array_equal(n.h, tr.h[t])
        np.testing.assert_array_equal(n.state, tr.states[t])
        np.testing.assert_array_equal(n.output, tr.outputs[t - 1])
    assert isinstance(frames[5].numbers, LossNumbers)
    np.testing.assert_array_equal(frames[5].numbers.losses, res.losses)
    assert frames[5].numbers.loss == res.loss
    last = frames[-1].numbers
    assert isinstance(last, BackwardNumbers) and last.k == 1
    for name, g in res.grads.items():
        np.testing.assert_allclose(last.running[name], g, rtol=1e-12, atol=1e-14)


def test_the_backward_state_gradient_is_the_textbook_one():
    """Elman, against tests/naive.py: dE/dh_k = V^T dE_k/do_k + W^T (f'(a_{k+1}) * dE/dh_{k+1})."""
    net, xs, ys = _case("elman", T=5, H=3, seed=2)
    model = StepperModel(net, xs, ys)
    p = net.params
    tr = naive.forward("elman", "tanh", [p] * 5, xs[:, None], np.zeros((1, 3)))
    dO = naive.loss_grads("mse", tr.o, ys[:, None])[:, 0]
    carry = np.zeros(3)
    for pos in range(6, 11):
        model.goto(pos)
        n = model.frame().numbers
        k = n.k
        np.testing.assert_allclose(n.direct, p["V"].T @ dO[k - 1], rtol=1e-13)
        np.testing.assert_allclose(n.carry, carry, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(n.dE_ds, n.direct + n.carry, rtol=1e-15)
        carry = p["W"].T @ ((1.0 - tr.h[k - 1, 0] ** 2) * n.dE_ds)


@pytest.mark.parametrize("k2", [1, 2, 3])
def test_the_truncation_window_matches_k2(k2):
    net, xs, ys = _case("elman", T=6, H=2, seed=3)
    model = StepperModel(net, xs, ys, k2=k2)
    full = bl.contributions(net, xs, ys, "W")
    cut = model.contributions("U")  # U (not W, whose first copy multiplies h_0 = 0) has no zero term
    for t in range(1, 7):
        for k in range(1, 7):
            inside = t - k2 < k <= t
            assert np.any(cut[t - 1, k - 1] != 0.0) == inside
    for f in _frames(model):
        lo, hi = f.window
        e = f.event
        if e.phase == BACKWARD:
            assert (lo, hi) == (e.step, min(6, e.step + k2 - 1))
            n = f.numbers
            np.testing.assert_allclose(n.implicit, full[lo:hi, lo - 1].sum(axis=0), rtol=1e-12, atol=1e-15)
        else:
            assert (lo, hi) == (max(1, e.step - k2 + 1), e.step)
            assert hi - lo + 1 == min(k2, e.step)
    model.k2 = None
    assert model.window is None


def test_prev_after_next_returns_to_the_same_state():
    net, xs, ys = _case("jordan", T=4, seed=4)
    model = StepperModel(net, xs, ys, k2=2, wrt="V")
    for pos in range(len(model.events) - 1):
        model.goto(pos)
        before = model.frame()
        assert model.next()
        assert not _same(model.frame(), before)
        assert model.prev()
        assert _same(model.frame(), before)
    model.goto(0)
    assert not model.prev() and model.position == 0
    model.goto(len(model.events) - 1)
    assert not model.next() and model.at_end


def test_changing_k2_or_the_parameter_recomputes_from_the_engine():
    net, xs, ys = _case("elman", T=5, seed=5)
    model = StepperModel(net, xs, ys)
    model.goto(7)
    model.k2 = 2
    model.wrt = "U"
    n = model.frame().numbers
    res = bl.bptt(net, xs, ys, k2=2)
    np.testing.assert_array_equal(n.copy_grad, res.by_copy["U"][n.k - 1])
    assert model.position == 7


def test_the_model_keeps_its_own_copy_of_the_network():
    net, xs, ys = _case("elman", seed=6)
    model = StepperModel(net, xs, ys)
    before = model.frame()
    net.params["W"][:] = 0.0
    model.k2 = 3
    model.k2 = None
    assert _same(model.frame(), before)


def test_bad_stepper_inputs_are_named():
    net, xs, ys = _case("elman", T=3)
    with pytest.raises(ValueError, match="one sequence"):
        StepperModel(net, np.stack([xs, xs], axis=1), np.stack([ys, ys], axis=1))
    with pytest.raises(ValueError, match="wrt must be one of the parameters W, U, b, V, c"):
        StepperModel(net, xs, ys, wrt="Q")
    with pytest.raises(ValueError, match="k2"):
        StepperModel(net, xs, ys, k2=0)
    model = StepperModel(net, xs, ys)
    with pytest.raises(ValueError, match="position must be between 0 and 6"):
        model.goto(7)
    with pytest.raises(TypeError, match="position"):
        model.goto(1.5)
    with pytest.raises(ValueError, match="k2"):
        model.k2 = -1
    assert model.k2 is None


# -- the drawing ---------------------------------------------------------------------------------------


def _current(svg: str) -> tuple[str, int]:
    m = re.search(r'class="bpttlab-current" data-phase="(\w+)" data-step="(\d+)"', svg)
    return m.group(1), int(m.group(2))


def test_the_drawing_highlights_the_current_event_and_shades_the_window():
    net, xs, ys = _case("elman", T=4, seed=7)
    model = StepperModel(net, xs, ys, k2=2)
    seen = []
    for pos in range(len(model.events)):
        model.goto(pos)
        f = model.frame()
        svg = unfolded_svg(model)
        assert svg.count('class="bpttlab-current"') == 1
        seen.append(_current(svg))
        lo, hi = f.window
        assert f'class="bpttlab-window" data-lo="{lo}" data-hi="{hi}"' in svg
        assert svg.count('class="bpttlab-node"') == 1 + 4 * 4
    assert seen == [(e.phase, e.step) for e in model.events]
    model.goto(3)
    svg = unfolded_svg(model)
    assert compact(bl.forward(net, xs).h[4]) in svg
    assert compact(bl.forward(net, xs).outputs[3]) in svg


def test_formatting_is_deterministic():
    assert number(-0.0) == "0" and number(1e-20) == "1e-20" and number(np.nan) == "nan"
    assert compact([1.0, -2.5]) == "[1, -2.5]"
    assert compact(np.ones(4)) == "|.|=2"
    assert colour(np.nan) == "none" and colour(np.inf) == "#000000"
    assert colour(1e-9) == colour(1e-8) != colour(1.0) != colour(1e8) == colour(1e9)


# -- the gradient-flow model ---------------------------------------------------------------------------


def test_the_flow_network_gets_the_spectral_radius_asked_for():
    for init in ("normal", "orthogonal", "identity"):
        m = FlowModel(T=6, n_hidden=5, radius=0.7, init=init)
        net = m.network()
        assert net.spectral_radius("W") == pytest.approx(0.7, rel=1e-12)
    m = FlowModel(T=6, n_hidden=5, radius=1.3, init="identity")
    np.testing.assert_allclose(m.network().params["W"], 1.3 * np.eye(5), rtol=1e-15)


@pytest.mark.parametrize("radius", [0.6, 1.0, 1.4])
def test_a_linear_orthogonal_network_scales_by_the_radius_per_step(radius):
    """Identity activation, W = r Q with Q orthogonal: ||dh_t/dh_k|| = r^(t-k) exactly."""
    m = FlowModel(T=8, n_hidden=4, radius=radius, activation="identity", init="orthogonal", measure="state")
    t, k = np.indices((8, 8))
    expected = np.where(k <= t, radius ** (t - k).astype(float), np.nan)
    np.testing.assert_allclose(m.map.norms, expected, rtol=1e-12)
    np.testing.assert_allclose(m.lags(), radius ** np.arange(8.0), rtol=1e-12)


def test_the_loss_map_is_the_norm_of_the_textbook_state_gradients():
    net, xs, ys = _case("elman", T=6, H=3, seed=8)
    m = FlowModel(net, xs, ys)
    assert m.settings.radius == pytest.approx(net.spectral_radius("W"), rel=1e-15)
    p = m.network().params
    tr = naive.forward("elman", "tanh", [p] * 6, xs[:, None], np.zeros((1, 3)))
    dO = naive.loss_grads("mse", tr.o, ys[:, None])[:, 0]
    for t in range(6):
        g = p["V"].T @ dO[t]
        for k in range(t, -1, -1):
            assert m.map.norms[t, k] == pytest.approx(np.linalg.norm(g), rel=1e-12)
            g = p["W"].T @ ((1.0 - tr.h[k, 0] ** 2) * g)
        assert np.all(np.isnan(m.map.norms[t, t + 1:]))


def test_clipping_and_truncation_change_the_map_as_documented():
    m = FlowModel(T=10, n_hidden=6, radius=1.8, activation="identity", init="orthogonal", seed=1)
    free = m.map.norms.copy()
    norm = m.map.result.grad_norm
    m.update(clip=("norm", norm / 10))
    np.testing.assert_allclose(m.map.norms, free / 10, rtol=1e-12)
    m.update(clip=("value", 1e-3))
    np.testing.assert_array_equal(m.map.norms, free)
    assert np.max(np.abs(m.map.result.grads["W"])) <= 1e-3
    m.update(clip=("step", 1.0))
    assert np.nanmax(m.map.norms) <= 1.0 + 1e-12
    m.update(clip=None, k2=3)
    t, k = np.indices((10, 10))
    inside = (k <= t) & (k > t - 3)
    assert np.all(np.isnan(m.map.norms[~inside]))
    np.testing.assert_array_equal(m.map.norms[inside], free[inside])


def test_a_bad_flow_setting_is_refused_and_the_model_is_unchanged():
    m = FlowModel(T=5, n_hidden=3)
    before = (m.settings, m.map)
    with pytest.raises(ValueError, match="radius"):
        m.update(radius=-1.0)
    with pytest.raises(ValueError, match="init must be one of normal, orthogonal, identity"):
        m.update(init="zeros")
    with pytest.raises(ValueError, match="measure"):
        m.update(measure="energy")
    with pytest.raises(TypeError, match="unknown setting"):
        m.update(colour="red")
    with pytest.raises(ValueError, match="activation"):
        m.update(activation="softsign")
    assert (m.settings, m.map) == before
    with pytest.raises(ValueError, match="net, xs and targets together"):
        FlowModel(net=bl.make("elman"))
    gru = FlowModel(cell="gru", T=4, n_hidden=2)
    with pytest.raises(ValueError, match="tanh"):
        gru.update(activation="relu")


# -- the views -----------------------------------------------------------------------------------------


def test_the_stepper_view_reacts_to_next_prev_and_its_menus():
    net, xs, ys = _case("elman", T=4, seed=9)
    s = Stepper(net, xs, ys)
    assert repr(s) == "Stepper(elman, T=4, H=2: event 1/9 forward t=1; wrt=W, k2=full)"
    assert _current(s.drawing.value) == ("forward", 1) and s.prev_button.disabled
    s.next_button.click()
    assert s.model.position == 1 and s.slider.value == 1
    assert _current(s.drawing.value) == ("forward", 2)
    s.slider.value = 6
    assert _current(s.drawing.value) == ("backward", 3)
    assert "C[3][3]" in s.numbers.value and "running" in s.numbers.value
    assert "C[3][3]" in s.symbolic.value and "agree to within" in s.symbolic.value
    s.prev_button.click()
    assert _current(s.drawing.value) == ("backward", 4)
    s.k2_menu.value = 2
    assert 'data-lo="4" data-hi="4"' in s.drawing.value and s.model.k2 == 2
    s.wrt_menu.value = "U"
    assert s.model.wrt == "U" and "for U" in s.numbers.value
    s.slider.value = s.slider.max
    assert s.next_button.disabled and repr(s).endswith("backward k=1; wrt=U, k2=2)")
    assert s.errors.outputs == ()


def test_the_views_have_a_deterministic_text_repr_and_an_html_fallback():
    net, xs, ys = _case("elman", T=3, seed=10)
    a, b = Stepper(net, xs, ys), Stepper(net, xs, ys)
    for w in (a, b):
        w.slider.value = 5
    ba, bb = a._repr_mimebundle_(), b._repr_mimebundle_()
    assert ba["text/plain"] == repr(a) == bb["text/plain"]
    assert ba["text/html"] == bb["text/html"] and "<svg" in ba["text/html"] and "C[2][2]" in ba["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in ba
    f = GradientFlow(T=6, n_hidden=3, radius=0.5)
    bundle = f._repr_mimebundle_()
    assert bundle["text/plain"] == repr(f) == ("GradientFlow(elman, T=6, H=3: |dE_t/dh_k|, radius 0.5, tanh, "
                                               "init normal, clip none, k2 full)")
    assert bundle["text/html"] == GradientFlow(T=6, n_hidden=3, radius=0.5).static_html()
    assert 'class="bpttlab-heatmap"' in bundle["text/html"]


def test_the_flow_view_updates_live():
    f = GradientFlow(T=8, n_hidden=4, radius=0.5, activation="identity", init="orthogonal")
    before = f.heatmap.value
    f.radius.value = 1.5
    assert f.model.settings.radius == 1.5 and f.heatmap.value != before
    f.clip_mode.value = "step"
    assert f.model.settings.clip == ("step", 1.0)
    f.tau.value = 10.0
    assert f.model.settings.clip == ("step", 10.0)
    f.measure.value = "state"
    assert "|dh_t/dh_k|" in f.heatmap.value and "|dh_t/dh_k|" in f.summary.value
    f.k2_menu.value = 2
    assert f.model.settings.k2 == 2
    f.init.value = "identity"
    np.testing.assert_allclose(f.model.network().params["W"], 1.5 * np.eye(4))
    assert f.errors.outputs == ()


def test_errors_in_callbacks_are_shown_in_the_output_widget():
    gru = GradientFlow(cell="gru", T=4, n_hidden=2)
    gru.activation.value = "relu"
    (out,) = gru.errors.outputs
    assert out["name"] == "stderr" and out["text"].startswith("ValueError:") and "tanh" in out["text"]
    assert gru.model.settings.activation == "tanh"
    gru.activation.value = "tanh"
    assert gru.errors.outputs == () and gru.last_error is None

    net, xs, ys = _case("elman", T=3)
    s = Stepper(net, xs, ys)

    def broken(position):
        raise RuntimeError("the model is broken")

    s.model.goto = broken
    s.next_button.click()
    (out,) = s.errors.outputs
    assert "Traceback" in out["text"] and "RuntimeError: the model is broken" in out["text"]
    assert isinstance(s.last_error, RuntimeError)


def test_the_symbolic_term_beyond_the_derivation_limits_is_replaced_by_the_reason():
    # bl.derive refuses sizes whose SymPy work would block the kernel (and so the widget) for long; the
    # stepper shows its reason instead of the term, and the copies within the limits still get theirs.
    net, xs, ys = _case("elman", T=20, H=3, seed=11)
    s = Stepper(net, xs, ys)
    s.slider.value = 21                                   # backward k=20
    assert "symbolic term not shown" in s.symbolic.value and "t=20" in s.symbolic.value
    s.slider.value = s.slider.max                         # backward k=1
    assert "C[1][1]" in s.symbolic.value and "agree to within" in s.symbolic.value
    assert s.errors.outputs == ()
