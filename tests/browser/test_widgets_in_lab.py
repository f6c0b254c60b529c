"""Every control of every widget the chapters use, driven in a real JupyterLab, the numbers checked.

The chapters use two widgets, :class:`bpttlab.widgets.Stepper` (``%bptt step``) and
:class:`bpttlab.widgets.GradientFlow` (``%bptt flow``). This test opens its own notebook
(tests/browser/widgets.ipynb: a small tanh Elman network, T = 4, H = 2, one cell per widget), drives each
control as a student does (Play, Pause, Prev, Next, a click on the event slider, the parameter and k2
menus; the radius and tau readouts, the activation, init, clip and k2 menus and the map toggle), and after
each one reads the numbers the page shows and compares them with what this process computes:

* the stepper's forward and loss numbers with a plain NumPy forward pass; its backward numbers with
  ``bl.contributions`` (explicit C[k][k], implicit sum_{t>k} C[t][k], and dE/dh_k from the bias' table,
  C_b[t][k] = dE_t/dh_k * f'(a_k)) and ``bl.bptt`` (by_copy and the running gradient), at the k2 chosen;
* the gradient-flow map, entry by entry from the hover titles, with the same bias table (loss map) or a
  NumPy product of Jacobians diag f'(a_j) W (state map), scaled as norm clipping scales it, on the
  network the settings describe; its gradient norms with ``bl.bptt``.

One JupyterLab server (the session fixture) serves both tests; a screenshot of each widget goes to
test-artifacts/browser/.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

import bpttlab as bl
from lab_cells import open_notebook, run_cell

pytestmark = pytest.mark.browser

NOTEBOOK = Path(__file__).resolve().parent / "widgets.ipynb"
WAIT_MS = 60_000
#: The widgets print 4 significant digits (the stepper) or 3 (the flow map): the tolerance of a match.
RTOL = {4: 1e-3, 3: 5e-3}


# -- the notebook's network, here ------------------------------------------------------------------


def setup_source() -> str:
    return nbformat.read(NOTEBOOK, as_version=4).cells[1].source


def problem():
    """net, xs, ys exactly as the notebook's set-up cell makes them."""
    namespace: dict = {}
    exec(setup_source(), namespace)  # noqa: S102 - our own notebook's cell
    return namespace["net"], namespace["xs"], namespace["ys"]


ACTIVATIONS = {"tanh": (np.tanh, lambda h: 1.0 - h * h), "identity": (lambda a: a, np.ones_like)}


def forward(params, xs, activation="tanh"):
    """[h_0..h_T], [o_1..o_T], [f'(a_1)..f'(a_T)] by a NumPy loop."""
    f, fprime = ACTIVATIONS[activation]
    hs, outs, fps = [np.zeros(len(params["b"]))], [], []
    for x in xs:
        hs.append(f(params["W"] @ hs[-1] + params["U"] @ x + params["b"]))
        outs.append(params["V"] @ hs[-1] + params["c"])
        fps.append(fprime(hs[-1]))
    return hs, outs, fps


# -- what the stepper must show ---------------------------------------------------------------------


def stepper_rows(net, xs, ys, position: int, wrt: str, k2: int | None) -> tuple[str, list[tuple[str, np.ndarray]]]:
    """The event label and the (label pattern, numbers) of each row of the numbers table."""
    T = len(xs)
    hs, outs, fps = forward(net.params, xs)
    if position < T:
        t = position + 1
        return f"forward t={t}", [(f"x{t}", xs[t - 1]), (f"h{t}", hs[t]), (f"o{t}", outs[t - 1])]
    if position == T:
        losses = [0.5 * float(np.sum((o - y) ** 2)) for o, y in zip(outs, ys)]
        return "losses", [(f"E{t}", np.array(v)) for t, v in enumerate(losses, 1)] + [("E", np.array(sum(losses)))]
    k = 2 * T + 1 - position
    C = bl.contributions(net, xs, ys, wrt, k2=k2)
    Cb = bl.contributions(net, xs, ys, "b", k2=k2)
    res = bl.bptt(net, xs, ys, k2=k2)
    direct = Cb[k - 1, k - 1] / fps[k - 1]
    carry = Cb[k:, k - 1].sum(axis=0) / fps[k - 1]
    rows = [(f"∂E/∂h{k}", direct + carry), ("direct", direct), ("carry", carry),
            (f"explicit C[{k}][{k}] for {wrt}", C[k - 1, k - 1]), ("implicit", C[k:, k - 1].sum(axis=0)),
            (f"copy {k} of {wrt}", res.by_copy[wrt][k - 1])]
    rows += [(f"running ∂E/∂{name}", c[k - 1:].sum(axis=0)) for name, c in res.by_copy.items()]
    return f"backward k={k}", rows


