"""Test cases for the engine tests: small networks with data, clip thresholds that bite, error measures."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import bpttlab as bl
import naive

CELLS = ("elman", "jordan")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
LOSSES = ("mse", "cross_entropy")
REDUCTIONS = ("sum", "mean")
CLIP_MODES = (None, "norm", "value", "step")


def targets(loss, rng, T, B, O, batched):
    shape = (T, B) if batched else (T,)
    if loss == "cross_entropy":
        return rng.integers(0, O, size=shape)
    return rng.normal(size=shape + (O,))


def leaky_integrator(T, B, decay, seed):
    """A learnable sequence task: inputs x_t ~ U(-1, 1) of shape (T, B, 1) and targets
    y_t = decay * y_{t-1} + 0.5 x_t from y_0 = 0."""
    xs = np.random.default_rng(seed).uniform(-1, 1, size=(T, B, 1))
    y = np.zeros_like(xs)
    for t in range(T):
        y[t] = 0.5 * xs[t] + (decay * y[t - 1] if t > 0 else 0.0)
    return xs, y


def make_case(cell, act, loss, batched, seed=0, T=4, B=2, D=2, H=3, O=3, margin=0.0, h0=False):
    """A network with random (non-zero) biases, inputs and targets.

    With ``margin`` > 0 and relu, seeds are tried in turn until every pre-activation a_t is at least
    ``margin`` away from the kink at 0, so that finite differences with a smaller step see a smooth function.
    """
    for attempt in range(200):
        rng = np.random.default_rng([seed, attempt])
        net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation=act, seed=int(rng.integers(2 ** 31)))
        for name, p in net.params.items():
            if p.ndim == 1:
                net.params[name] = rng.normal(scale=0.5, size=p.shape)
        xs = rng.normal(size=(T, B, D) if batched else (T, D))
        y = targets(loss, rng, T, B, O, batched)
        S = net.state_size
        s0 = rng.normal(scale=0.5, size=(B, S) if batched else (S,)) if h0 else None
        case = SimpleNamespace(cell=cell, act=act, loss=loss, net=net, xs=xs, y=y, h0=s0, T=T,
                               B=B if batched else 1, S=S)
        if act != "relu" or margin <= 0:
            return case
        xb, _ = naive.batched(xs, y, loss)
        start = np.zeros((xb.shape[1], S)) if s0 is None else np.broadcast_to(s0, (xb.shape[1], S))
        tr = naive.forward(cell, act, [net.params] * T, xb, start)
        if np.min(np.abs(tr.a)) > margin and np.any(tr.a > 0):
            return case
    raise AssertionError("no seed gave pre-activations away from the relu kink")


def reference(case, reduction="sum", k2=None, clip=None):
    """The naive reference for a case."""
    return naive.bptt(case.cell, case.act, case.net.params, case.xs, case.y, case.loss, reduction, k2, clip,
                      case.h0)


def engine(case, reduction="sum", k2=None, clip=None):
    return bl.bptt(case.net, case.xs, case.y, loss=case.loss, reduction=reduction, k2=k2, clip=clip, h0=case.h0)


def biting_clip(case, mode, reduction="sum", k2=None):
    """A clip spec (mode, tau) whose threshold changes the result and sits well between two values.

    norm: half the gradient norm. value: between the two largest distinct |entries|. step: midway (in
    log scale) between two middle norms of the back-propagated dE/ds_t (of the summed chain, or of each
    loss's own chain with k2), so some steps clip and some do not.
    """
    if mode is None:
        return None
    ref = reference(case, reduction, k2)
    flat = np.concatenate([g.ravel() for g in ref.raw_grads.values()])
    if mode == "norm":
        return "norm", 0.5 * float(np.linalg.norm(flat))
    if mode == "value":
        top = np.unique(np.abs(flat))[-2:]
        return "value", float(np.sqrt(top[0] * top[1]))
    norms = []
    xs, y = naive.batched(case.xs, case.y, case.loss)
    T, B = xs.shape[:2]
    scale = 1.0 / (T * B) if reduction == "mean" else 1.0
    dO = naive.loss_grads(case.loss, ref.trace.o, y) * scale
    copies = [case.net.params] * T
    if k2 is None:
        naive.backprop(case.cell, case.act, copies, ref.trace, xs, dO, set(range(T)), 0, T, norms=norms)
    for t in range(T if k2 is not None else 0):
        naive.backprop(case.cell, case.act, copies, ref.trace, xs, dO, {t}, max(0, t - k2 + 1), t + 1,
                       norms=norms)
    v = np.unique(np.round(norms, 12))
    v = v[v > 0]
    mid = len(v) // 2
    return "step", float(np.sqrt(v[max(0, mid - 1)] * v[mid]))


def rel_err(actual, expected) -> float:
    r"""||actual - expected|| / max(||actual||, ||expected||); 0 when both are exactly zero."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    den = max(np.linalg.norm(a), np.linalg.norm(e))
    return float(np.linalg.norm(a - e) / den) if den > 0 else 0.0


def assert_close(actual: dict, expected: dict, tol: float, what: str = "") -> None:
    """Every parameter's relative error below tol (a table of all of them in the message otherwise)."""
    assert set(actual) == set(expected), f"{what}: parameters {sorted(actual)} != {sorted(expected)}"
    errs = {k: rel_err(actual[k], expected[k]) for k in expected}
    assert max(errs.values()) < tol, f"{what}: relative errors " + ", ".join(
        f"{k}={v:.2e}" for k, v in errs.items()) + f" (tol {tol:g})"
