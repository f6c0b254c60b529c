"""Cells, activations and losses as plugins: a third-party cell written outside the package
(tests/plugins/leaky_cell.py) is registered through the public registry API, built with bl.make, checked
against finite differences and trained; broken plugins are reported by name without breaking the others.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import bpttlab as bl
import naive
from bpttlab.activations import Activation
from bpttlab.registry import Registry
from engine_cases import assert_close, leaky_integrator, rel_err

HERE = Path(__file__).parent
ALPHA = 0.5


@pytest.fixture
def leaky(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    from plugins.leaky_cell import LeakyCell

    cell = bl.registry.cells.register("leaky", LeakyCell(ALPHA))
    yield cell
    bl.registry.cells.unregister("leaky")


@pytest.fixture
def softsign():
    """An activation plugin with no Numba kernel: only NumPy cells can use it."""
    act = Activation("softsign", lambda a: a / (1 + np.abs(a)), lambda a, h: 1 / (1 + np.abs(a)) ** 2,
                     lambda a: a / (1 + sp.Abs(a)), lambda a: 1 / (1 + sp.Abs(a)) ** 2)
    yield bl.registry.activations.register("softsign", act)
    bl.registry.activations.unregister("softsign")


def leaky_transition(act):
    """The oracle's own statement of the leaky step (not the plugin's code)."""
    f = naive.ACTIVATIONS[act][0] if act in naive.ACTIVATIONS else (lambda a: a / (1 + np.abs(a)))
    return lambda p, s, x: (1 - ALPHA) * s + ALPHA * f(p["W"] @ s + p["U"] @ x + p["b"])


def data(rng, T, B, D, O, loss):
    xs = rng.normal(size=(T, B, D))
    y = rng.integers(0, O, size=(T, B)) if loss == "cross_entropy" else rng.normal(size=(T, B, O))
    return xs, y


def test_registered_plugin_is_listed_and_built(leaky):
    assert "leaky" in bl.registry.cells.names()
    assert bl.registry.cells.origins["leaky"] == "registered at run time"
    net = bl.make("leaky", n_in=2, n_hidden=3, n_out=2, seed=0)
    assert net.cell is leaky
    assert {k: v.shape for k, v in net.params.items()} == {"W": (3, 3), "U": (3, 2), "b": (3,), "V": (2, 3),
                                                           "c": (2,)}
    with pytest.raises(ValueError, match="leaky"):
        bl.make("leakyy")


@pytest.mark.parametrize("k2,clip", [(None, None), (2, None), (None, ("step", 0.3)), (3, ("step", 0.3))])
@pytest.mark.parametrize("loss,act", [("mse", "tanh"), ("cross_entropy", "sigmoid")])
def test_plugin_gradients_match_finite_differences(leaky, loss, act, k2, clip):
    rng = np.random.default_rng(1)
    net = bl.make("leaky", n_in=2, n_hidden=3, n_out=3, activation=act, seed=2)
    net.params["b"] = rng.normal(size=3)
    xs, y = data(rng, 5, 2, 2, 3, loss)
    res = bl.bptt(net, xs, y, loss=loss, k2=k2, clip=clip)
    fd = naive.fd_chain(leaky_transition(act), naive.linear_readout, net.params, 3, xs, y, loss, k2=k2,
                        tau=0.0 if clip is None else clip[1])
    assert_close(res.grads, fd.grads, 1e-7, "grads")
    assert_close(res.by_copy, fd.by_copy, 1e-7, "by_copy")
    if k2 is not None or clip is None:
        assert_close(res.by_loss, {k: c.sum(axis=1) for k, c in fd.table.items()}, 1e-7, "by_loss")
    if clip is not None:
        plain = bl.bptt(net, xs, y, loss=loss, k2=k2)
        assert rel_err(res.grads["W"], plain.grads["W"]) > 1e-3, "clip did not bite"


def test_plugin_contributions_identities(leaky):
    rng = np.random.default_rng(3)
    net = bl.make("leaky", n_in=1, n_hidden=2, n_out=1, seed=3)
    xs, y = data(rng, 5, 1, 1, 1, "mse")
    res = bl.bptt(net, xs, y)
    for name in net.params:
        C = bl.contributions(net, xs, y, name)
        assert rel_err(C.sum(axis=1), res.by_loss[name]) < 1e-12
        assert rel_err(C.sum(axis=0), res.by_copy[name]) < 1e-12
    fd = naive.fd_chain(leaky_transition("tanh"), naive.linear_readout, net.params, 2, xs, y)
    assert rel_err(bl.contributions(net, xs, y, "W"), fd.table["W"]) < 1e-7


def test_plugin_symbolic_step_agrees_with_its_forward(leaky):
    """The plugin's SymPy step, evaluated at the network's values, gives its numeric first step."""
    net = bl.make("leaky", n_in=2, n_hidden=2, n_out=1, seed=4)
    net.params["b"] = np.array([0.3, -0.2])
    x, s0 = np.array([0.7, -1.1]), np.array([0.4, 0.9])
    P = {k: sp.Matrix(np.atleast_2d(v).T if v.ndim == 1 else v) for k, v in net.params.items()}
    h, o = leaky.symbolic_step(P, sp.Matrix(s0), sp.Matrix(x), sp.tanh)
    tr = bl.forward(net, x[None], h0=s0)
    assert rel_err(np.array(h, dtype=float).ravel(), tr.h[1]) < 1e-14
    assert rel_err(np.array(o, dtype=float).ravel(), tr.outputs[0]) < 1e-14


def test_plugin_passes_gradcheck_and_trains(leaky):
    xs, y = leaky_integrator(T=16, B=4, decay=0.5, seed=5)
    net = bl.make("leaky", n_in=1, n_hidden=4, n_out=1, seed=5)
    report = bl.gradcheck(net, xs[:6], y[:6])
    assert report.passed, report
    hist = bl.train(net, xs, y, k1=4, k2=8, lr=0.1, epochs=40, reduction="mean", progress=False)
    assert hist.epoch_loss[-1] < 0.2 * hist.epoch_loss[0]


def test_gradcheck_catches_a_plugin_with_a_wrong_backward(leaky, monkeypatch):
    """A plugin whose vjp forgets the leak path (1 - alpha) dh_t fails gradcheck."""
    net = bl.make("leaky", n_in=1, n_hidden=2, n_out=1, seed=6)
    xs, y = np.linspace(-1, 1, 5)[:, None], np.linspace(1, 0, 5)[:, None]
    assert bl.gradcheck(net, xs, y).passed
    right = type(leaky).step_vjp

    def forgetful(self, params, cache, dh, act):
        dh_prev, grads = right(self, params, cache, dh, act)
        return dh_prev - (1 - self.alpha) * dh, grads

    monkeypatch.setattr(type(leaky), "step_vjp", forgetful)
    report = bl.gradcheck(net, xs, y)
    assert not report.passed
    assert report.rel_error["W"] > 1e-3


def test_activation_plugin_in_a_numpy_cell(leaky, softsign):
    rng = np.random.default_rng(7)
    net = bl.make("leaky", n_in=2, n_hidden=3, n_out=2, activation="softsign", seed=7)
    xs, y = data(rng, 4, 2, 2, 2, "mse")
    fd = naive.fd_chain(leaky_transition("softsign"), naive.linear_readout, net.params, 3, xs, y)
    assert_close(bl.bptt(net, xs, y).grads, fd.grads, 1e-7, "grads")


# -- broken plugins ----------------------------------------------------------------------------------------

BROKEN_MODULE = '''
from plugins.leaky_cell import LeakyCell


class UnknownGradient(LeakyCell):
    name = "unknown_gradient"

    def step_vjp(self, params, cache, dh, act):
        dh_prev, grads = super().step_vjp(params, cache, dh, act)
        return dh_prev, grads | {"W2": grads["W"]}


class Misnamed(LeakyCell):
    name = "something_else"


class RaisesOnInit(LeakyCell):
    name = "raises_on_init"

    def __init__(self):
        raise RuntimeError("needs a GPU")
'''

ENTRY_POINTS = '''
[bpttlab.cells]
leaky = plugins.leaky_cell:LeakyCell
unknown_gradient = fake_broken_cells:UnknownGradient
misnamed = fake_broken_cells:Misnamed
raises_on_init = fake_broken_cells:RaisesOnInit
missing_module = fake_no_such_module:Cell
not_a_cell = fake_broken_cells:textwrap
'''


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """A fake installed distribution whose entry points add one good and several broken cells, read by a
    fresh cells registry that stands in for bl.registry.cells."""
    monkeypatch.syspath_prepend(str(HERE))
    (tmp_path / "fake_broken_cells.py").write_text("import textwrap\n" + BROKEN_MODULE)
    info = tmp_path / "fake_bpttlab_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-bpttlab-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    monkeypatch.syspath_prepend(str(tmp_path))
    cells = bl.registry.cells
    fresh = Registry(cells.group, cells.kind, cells.validate, instantiate=cells.instantiate)
    monkeypatch.setattr(bl.registry, "cells", fresh)
    return fresh


def test_broken_entry_point_plugins_are_reported_by_name(installed_plugins):
    reg = installed_plugins
    assert {"elman", "jordan", "leaky"} <= set(reg.names())
    assert reg.origins["leaky"] == "fake-bpttlab-plugins 0.1"
    broken = reg.broken
    assert set(broken) == {"unknown_gradient", "misnamed", "raises_on_init", "missing_module", "not_a_cell"}
    assert "could not be loaded" in broken["missing_module"] and "fake_no_such_module" in broken["missing_module"]
    assert "step_vjp" in broken["unknown_gradient"] and "'W2'" in broken["unknown_gradient"]
    assert "something_else" in broken["misnamed"]
    assert "needs a GPU" in broken["raises_on_init"]
    assert "Cell" in broken["not_a_cell"]
    assert not set(broken) & set(reg.names())


def test_the_others_still_work_and_a_broken_name_explains_itself(installed_plugins):
    rng = np.random.default_rng(8)
    xs, y = data(rng, 4, 1, 1, 1, "mse")
    for cell in ("elman", "leaky"):
        assert bl.gradcheck(bl.make(cell, seed=8), xs, y).passed
    with pytest.raises(ValueError) as info:
        bl.make("unknown_gradient")
    msg = str(info.value)
    assert "unknown_gradient" in msg and "broken" in msg and "step_vjp" in msg
    assert "elman" in msg and "leaky" in msg


def test_a_broken_plugin_registered_at_run_time_is_refused_by_name(leaky, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    namespace = {}
    exec(BROKEN_MODULE, namespace)
    before = bl.registry.cells.names()
    with pytest.raises(ValueError) as info:
        bl.registry.cells.register("unknown_gradient", namespace["UnknownGradient"]())
    assert "unknown_gradient" in str(info.value) and "step_vjp" in str(info.value)
    with pytest.raises(ValueError, match="something_else"):
        bl.registry.cells.register("misnamed", namespace["Misnamed"]())
    assert bl.registry.cells.names() == before
    assert bl.gradcheck(bl.make("leaky", seed=1), np.ones((3, 1)), np.zeros((3, 1))).passed


@pytest.mark.parametrize("group", ["cells", "activations", "losses"])
def test_every_built_in_plugin_passes_the_validation_of_its_group(group):
    """The registry does not validate bpttlab's own plugins when it loads them (checking the activations'
    symbolic forms imported SymPy at every start): this test holds them to the same checks instead,
    the compiled kernels' sites included."""
    registry = getattr(bl.registry, group)
    built_in = [(name, obj) for name, obj in registry.items() if type(obj).__module__.startswith("bpttlab.")
                or registry.origins[name].startswith("bpttlab ")]
    assert len(built_in) >= 2
    for name, obj in built_in:
        registry.validate(name, obj)
    if group == "cells":
        from bpttlab.cells.sites import validate_sites

        for name, cell in built_in:
            validate_sites(name, cell, cell.kernels)