NUMBERS_JS = """el => Array.from(el.querySelectorAll('table.bpttlab-numbers > tbody > tr')).map(tr => [
    tr.querySelector('th').innerText.replace(/\\s+/g, ' ').trim(),
    Array.from(tr.querySelectorAll('td td, td > code, td > b')).map(x => x.innerText.trim())])"""


def eventually(page, check) -> None:
    """Run ``check`` until it passes (the kernel's redraw reaches the page a moment after a click) or
    WAIT_MS has passed, when its last failure is raised."""
    waited = 0
    while True:
        try:
            return check()
        except AssertionError:
            if waited >= WAIT_MS:
                raise
        page.wait_for_timeout(250)
        waited += 250


def check_stepper(stepper, net, xs, ys, position: int, wrt: str, k2: int | None) -> None:
    """The page shows event ``position`` with the engine's numbers (wrt, k2)."""
    from playwright.sync_api import expect

    label, rows = stepper_rows(net, xs, ys, position, wrt, k2)
    expect(stepper.locator(".bpttlab-event")).to_have_text(label, timeout=WAIT_MS)
    expect(stepper.locator(".bpttlab-event").locator("xpath=..")).to_contain_text(
        f"event {position + 1} of {2 * len(xs) + 1}")

    def numbers_match():
        shown = stepper.evaluate(NUMBERS_JS)
        assert len(shown) == len(rows), (label, shown)
        for (pattern, expected), (text, values) in zip(rows, shown):
            assert pattern in text, (label, pattern, text)
            got = np.array([float(v) for v in values])
            np.testing.assert_allclose(got, np.ravel(expected), rtol=RTOL[4], atol=1e-12, err_msg=f"{label}: {text}")

    eventually(stepper.page, numbers_match)


def current_position(stepper) -> int:
    text = stepper.locator(".bpttlab-event").locator("xpath=..").inner_text()
    return int(re.search(r"event (\d+) of", text).group(1)) - 1


# -- what the gradient-flow map must show ------------------------------------------------------------


def flow_map(net, xs, ys, *, radius, activation="tanh", identity=False, k2=None, clip=None, measure="loss"):
    """{(t, k): M[t][k]} over the entries the map defines, and (|g| before, |g| after clipping)."""
    params = {name: np.array(p) for name, p in net.params.items()}
    W = np.eye(len(params["b"])) if identity else params["W"]
    params["W"] = W * (radius / np.max(np.abs(np.linalg.eigvals(W))))
    other = bl.make("elman", n_in=net.n_in, n_hidden=net.n_hidden, n_out=net.n_out, activation=activation, seed=0)
    other.params = params
    _, _, fps = forward(params, xs, activation)
    T = len(xs)
    plain = bl.bptt(other, xs, ys, k2=k2)
    clipped = bl.bptt(other, xs, ys, k2=k2, clip=clip)
    norm = float(np.sqrt(sum(np.sum(g * g) for g in plain.grads.values())))
    after = float(np.sqrt(sum(np.sum(g * g) for g in clipped.grads.values())))
    factor = min(1.0, clip[1] / norm) if clip and clip[0] == "norm" else 1.0
    Cb = bl.contributions(other, xs, ys, "b", k2=k2)
    out = {}
    for t in range(1, T + 1):
        for k in range(1, t + 1):
            if k2 is not None and k <= t - k2:
                continue
            if measure == "loss":
                out[t, k] = factor * float(np.linalg.norm(Cb[t - 1, k - 1] / fps[k - 1]))
            else:
                J = np.eye(len(params["b"]))
                for j in range(k + 1, t + 1):
                    J = np.diag(fps[j - 1]) @ params["W"] @ J
                out[t, k] = float(np.linalg.norm(J, 2))
    return out, (norm, after)


