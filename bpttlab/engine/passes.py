r"""One pass of the engine: the validated problem, its forward pass and losses, and the backward
operations that every public function (:func:`~bpttlab.engine.bptt`, :func:`~bpttlab.engine.contributions`,
TBPTT, checkpointing, the all-paths algorithm, gradient flow) is built from.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, replace

import numpy as np

from .. import validation as V
from ..cells.base import assemble, assemble_table
from ..network import Network

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


def prepare(net, xs, targets, loss, reduction, h0) -> Pass:
    pb = V.problem(net, xs, targets, loss, reduction, h0)
    batch, s0, loss_obj, y, red = pb.batch, pb.s0, pb.loss, pb.y, pb.reduction
    tr = net.cell.forward(net.params, batch.xs, s0, net.activation)
    warn_nonfinite(tr["outputs"], "output")
    scale = 1.0 / (batch.T * batch.B) if red == "mean" else 1.0
    with np.errstate(all="ignore"):
        E = loss_obj.value(tr["outputs"], y) * scale
        dO = np.ascontiguousarray(loss_obj.grad(tr["outputs"], y) * scale)
    return Pass(net, batch, s0, tr, E, dO, scale)


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


def site_zeros(p: Pass, lead: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    T, B = p.batch.T, p.batch.B
    sizes = p.net.cell.site_sizes(p.net.n_in, p.net.n_hidden, p.net.n_out)
    return {s: np.zeros(lead + (T, B, n)) for s, n in sizes.items()}


def site_cotangents(p: Pass, k2: int | None, tau: float) -> dict[str, np.ndarray]:
    cell, act = p.net.cell, p.net.activation
    cots = site_zeros(p)
    T = p.batch.T
    if k2 is None or (k2 >= T and tau == 0.0):
        cell.window(p.net.params, p.trace, p.dO, act, cots, 0, T, 0, np.zeros_like(p.s0), tau)
    else:
        cell.truncated(p.net.params, p.trace, p.dO, act, cots, min(k2, T), tau)
    return cots


def loss_chunks(p: Pass, per_loss_numbers: int):
    """Loss ranges [t_lo, t_hi) small enough that one chunk of per-loss tables fits TABLE_LIMIT."""
    T = p.batch.T
    n = max(1, min(T, TABLE_LIMIT // max(1, per_loss_numbers)))
    return [(lo, min(T, lo + n)) for lo in range(0, T, n)]


def chain_tables(p: Pass, t_lo: int, t_hi: int, k2: int, tau: float) -> dict[str, np.ndarray]:
    tables = site_zeros(p, (t_hi - t_lo,))
    p.net.cell.chains(p.net.params, p.trace, p.dO, p.net.activation, tables, t_lo, t_hi, k2, tau)
    return tables


def by_loss_tables(p: Pass, k2: int | None, tau: float, step_clip_full: bool) -> dict[str, np.ndarray]:
    if step_clip_full:
        raise ValueError("by_loss is not defined for clip=('step', tau) without k2: full BPTT clips the "
                         "summed dE/dh, which does not split per loss. Pass k2=T to clip each loss's chain.")
    T = p.batch.T
    k2e = T if k2 is None else min(k2, T)
    sizes = p.net.cell.site_sizes(p.net.n_in, p.net.n_hidden, p.net.n_out)
    per_loss = T * p.batch.B * sum(sizes.values())
    out = {name: np.zeros((T,) + shape) for name, shape in p.net.shapes.items()}
    for lo, hi in loss_chunks(p, per_loss):
        tables = chain_tables(p, lo, hi, k2e, tau)
        for name in out:
            out[name][lo:hi] = assemble_table(p.net.cell, p.trace, p.batch.xs, tables, name).sum(axis=1)
    return out


def frozen(p: Pass, params: dict[str, np.ndarray]) -> Pass:
    """The pass with the network's parameters replaced by the snapshot taken when it ran."""
    net = p.net
    return replace(p, net=Network(net.cell, net.activation, net.n_in, net.n_hidden, net.n_out, params))


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
