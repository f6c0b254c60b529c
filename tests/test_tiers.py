"""The two tiers of the engine: every cell on the per-copy tier against the naive references
(tests/naive.py, tests/naive_gated.py), every compiled kernel against the per-copy tier to 1e-12, plugin
activations with every built-in cell, and no result ever waiting for a compiler."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import sympy as sp

import bpttlab as bl
import naive
import naive_gated
from bpttlab.activations import Activation
from bpttlab.cells.elman import ElmanCell
from bpttlab.engine import compilation, tiers
from bpttlab.engine.flow import state_gradients, state_jacobians
from engine_cases import assert_close

CELLS = ("elman", "jordan", "gru", "lstm")


def problem(cell, seed=0, T=6, B=2, D=2, H=3, O=2, activation="tanh", loss="mse"):
    rng = np.random.default_rng(seed)
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation=activation, seed=seed)
    xs = rng.normal(size=(T, B, D))
    y = rng.integers(0, O, size=(T, B)) if loss == "cross_entropy" else rng.normal(size=(T, B, O))
    return net, xs, y


@pytest.fixture
def per_copy():
    previous = compilation.set_mode("off")
    yield
    compilation.set_mode(previous)


def on_tier(mode: str, fn):
    """fn() in compilation mode ``mode`` ("off": per-copy tier; "eager": compiled tier)."""
    previous = compilation.set_mode(mode)
    try:
        return fn()
    finally:
        compilation.set_mode(previous)


# -- the per-copy tier against the naive references -----------------------------------------------------

@pytest.mark.parametrize("cell", ("elman", "jordan"))
@pytest.mark.parametrize("act", ("tanh", "relu", "sigmoid", "identity"))
@pytest.mark.parametrize("k2,clip", [(None, None), (3, None), (3, ("step", 0.3)), (None, ("norm", 0.5))])
def test_per_copy_elman_and_jordan_match_the_naive_reference(per_copy, cell, act, k2, clip):
    net, xs, y = problem(cell, seed=1, activation=act)
    assert not tiers.tier(net.cell, net.activation).compiled
    res = bl.bptt(net, xs, y, k2=k2, clip=clip)
    ref = naive.bptt(cell, act, net.params, xs, y, k2=k2, clip=clip)
    assert_close(res.grads, ref.grads, 1e-12, "grads")
    assert_close(res.by_copy, ref.by_copy, 1e-12, "by_copy")
    if ref.by_loss is not None:
        assert_close(res.by_loss, ref.by_loss, 1e-12, "by_loss")
    assert abs(res.loss - ref.loss) <= 1e-12 * abs(ref.loss)


@pytest.mark.parametrize("cell", ("gru", "lstm"))
@pytest.mark.parametrize("k2,tau", [(None, 0.0), (None, 0.2), (2, 0.0), (3, 0.2)])
def test_per_copy_gated_cells_match_the_naive_reference(per_copy, cell, k2, tau):
    net, xs, y = problem(cell, seed=2, B=1)
    clip = ("step", tau) if tau else None
    res = bl.bptt(net, xs[:, 0], y[:, 0], k2=k2, clip=clip)
    ref = naive_gated.naive_bptt(cell, net.params, xs[:, 0], y[:, 0], np.zeros(net.state_size), k2=k2, tau=tau)
    assert_close(res.grads, ref, 1e-12, "grads")
    for name in ("V", net.cell.recurrent[0], "c"):
        C = bl.contributions(net, xs[:, 0], y[:, 0], name)
        want = naive_gated.naive_contributions(cell, net.params, xs[:, 0], y[:, 0], np.zeros(net.state_size), name)
        np.testing.assert_allclose(C, want, rtol=1e-12, atol=1e-14)


# -- compiled kernels against the per-copy tier -----------------------------------------------------------

def everything(net, xs, y, loss):
    """Every engine result that a tier computes, as a flat dict of arrays."""
    out = {}
    for tag, kwargs in {"full": {}, "mean": dict(reduction="mean"), "k2": dict(k2=3),
                        "step": dict(k2=4, clip=("step", 0.4)), "fullstep": dict(clip=("step", 0.4))}.items():
        res = bl.bptt(net, xs, y, loss=loss, **kwargs)
        out |= {f"{tag}.loss": np.array(res.loss), f"{tag}.h": res.trace.h, f"{tag}.states": res.trace.states}
        out |= {f"{tag}.trace.{k}": v for k, v in res.trace.arrays.items()}
        out[f"{tag}.trace.keys"] = np.array([ord(c) for c in ",".join(res.trace.arrays)], dtype=float)
        out |= {f"{tag}.grads.{k}": v for k, v in res.grads.items()}
        out |= {f"{tag}.by_copy.{k}": v for k, v in res.by_copy.items()}
        if tag != "fullstep":
            out |= {f"{tag}.by_loss.{k}": v for k, v in res.by_loss.items()}
    for name in net.params:
        out[f"C.{name}"] = bl.contributions(net, xs, y, name, loss=loss, k2=4)
    out["ckpt"] = bl.bptt(net, xs, y, loss=loss, checkpoint=2).grads[net.cell.recurrent[0]]
    out["ckpt.k2"] = bl.bptt(net, xs, y, loss=loss, checkpoint=3, k2=2).grads["V"]
    out["paths"] = bl.bptt_all_paths(net, xs, y, loss=loss, k2=3).grads["c"]
    out["J"] = state_jacobians(net, xs)
    out["G"] = state_gradients(net, xs, y, loss=loss, k2=3, clip=("step", 0.5))
    copy = net.copy()
    bl.train(copy, xs, y, k1=2, k2=3, lr=0.05, epochs=2, loss=loss, progress=False)
    out |= {f"train.{k}": v for k, v in copy.params.items()}
    return out


@pytest.mark.parametrize("cell,act", [(c, "tanh") for c in CELLS] + [("elman", a) for a in ("relu", "sigmoid", "identity")]
                         + [("jordan", "sigmoid")])
@pytest.mark.parametrize("loss", ("mse", "cross_entropy"))
def test_compiled_kernels_agree_with_the_per_copy_tier(cell, act, loss):
    net, xs, y = problem(cell, seed=3, T=7, B=3, O=3, activation=act, loss=loss)
    slow = on_tier("off", lambda: everything(net, xs, y, loss))
    fast = on_tier("eager", lambda: everything(net, xs, y, loss))
    assert on_tier("eager", lambda: tiers.tier(net.cell, net.activation).compiled)
    assert slow.keys() == fast.keys()
    for key in slow:
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-12, atol=1e-12 * max(1.0, np.abs(slow[key]).max()),
                                   err_msg=key)


# -- plugin activations with every built-in cell ------------------------------------------------------------

@pytest.fixture
def softsign(monkeypatch):
    """An activation plugin (NumPy and SymPy only, no Numba code), and the naive reference's own copy."""
    f, df = (lambda a: a / (1 + np.abs(a))), (lambda a: 1 / (1 + np.abs(a)) ** 2)
    act = Activation("softsign", f, lambda a, h: df(a), lambda a: a / (1 + sp.Abs(a)), lambda a: 1 / (1 + sp.Abs(a)) ** 2)
    monkeypatch.setitem(naive.ACTIVATIONS, "softsign", (lambda a: a / (1 + np.abs(a)), lambda a: 1 / (1 + np.abs(a)) ** 2))
    yield bl.registry.activations.register("softsign", act)
    bl.registry.activations.unregister("softsign")