def check_flow(flow, net, xs, ys, summary_has: str, **settings) -> None:
    from playwright.sync_api import expect

    summary = flow.locator(".bpttlab-flow-summary")
    expect(summary).to_contain_text(summary_has, timeout=WAIT_MS)
    expected, (before, after) = flow_map(net, xs, ys, **settings)

    def map_matches():
        titles = flow.locator("svg.bpttlab-heatmap rect > title").evaluate_all("els => els.map(e => e.textContent)")
        shown = {(int(m[1]), int(m[2])): float(m[3]) for m in
                 (re.fullmatch(r"t=(\d+), k=(\d+): (\S+)", s) for s in titles)}
        assert set(shown) == set(expected), (summary_has, sorted(shown))
        for key, value in expected.items():
            assert np.isclose(shown[key], value, rtol=RTOL[3], atol=1e-12), (summary_has, key, shown[key], value)
        norms = re.search(r"\|dE/dtheta\| (\S+) -> (\S+)", summary.inner_text())
        np.testing.assert_allclose([float(norms[1]), float(norms[2])], [before, after], rtol=RTOL[3])

    eventually(flow.page, map_matches)


# -- driving JupyterLab ------------------------------------------------------------------------------


def open_widgets_notebook(lab, page):
    """Open the test notebook (copied into the served folder) and run its set-up cell."""
    shutil.copy(NOTEBOOK, lab.root / NOTEBOOK.name)
    notebook = open_notebook(page, lab.notebook_url(NOTEBOOK.name), NOTEBOOK.name, WAIT_MS)
    run_cell(page, notebook.locator(".jp-CodeCell").nth(0), WAIT_MS)
    return notebook


def widget_of(page, notebook, index: int, css: str):
    """Run code cell ``index`` and return its rendered widget (no error, nothing on stderr)."""
    from playwright.sync_api import expect

    cell = notebook.locator(".jp-CodeCell").nth(index)
    run_cell(page, cell, WAIT_MS)
    output = cell.locator(".jp-Cell-outputArea")
    widget = output.locator(css)
    expect(widget.or_(output.get_by_text("Error displaying widget"))).to_be_visible(timeout=WAIT_MS)
    assert "Error displaying widget" not in output.inner_text()
    assert output.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    return widget


def choose(widget, description: str, label: str) -> None:
    """Pick ``label`` in the dropdown called ``description``."""
    widget.locator(".widget-dropdown").filter(has_text=description).locator("select").select_option(label=label)


def type_readout(page, widget, description: str, value: str) -> None:
    """Type ``value`` into the readout of the slider called ``description`` (as a student edits it)."""
    readout = widget.locator(".widget-slider").filter(has_text=description).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def no_errors(widget) -> None:
    """Nothing went to the widget's errors Output."""
    assert widget.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0, widget.inner_text()


# -- the tests ---------------------------------------------------------------------------------------


