"""docs/write-a-cell.md: its example is tests/plugins/leaky_cell.py word for word, and that plugin, which
implements only the cell contract (step, vjp, symbolic step), gets everything: bptt with truncation and
every clip mode against a finite-difference reference, the decomposition, check, gradcheck, TBPTT,
checkpointing, the widgets' models and an exercise graded against it."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

import bpttlab as bl
import naive
from bpttlab.widgets import FlowModel, StepperModel
from engine_cases import assert_close

HERE = Path(__file__).parent
DOC = (HERE.parent / "docs" / "write-a-cell.md").read_text()
ALPHA = 0.5


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)


@pytest.fixture
def leaky(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    from plugins.leaky_cell import LeakyCell

    yield bl.registry.cells.register("leaky", LeakyCell(ALPHA))
    bl.registry.cells.unregister("leaky")


def test_the_page_shows_the_tested_plugin_and_its_entry_point():
    assert blocks("python")[0] == (HERE / "plugins" / "leaky_cell.py").read_text()
    toml = tomllib.loads(blocks("toml")[0])
    assert toml["project"]["entry-points"]["bpttlab.cells"] == {"leaky": "mypackage.leaky_cell:LeakyCell"}
    assert len(blocks("python")[0].splitlines()) <= 45


def leaky_transition(p, s, x):
    """The reference's own statement of the leaky step (tanh)."""
    return (1 - ALPHA) * s + ALPHA * np.tanh(p["W"] @ s + p["U"] @ x + p["b"])


@pytest.mark.parametrize("k2,clip", [(None, None), (3, None), (3, ("step", 0.2)), (None, ("norm", 0.1)),
                                     (None, ("value", 0.05))])
def test_bptt_truncation_and_clipping_against_finite_differences(leaky, k2, clip):
    net = bl.make("leaky", n_in=2, n_hidden=3, n_out=2, seed=1)
    rng = np.random.default_rng(1)
    xs, y = rng.normal(size=(5, 2, 2)), rng.normal(size=(5, 2, 2))
    tau = clip[1] if clip and clip[0] == "step" else 0.0
    ref = naive.fd_chain(leaky_transition, naive.linear_readout, net.params, 3, xs, y, k2=k2, tau=tau)
    res = bl.bptt(net, xs, y, k2=k2, clip=clip)
    assert_close(res.raw_grads, ref.grads, 1e-7, "raw grads")
    assert_close(res.by_copy, ref.by_copy, 1e-7, "by_copy")
    assert_close(res.grads, naive.clip_after(ref.grads, clip), 1e-7, "clipped grads")
    if tau == 0.0:  # contributions are the terms before step clipping
        C = bl.contributions(net, xs, y, "W", k2=k2)
        np.testing.assert_allclose(C.sum(axis=1), res.by_loss["W"], rtol=1e-12, atol=1e-14)
        assert_close(bl.bptt(net, xs, y, k2=k2, clip=clip, checkpoint=2).grads, res.grads, 1e-12, "checkpoint")


def test_check_gradcheck_train_and_widgets(leaky):
    net = bl.make("leaky", n_in=1, n_hidden=2, n_out=1, seed=0)
    xs, ys = np.linspace(-1, 1, 4)[:, None], np.zeros((4, 1))
    assert bl.check(net, xs, ys).passed
    assert bl.gradcheck(net, xs, ys).passed
    hist = bl.train(net, np.sin(np.arange(12.0))[:, None], np.cos(np.arange(12.0))[:, None], k1=3, k2=6,
                    lr=0.05, epochs=30, progress=False)
    assert hist.epoch_loss[-1] < hist.epoch_loss[0]
    model = StepperModel(net, xs, ys, k2=2)
    assert len(model.events) > 0
    flow = FlowModel(net, xs, ys)
    assert flow is not None
    J = bl.flow.state_jacobians(net, xs)
    np.testing.assert_allclose(J[3, 1], J[3, 2] @ J[2, 1], rtol=1e-12)


def test_an_exercise_about_the_plugin_is_graded(leaky, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    from plugins.leaky_exercises import PACK

    bl.registry.exercises.register("leaky", PACK)
    try:
        def grad_W(W, U, b, V, c, xs, targets, leak=True):
            """A student's answer: the backward recursion by hand."""
            hs, pre = [np.zeros(len(b))], []
            for x in xs:
                pre.append(W @ hs[-1] + U @ x + b)
                hs.append((1 - ALPHA) * hs[-1] + ALPHA * np.tanh(pre[-1]))
            g, dh = np.zeros_like(W), np.zeros(len(b))
            for t in range(len(xs) - 1, -1, -1):
                dh = dh + V.T @ (V @ hs[t + 1] + c - targets[t])
                da = ALPHA * (1 - np.tanh(pre[t]) ** 2) * dh
                g += np.outer(da, hs[t])
                dh = ((1 - ALPHA) * dh if leak else 0) + W.T @ da
            return g

        right = bl.grade("leaky:leaky-grad-W", grad_W, hidden_seed=3)
        wrong = bl.grade("leaky:leaky-grad-W", lambda **kw: grad_W(**kw, leak=False), hidden_seed=3)
        flipped = bl.grade("leaky:leaky-grad-W", lambda **kw: -grad_W(**kw), hidden_seed=3)
    finally:
        bl.registry.exercises.unregister("leaky")
    assert right.passed and right.score == 1.0
    assert not wrong.passed and wrong.score < 1.0
    assert not flipped.passed and "sign" in str(flipped).lower()
