r"""One pass of the engine: the validated problem, its forward pass and losses, and the backward
operations that every public function (:func:`~bpttlab.engine.bptt`, :func:`~bpttlab.engine.contributions`,
TBPTT, checkpointing, the all-paths algorithm, gradient flow) is built from.
"""
from __future__ import annotations

import math
import os
import sys
import warnings
from dataclasses import dataclass, replace

import numpy as np

from .. import validation as V
from ..network import Network
from .tiers import Compiled, PerCopy, tier

#: The most numbers a contributions table (or a by_loss chunk) may hold.
TABLE_LIMIT = 2 ** 24


@dataclass
class Pass:
    """Everything a backward pass needs, validated once."""

    net: Network
    batch: V.Batch
    s0: np.ndarray
    trace: dict[str, np.ndarray]
    E: np.ndarray
    dO: np.ndarray
    scale: float
    tier: PerCopy | Compiled


def prepare(net, xs, targets, loss, reduction, h0, compiled: bool | None = None) -> Pass:
    """Validate a problem, run it forward on the tier that is ready (or the one forced by ``compiled``,
    see :func:`bpttlab.engine.tiers.tier`) and compute its losses E (T, B) and dE_t/do_t (T, B, O)."""
    pb = V.problem(net, xs, targets, loss, reduction, h0)
    batch, s0, loss_obj, y, red = pb.batch, pb.s0, pb.loss, pb.y, pb.reduction
    runner = tier(net.cell, net.activation, compiled)
    with np.errstate(all="ignore"):  # overflow is reported once, just below
        tr = runner.forward(net.params, batch.xs, s0)
    warn_nonfinite(tr["outputs"], "output")
    scale = 1.0 / (batch.T * batch.B) if red == "mean" else 1.0
    with np.errstate(all="ignore"):
        E = loss_obj.value(tr["outputs"], y) * scale
        dO = np.ascontiguousarray(loss_obj.grad(tr["outputs"], y) * scale)
    return Pass(net, batch, s0, tr, E, dO, scale, runner)


def warn_nonfinite(a: np.ndarray, what: str, offset: int = 0) -> bool:
    """Warn if a (T, ...) holds NaN/inf, naming the first such time step (shifted by ``offset``, the
    position of a[0] in the sequence); returns whether it warned."""
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    if bad.any():
        warn_nonfinite_from(offset + int(np.argmax(bad)) + 1, what)
    return bool(bad.any())


def warn_nonfinite_from(t: int, what: str) -> None:
    warnings.warn(f"non-finite {what} from time step t={t} on (values exploded); "
                  "try a smaller learning rate, clipping or a smaller weight scale",
                  RuntimeWarning, stacklevel=caller_stacklevel())


def caller_stacklevel() -> int:
    """The ``stacklevel`` (for a warning issued by our caller) of the first frame outside bpttlab, so the
    warning points at the user's line whichever public function it came through."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def gradient(p: Pass, k2: int | None, tau: float, per_copy: bool = False) -> dict[str, np.ndarray]:
    """dE/dtheta of the pass (k2-truncated, step-clipped by tau), summed or per copy (T, *shape)."""
    T = p.batch.T
    params, runner = p.net.params, p.tier
    with np.errstate(all="ignore"):  # a non-finite gradient is reported once, by the caller
        if k2 is None or (k2 >= T and tau == 0.0):
            return runner.backward(params, p.trace, p.batch.xs, p.dO, 0, T, 0, np.zeros_like(p.s0), tau,
                                   per_copy)[1]
        return runner.truncated(params, p.trace, p.batch.xs, p.dO, min(k2, T), tau, per_copy)


def check_table_size(what: str, numbers: int, detail: str, advice: str) -> None:
    """Refuse a quadratic table or computation that would pass TABLE_LIMIT numbers, saying why."""
    if numbers > TABLE_LIMIT:
        raise ValueError(f"{what} would hold {numbers:,} numbers ({detail}), more than the limit "
                         f"{TABLE_LIMIT:,}; {advice}")


def chain_tables(p: Pass, t_lo: int, t_hi: int, k2: int, tau: float, wrt) -> dict[str, np.ndarray]:
    """C[t][k] of the losses t_lo <= t < t_hi for the parameters in ``wrt``: (t_hi - t_lo, T, *shape)."""
    with np.errstate(all="ignore"):
        return p.tier.chains(p.net.params, p.trace, p.batch.xs, p.dO, t_lo, t_hi, k2, tau, tuple(wrt))


def by_loss_tables(p: Pass, k2: int | None, tau: float, step_clip_full: bool) -> dict[str, np.ndarray]:
    r"""by_loss[t] = dE_t/dtheta = sum_k C[t][k] for every parameter, one chain per loss, in chunks of
    losses whose tables fit TABLE_LIMIT.

    Raises:
        ValueError: full BPTT with step clipping (no per-loss split exists), or the chains would sum more
            than TABLE_LIMIT numbers: T * min(k2, T) terms of every parameter's size, quadratic in T.
    """
    if step_clip_full:
        raise ValueError("by_loss is not defined for clip=('step', tau) without k2: full BPTT clips the "
                         "summed dE/dh, which does not split per loss. Pass k2=T to clip each loss's chain.")
    T, B = p.batch.T, p.batch.B
    k2e = T if k2 is None else min(k2, T)
    size = sum(int(np.prod(shape)) for shape in p.net.shapes.values())
    check_table_size("by_loss", T * k2e * size,
                     f"T={T} losses x {k2e} copies each x {size} parameter entries",
                     "it is quadratic in T: use a shorter sequence or a smaller k2, or by_copy / grads, "
                     "which are linear in T")
    out = {name: np.zeros((T,) + shape) for name, shape in p.net.shapes.items()}
    per_loss = p.tier.numbers_per_loss(p.net, T, B)
    n = max(1, min(T, TABLE_LIMIT // max(1, per_loss)))
    for lo in range(0, T, n):
        hi = min(T, lo + n)
        for name, table in chain_tables(p, lo, hi, k2e, tau, out).items():
            out[name][lo:hi] = table.sum(axis=1)
    return out


def frozen(p: Pass, params: dict[str, np.ndarray]) -> Pass:
    """The pass with the network's parameters replaced by the snapshot taken when it ran."""
    net = p.net
    return replace(p, net=Network(net.cell, net.activation, net.n_in, net.n_hidden, net.n_out, params))


def norm(grads: dict[str, np.ndarray]) -> float:
    """The global L2 norm of a gradient."""
    return math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values()))


def warn_nonfinite_gradient(value: float) -> None:
    """Warn (at the user's line) when a gradient norm is not finite."""
    if not math.isfinite(value):
        warnings.warn("the gradient is not finite (values exploded during the pass); use clipping or a "
                      "smaller weight scale", RuntimeWarning, stacklevel=caller_stacklevel())


def clip_after(raw: dict[str, np.ndarray], norm: float, clip) -> tuple[dict[str, np.ndarray], bool]:
    if clip is None or clip[0] == "step":
        return {k: v.copy() for k, v in raw.items()}, False
    mode, tau = clip
    if mode == "norm":
        if norm > tau:
            return {k: v * (tau / norm) for k, v in raw.items()}, True
        return {k: v.copy() for k, v in raw.items()}, False
    clipped = {k: np.clip(v, -tau, tau) for k, v in raw.items()}
    return clipped, any(np.any(np.abs(v) > tau) for v in raw.values())