@pytest.mark.parametrize("cell", ("elman", "jordan"))
def test_a_plugin_activation_runs_in_the_elman_and_jordan_cells(softsign, cell):
    net, xs, y = problem(cell, seed=4, H=2, activation="softsign")
    assert not tiers.tier(net.cell, net.activation).compiled  # no Numba code: the per-copy tier
    for kwargs in ({}, dict(k2=2, clip=("step", 0.3))):
        res = bl.bptt(net, xs, y, **kwargs)
        ref = naive.bptt(cell, "softsign", net.params, xs, y, **kwargs)
        assert_close(res.grads, ref.grads, 1e-12, "grads")
        assert_close(res.by_loss, ref.by_loss, 1e-12, "by_loss")
    assert bl.gradcheck(net, xs, y).passed
    assert bl.check(net, xs[:3, 0], y[:3, 0]).passed


@pytest.mark.parametrize("cell,torch", [("gru", "nn.GRU"), ("lstm", "nn.LSTM")])
def test_gated_cells_name_their_fixed_nonlinearities_for_a_plugin_activation(softsign, cell, torch):
    """GRU and LSTM are defined with sigmoid gates and a tanh candidate: any other activation is refused
    when the network is made (never later, by the engine), with the reason."""
    with pytest.raises(ValueError, match=f"activation must be 'tanh' for the {cell} cell, got 'softsign'.*{torch}"):
        bl.make(cell, activation="softsign")