def test_every_stepper_control_shows_the_engine_numbers(lab, page, artifacts):
    net, xs, ys = problem()
    T = len(xs)
    notebook = open_widgets_notebook(lab, page)
    stepper = widget_of(page, notebook, 1, ".widget-vbox.bpttlab-stepper")
    button = {name: stepper.locator("button", has_text=name) for name in ("Prev", "Next")}
    check_stepper(stepper, net, xs, ys, 0, "W", None)
    from playwright.sync_api import expect

    expect(button["Prev"]).to_be_disabled()

    button["Next"].click()
    check_stepper(stepper, net, xs, ys, 1, "W", None)
    button["Prev"].click()
    check_stepper(stepper, net, xs, ys, 0, "W", None)

    # Play runs through the events on its own; the same button, now Pause, stops it where it is; Stop
    # goes back to the first event (ipywidgets 8: play/pause, stop, repeat)
    play_pause, stop = stepper.locator(".widget-play button").nth(0), stepper.locator(".widget-play button").nth(1)
    play_pause.click()
    expect(play_pause.locator("i.fa-pause")).to_be_visible()
    expect(stepper.locator(".bpttlab-event")).to_have_text("forward t=3", timeout=WAIT_MS)
    play_pause.click()
    expect(play_pause.locator("i.fa-play")).to_be_visible()
    page.wait_for_timeout(2000)  # anything the kernel still had to show arrives
    paused = current_position(stepper)
    page.wait_for_timeout(2000)
    assert current_position(stepper) == paused, "the stepper kept moving after Pause"
    assert 2 <= paused < 2 * T, paused
    check_stepper(stepper, net, xs, ys, paused, "W", None)
    stop.click()
    check_stepper(stepper, net, xs, ys, 0, "W", None)

    # the event slider: a click on its track at the backward step k = 2 (event 2T + 1 - 2)
    target = 2 * T + 1 - 2
    track = stepper.locator(".widget-slider .noUi-target")
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * target / (2 * T), box["y"] + box["height"] / 2)
    check_stepper(stepper, net, xs, ys, target, "W", None)

    choose(stepper, "parameter", "U")
    check_stepper(stepper, net, xs, ys, target, "U", None)
    choose(stepper, "k2", "2")
    check_stepper(stepper, net, xs, ys, target, "U", 2)

    # to the last event with Next: the running gradient is the whole (truncated) gradient there
    while current_position(stepper) < 2 * T:
        position = current_position(stepper)
        button["Next"].click()
        check_stepper(stepper, net, xs, ys, position + 1, "U", 2)
    expect(button["Next"]).to_be_disabled()
    no_errors(stepper)
    stepper.scroll_into_view_if_needed()
    stepper.screenshot(path=str(artifacts / "widget-stepper.png"))


def test_every_gradient_flow_control_shows_the_engine_map(lab, page, artifacts):
    net, xs, ys = problem()
    rho = float(np.max(np.abs(np.linalg.eigvals(net.params["W"]))))
    notebook = open_widgets_notebook(lab, page)
    flow = widget_of(page, notebook, 2, ".widget-vbox.bpttlab-gradient-flow")
    check_flow(flow, net, xs, ys, f"radius {rho:.3g}", radius=rho)

    type_readout(page, flow, "radius", "1.50")
    check_flow(flow, net, xs, ys, "radius 1.5,", radius=1.5)
    choose(flow, "activation", "identity")
    check_flow(flow, net, xs, ys, "identity", radius=1.5, activation="identity")
    choose(flow, "init", "identity")
    check_flow(flow, net, xs, ys, "init identity", radius=1.5, activation="identity", identity=True)
    choose(flow, "k2", "2")
    settings = dict(radius=1.5, activation="identity", identity=True, k2=2)
    check_flow(flow, net, xs, ys, "k2 2", **settings)
    choose(flow, "clip", "norm")
    check_flow(flow, net, xs, ys, "clip norm:1", **settings, clip=("norm", 1.0))
    type_readout(page, flow, "tau", "0.01")
    check_flow(flow, net, xs, ys, "clip norm:0.01", **settings, clip=("norm", 0.01))
    choose(flow, "clip", "value")
    check_flow(flow, net, xs, ys, "clip value:0.01", **settings, clip=("value", 0.01))
    flow.locator("button", has_text="|dh_t/dh_k|").click()
    check_flow(flow, net, xs, ys, "|dh_t/dh_k| at lag 0", **settings, clip=("value", 0.01), measure="state")
    no_errors(flow)
    flow.scroll_into_view_if_needed()
    flow.screenshot(path=str(artifacts / "widget-gradient-flow.png"))