# -- no wait --------------------------------------------------------------------------------------------------

class SlowCell(ElmanCell):
    """An Elman cell whose compilation (its own key) the test controls."""

    name = "slow_elman"


@pytest.fixture
def slow(monkeypatch):
    previous = compilation.set_mode("background")
    release = threading.Event()
    started = threading.Event()
    real = tiers.exercise

    def held(cell):
        started.set()
        release.wait(60)
        real(cell)

    monkeypatch.setattr(tiers, "exercise", held)
    cell = bl.registry.cells.register("slow_elman", SlowCell())
    yield cell, release, started
    release.set()
    bl.registry.cells.unregister("slow_elman")
    compilation._ready.discard(SlowCell)
    compilation._threads.pop(SlowCell, None)
    compilation.set_mode(previous)


def test_results_never_wait_for_the_compiler_and_the_compiled_tier_takes_over(slow):
    cell, release, started = slow
    net = bl.make("slow_elman", n_in=2, n_hidden=3, n_out=2, seed=5)
    rng = np.random.default_rng(5)
    xs, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    ref = naive.bptt("elman", "tanh", net.params, xs, y, k2=3)
    first = bl.bptt(net, xs, y, k2=3)  # starts the compilation, which is held: per-copy tier
    assert started.wait(30)
    for _ in range(5):  # calls racing with the compilation: answered at once, by the per-copy tier
        t0 = time.perf_counter()
        res = bl.bptt(net, xs, y, k2=3)
        assert time.perf_counter() - t0 < 5.0
        assert not tiers.tier(net.cell, net.activation).compiled
        assert_close(res.grads, ref.grads, 1e-12, "grads during compilation")
    assert_close(first.by_loss, ref.by_loss, 1e-12, "by_loss")
    release.set()
    compilation._threads[SlowCell].join(120)
    assert tiers.tier(net.cell, net.activation).compiled
    assert_close(bl.bptt(net, xs, y, k2=3).grads, ref.grads, 1e-12, "compiled")
    assert_close(first.by_copy, ref.by_copy, 1e-12, "a per-copy result read after the switch")


def test_the_compile_mode_is_checked():
    with pytest.raises(ValueError, match="BPTTLAB_COMPILE must be one of background, eager, off, got 'later'"):
        compilation.set_mode("later")
    out = subprocess.run([sys.executable, "-c", "import bpttlab as bl, numpy as np; bl.bptt(bl.make(), np.ones((2, 1)), "
                          "np.ones((2, 1)))"], env=dict(os.environ, BPTTLAB_COMPILE="later"), capture_output=True,
                         text=True)
    assert out.returncode == 1 and "BPTTLAB_COMPILE must be one of background, eager, off, got 'later'" in out.stderr


def test_every_exercise_reference_is_the_same_on_both_tiers():
    """The grader's references read the trace's named arrays (a, gates): both tiers provide them."""
    from bpttlab.grading import exercises
    from bpttlab.grading.instances import public_instances

    for ex in exercises():
        for inst in public_instances(ex):
            slow = on_tier("off", lambda: ex.reference(**inst.inputs))
            fast = on_tier("eager", lambda: ex.reference(**inst.inputs))
            for key in (slow if isinstance(slow, dict) else {None: slow}):
                a, b = (slow, fast) if key is None else (slow[key], fast[key])
                np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=f"{ex.id} {key}")


NUMPY_TIER_ONLY = """
import sys
import numpy as np
import bpttlab as bl
net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=0)
xs, y = np.ones((6, 1)), np.zeros((6, 1))
bl.bptt(net, xs, y)
bl.bptt(net, xs, y, k2=2, clip=("step", 1.0))
bl.contributions(net, xs, y, wrt="W")
print("numba" in sys.modules, "sympy" in sys.modules)
"""


def test_the_per_copy_tier_runs_without_importing_numba_or_sympy():
    """Compiled kernels live in modules of their own (``CompiledKernels``), so a process that only uses
    the NumPy tier never pays Numba's import (nor SymPy's)."""
    out = subprocess.run([sys.executable, "-c", NUMPY_TIER_ONLY], env=dict(os.environ, BPTTLAB_COMPILE="off"),
                         capture_output=True, text=True, check=True)
    assert out.stdout == "False False\n"
