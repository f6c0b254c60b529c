r"""The public numeric API: forward pass, BPTT gradients and the per-timestep decomposition.

For a loss :math:`E = \sum_t E_t` (or its mean over the T*B terms) of an unrolled network,
:func:`bptt` returns :math:`\partial E/\partial\theta` for every parameter in linear time (one backward
recursion, :meth:`Cell.window`), and, on request, the per-timestep decomposition of ARCHITECTURE.md:

.. math::

    \frac{\partial E_t}{\partial \theta} = \sum_{k=1}^{t} C[t][k], \qquad
    \text{by\_loss}[t] = \sum_k C[t][k], \qquad \text{by\_copy}[k] = \sum_{t \ge k} C[t][k].

``by_copy`` comes from the same backward pass; ``by_loss`` and :func:`contributions` need one chain per
loss (quadratic in T) and are computed only when asked for, with a size limit.

Truncation ``k2`` keeps only :math:`C[t][k]` with :math:`k > t - k2`. Clipping: ("norm", tau) rescales
the whole gradient to norm tau, ("value", tau) clips each entry, both after the pass, and ("step", tau)
rescales the back-propagated :math:`\partial E/\partial s_k` of each copy (per sequence in the batch)
during the pass. The decompositions describe the gradient before "norm"/"value" clipping
(``res.raw_grads``), and include "step" clipping, which changes the terms themselves.
"""
from __future__ import annotations

import math
import os
import sys
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from . import registry
from . import validation as V
from .cells.base import assemble, assemble_table
from .losses import CROSS_ENTROPY, MSE, Loss
from .network import Network

#: The most numbers a contributions table (or a by_loss chunk) may hold.
TABLE_LIMIT = 2 ** 24


@dataclass
class Trace:
    """A forward pass. Arrays are (T+1, [B,] n) for states (index 0 = the initial state), (T, [B,] n)
    for the rest; the batch axis is present only if the inputs had one."""

    xs: np.ndarray
    arrays: dict[str, np.ndarray]
    batched: bool

    def _view(self, a: np.ndarray) -> np.ndarray:
        return a if self.batched else a[:, 0]

    @property
    def h(self) -> np.ndarray:
        """Hidden states h_0..h_T."""
        return self._view(self.arrays["h"])

    @property
    def states(self) -> np.ndarray:
        """Recurrent states s_0..s_T (h for Elman, o for Jordan)."""
        return self._view(self.arrays["states"])

    @property
    def outputs(self) -> np.ndarray:
        """Outputs o_1..o_T."""
        return self._view(self.arrays["outputs"])

    def __repr__(self) -> str:
        T, B = self.xs.shape[:2]
        return f"Trace(T={T}{f', B={B}' if self.batched else ''}, h{self.h.shape}, outputs{self.outputs.shape})"


@dataclass
class BPTTResult:
    """Result of :func:`bptt`.

    Attributes:
        loss: the total loss E (sum, or mean over T*B).
        losses: E_t per time step (T,), summed over the batch and scaled like ``loss``.
        grads: dE/dtheta per parameter, after clipping.
        raw_grads: the gradient before "norm"/"value" clipping.
        grad_norm: global L2 norm of ``raw_grads``.
        clipped: whether clipping changed the gradient.
        trace: the forward pass (None for a checkpointed pass, which does not keep it).
        by_copy: name -> (T, *shape), the gradient reaching each copy of the parameter.
        by_loss: name -> (T, *shape), dE_t/dtheta per loss (computed on first access).
    """

    loss: float
    losses: np.ndarray
    grads: dict[str, np.ndarray]
    raw_grads: dict[str, np.ndarray]
    grad_norm: float
    clipped: bool
    trace: Trace
    k2: int | None
    clip: tuple[str, float] | None
    _by_copy: Callable[[], dict] = field(repr=False)
    _by_loss: Callable[[], dict] = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def by_copy(self) -> dict[str, np.ndarray]:
        if "by_copy" not in self._cache:
            self._cache["by_copy"] = self._by_copy()
        return self._cache["by_copy"]

    @property
    def by_loss(self) -> dict[str, np.ndarray]:
        if "by_loss" not in self._cache:
            self._cache["by_loss"] = self._by_loss()
        return self._cache["by_loss"]

    def __repr__(self) -> str:
        names = ", ".join(f"{k}{v.shape}" for k, v in self.grads.items())
        extra = (f", k2={self.k2}" if self.k2 else "") + (f", clip={self.clip}" if self.clip else "")
        return f"BPTTResult(loss={self.loss:.6g}, grad_norm={self.grad_norm:.6g}{extra}; grads: {names})"


@dataclass
class _Pass:
    """Everything a backward pass needs, validated once."""

    net: Network
    batch: V.Batch
    s0: np.ndarray
    trace: dict[str, np.ndarray]
    E: np.ndarray
    dO: np.ndarray
    scale: float


def _prepare(net, xs, targets, loss, reduction, h0) -> _Pass:
    pb = V.problem(net, xs, targets, loss, reduction, h0)
    batch, s0, loss_obj, y, red = pb.batch, pb.s0, pb.loss, pb.y, pb.reduction
    tr = net.cell.forward(net.params, batch.xs, s0, net.activation)
    _warn_nonfinite(tr["outputs"], "output")
    scale = 1.0 / (batch.T * batch.B) if red == "mean" else 1.0
    with np.errstate(all="ignore"):
        E = loss_obj.value(tr["outputs"], y) * scale
        dO = np.ascontiguousarray(loss_obj.grad(tr["outputs"], y) * scale)
    return _Pass(net, batch, s0, tr, E, dO, scale)


def _warn_nonfinite(a: np.ndarray, what: str, offset: int = 0) -> bool:
    """Warn if a (T, ...) holds NaN/inf, naming the first such time step (shifted by ``offset``, the
    position of a[0] in the sequence); returns whether it warned."""
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    if bad.any():
        _warn_nonfinite_from(offset + int(np.argmax(bad)) + 1, what)
    return bool(bad.any())


def _warn_nonfinite_from(t: int, what: str) -> None:
    warnings.warn(f"non-finite {what} from time step t={t} on (values exploded); "
                  "try a smaller learning rate, clipping or a smaller weight scale",
                  RuntimeWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The ``stacklevel`` (for a warning issued by our caller) of the first frame outside bpttlab, so the
    warning points at the user's line whichever public function it came through."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _zeros(p: _Pass, lead: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    T, B = p.batch.T, p.batch.B
    sizes = p.net.cell.site_sizes(p.net.n_in, p.net.n_hidden, p.net.n_out)
    return {s: np.zeros(lead + (T, B, n)) for s, n in sizes.items()}


def _site_cotangents(p: _Pass, k2: int | None, tau: float) -> dict[str, np.ndarray]:
    cell, act = p.net.cell, p.net.activation
    cots = _zeros(p)
    T = p.batch.T
    if k2 is None or (k2 >= T and tau == 0.0):
        cell.window(p.net.params, p.trace, p.dO, act, cots, 0, T, 0, np.zeros_like(p.s0), tau)
    else:
        cell.truncated(p.net.params, p.trace, p.dO, act, cots, min(k2, T), tau)
    return cots


def _chunks(p: _Pass, per_loss_numbers: int):
    """Loss ranges [t_lo, t_hi) small enough that one chunk of per-loss tables fits TABLE_LIMIT."""
    T = p.batch.T
    n = max(1, min(T, TABLE_LIMIT // max(1, per_loss_numbers)))
    return [(lo, min(T, lo + n)) for lo in range(0, T, n)]


def _chain_tables(p: _Pass, t_lo: int, t_hi: int, k2: int, tau: float) -> dict[str, np.ndarray]:
    tables = _zeros(p, (t_hi - t_lo,))
    p.net.cell.chains(p.net.params, p.trace, p.dO, p.net.activation, tables, t_lo, t_hi, k2, tau)
    return tables


def _by_loss(p: _Pass, k2: int | None, tau: float, step_clip_full: bool) -> dict[str, np.ndarray]:
    if step_clip_full:
        raise ValueError("by_loss is not defined for clip=('step', tau) without k2: full BPTT clips the "
                         "summed dE/dh, which does not split per loss. Pass k2=T to clip each loss's chain.")
    T = p.batch.T
    k2e = T if k2 is None else min(k2, T)
    sizes = p.net.cell.site_sizes(p.net.n_in, p.net.n_hidden, p.net.n_out)
    per_loss = T * p.batch.B * sum(sizes.values())
    out = {name: np.zeros((T,) + shape) for name, shape in p.net.shapes.items()}
    for lo, hi in _chunks(p, per_loss):
        tables = _chain_tables(p, lo, hi, k2e, tau)
        for name in out:
            out[name][lo:hi] = assemble_table(p.net.cell, p.trace, p.batch.xs, tables, name).sum(axis=1)
    return out


_F64 = np.dtype(np.float64)
_SHAPES: dict[tuple, dict[str, tuple[int, ...]]] = {}


def _ready(a, shape: tuple[int, ...]) -> bool:
    """Whether ``a`` is already a float64 C-order ndarray of this shape (finiteness is checked later).
    False is safe (it only means "take the general path"), so the dtype test is by identity."""
    return type(a) is np.ndarray and a.shape == shape and a.dtype is _F64 and a.flags.c_contiguous


def _fused_full(net, xs, targets, loss, reduction, k2, clip, h0):
    """Full BPTT through the cell's fused kernel (:meth:`Cell.full_bptt`) when the call qualifies.

    It qualifies when there is no truncation (k2 None or >= T) and no step clipping, the loss is the
    built-in mse or cross_entropy, and the network's parameters and the inputs are float64 arrays in
    C order of the right shapes. Targets and h0 are validated as usual; NaN/inf in any input make the
    kernel stop at once. Returns None in every other case, and the general path then validates in full
    (raising the usual errors, in the usual order) and computes the gradient. This is the hot path of
    small problems, where checks cost more than the arithmetic: they are kept to cheap tests here.

    Returns:
        (pass, k2, clip, gradients, norm, losses, loss) or None.
    """
    if type(xs) is not np.ndarray or xs.dtype is not _F64 or not isinstance(net, Network) \
            or reduction not in V.REDUCTIONS:
        return None
    try:
        loss_obj = loss if isinstance(loss, Loss) else registry.losses.get(loss)
        clip = V.clip(clip)
    except (TypeError, ValueError):
        return None
    if (loss_obj is not MSE and loss_obj is not CROSS_ENTROPY) or (clip is not None and clip[0] == "step"):
        return None
    cell, D, O = net.cell, net.n_in, net.n_out
    key = (cell, D, net.n_hidden, O)
    shapes = _SHAPES.get(key)
    if shapes is None:
        shapes = _SHAPES[key] = cell.param_shapes(D, net.n_hidden, O)
    params = net.params
    for name, shape in shapes.items():
        if not _ready(params.get(name), shape):
            return None
    shape = xs.shape
    batched = len(shape) == 3
    if not (batched or len(shape) == 2) or shape[-1] != D or 0 in shape or not xs.flags.c_contiguous:
        return None
    T, B = shape[0], shape[1] if batched else 1
    if k2 is not None and (type(k2) is not int or k2 < T):
        return None
    batch = V.Batch(xs if batched else xs.reshape(T, 1, D), batched)
    if loss_obj is MSE and _ready(targets, (T, B, O) if batched else (T, O)):
        y = targets if batched else targets.reshape(T, 1, O)
    else:
        try:
            y = V.targets(loss_obj, targets, net, batch)
        except (TypeError, ValueError):
            return None
    if h0 is None:
        s0 = np.zeros((B, cell.state_size(net.n_hidden, O)))
    else:
        try:
            s0 = V.initial_state(net, h0, batch)
        except (TypeError, ValueError):
            return None
    scale = 1.0 / (T * B) if reduction == "mean" else 1.0
    fp = cell.full_bptt(params, batch.xs, y, s0, net.activation, scale)
    if fp is None:
        return None
    if fp.first_bad >= 0:
        _warn_nonfinite_from(fp.first_bad + 1, "output")
    p = _Pass(net, batch, s0, fp.trace, fp.E, fp.dO, scale)
    return p, k2, clip, fp.grads, math.sqrt(fp.norm2), fp.losses, fp.loss


def forward(net: Network, xs, h0=None) -> Trace:
    """Run the network forward.

    Args:
        net: from :func:`bpttlab.make`.
        xs: inputs (T, D) or (T, B, D).
        h0: initial state s_0 ((S,) or (B, S)); zeros if None.

    Returns:
        a :class:`Trace` with ``h``, ``states`` and ``outputs``.
    """
    V.check_network(net)
    batch = V.inputs(net, xs)
    s0 = V.initial_state(net, h0, batch)
    tr = net.cell.forward(net.params, batch.xs, s0, net.activation)
    _warn_nonfinite(tr["outputs"], "output")
    return Trace(batch.xs, tr, batch.batched)


def bptt(net: Network, xs, targets, loss="mse", reduction: str = "sum", k2: int | None = None,
         clip=None, h0=None, checkpoint=None) -> BPTTResult:
    r"""Gradients of the total loss by backpropagation through time.

    .. math::

        \frac{\partial E}{\partial \theta} = \sum_{t=1}^{T} \sum_{k=\max(1, t-k_2+1)}^{t} C[t][k]

    Args:
        net: the network.
        xs: inputs (T, D) or (T, B, D).
        targets: (T, O) / (T, B, O) for mse, integer classes (T,) / (T, B) for cross_entropy.
        loss: a registered loss name or a Loss.
        reduction: "sum" or "mean" (divide by T*B).
        k2: truncation: each E_t back-propagates through its last k2 copies; None = full BPTT.
        clip: None, ("norm", tau), ("value", tau) or ("step", tau).
        h0: initial state; zeros if None.
        checkpoint: None keeps the whole forward pass; "sqrt" or n stores only n states and recomputes
            the rest during the backward pass (same gradients, a fraction of the memory; no trace,
            by_copy or by_loss), see :mod:`bpttlab.checkpoint`.

    Returns:
        a :class:`BPTTResult`.

    Example:
        >>> import numpy as np, bpttlab as bl
        >>> net = bl.make("elman", n_in=1, n_hidden=2, n_out=1, seed=0)
        >>> res = bl.bptt(net, np.ones((3, 1)), np.zeros((3, 1)))
        >>> np.allclose(sum(res.by_copy["W"]), res.grads["W"])
        True
    """
    if checkpoint is not None:
        from .checkpoint import checkpointed_bptt

        return checkpointed_bptt(net, xs, targets, loss, reduction, k2, clip, h0, checkpoint)
    fused = _fused_full(net, xs, targets, loss, reduction, k2, clip, h0)
    if fused is not None:
        p, k2, clip, raw, norm, losses, total = fused
        tau, cots = 0.0, None
    else:
        p = _prepare(net, xs, targets, loss, reduction, h0)
        k2 = V.positive_int(k2, "k2", allow_none=True)
        clip = V.clip(clip)
        tau = clip[1] if clip and clip[0] == "step" else 0.0
        cots = _site_cotangents(p, k2, tau)
        raw = assemble(net.cell, p.trace, p.batch.xs, cots)
        norm = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in raw.values()))
        losses, total = p.E.sum(axis=1), float(p.E.sum())
    if not math.isfinite(norm):
        warnings.warn("the gradient is not finite (values exploded during the pass); use clipping or a "
                      "smaller weight scale", RuntimeWarning, stacklevel=2)
    grads, clipped = _clip_after(raw, norm, clip)
    snapshot = {k: v.copy() for k, v in net.params.items()}

    def by_copy():
        # the fused kernel keeps no site cotangents: one backward pass recomputes them
        c = cots if cots is not None else _site_cotangents(_frozen(p, snapshot), None, 0.0)
        return assemble(net.cell, p.trace, p.batch.xs, c, per_copy=True)

    return BPTTResult(
        loss=total, losses=losses, grads=grads, raw_grads=raw, grad_norm=norm,
        clipped=clipped or tau > 0.0, trace=Trace(p.batch.xs, p.trace, p.batch.batched), k2=k2, clip=clip,
        _by_copy=by_copy, _by_loss=lambda: _by_loss(_frozen(p, snapshot), k2, tau, tau > 0.0 and k2 is None))


def _frozen(p: _Pass, params: dict[str, np.ndarray]) -> _Pass:
    """The pass with the network's parameters replaced by the snapshot taken when it ran."""
    net = p.net
    return replace(p, net=Network(net.cell, net.activation, net.n_in, net.n_hidden, net.n_out, params))


def _clip_after(raw: dict[str, np.ndarray], norm: float, clip) -> tuple[dict[str, np.ndarray], bool]:
    if clip is None or clip[0] == "step":
        return {k: v.copy() for k, v in raw.items()}, False
    mode, tau = clip
    if mode == "norm":
        if norm > tau:
            return {k: v * (tau / norm) for k, v in raw.items()}, True
        return {k: v.copy() for k, v in raw.items()}, False
    clipped = {k: np.clip(v, -tau, tau) for k, v in raw.items()}
    return clipped, any(np.any(np.abs(v) > tau) for v in raw.values())


def contributions(net: Network, xs, targets, wrt: str, loss="mse", reduction: str = "sum",
                  k2: int | None = None, h0=None) -> np.ndarray:
    r"""The table of per-timestep contributions :math:`C[t][k]` for one parameter.

    .. math::

        C[t][k] = \frac{\partial E_t}{\partial h_t}\,\frac{\partial h_t}{\partial h_k}\,
                  \frac{\partial^+ h_k}{\partial \theta}

    Returns:
        array (T, T, *shape) with ``C[t-1, k-1]``; zero for k > t and, with truncation, for k <= t - k2.
        Row sums are ``by_loss``, column sums ``by_copy``, the diagonal is the explicit part.

    Raises:
        ValueError: ``wrt`` is not a parameter, or the table would hold more than TABLE_LIMIT numbers
            (it is quadratic in T: use a shorter sequence, or by_loss/by_copy).
    """
    V.check_network(net)
    if wrt not in net.shapes:
        raise ValueError(f"wrt must be one of the parameters {', '.join(net.shapes)}, got {wrt!r}")
    return contribution_tables(net, xs, targets, (wrt,), loss, reduction, k2, h0)[wrt]


def contribution_tables(net: Network, xs, targets, wrt, loss="mse", reduction: str = "sum",
                        k2: int | None = None, h0=None) -> dict[str, np.ndarray]:
    """:func:`contributions` for each parameter named in ``wrt``, from one forward pass and one set of
    chain tables (what :func:`bpttlab.check` compares term by term)."""
    V.check_network(net)
    p = _prepare(net, xs, targets, loss, reduction, h0)
    k2 = V.positive_int(k2, "k2", allow_none=True)
    T, B = p.batch.T, p.batch.B
    sizes = net.cell.site_sizes(net.n_in, net.n_hidden, net.n_out)
    for name in wrt:
        numbers = T * T * max(int(np.prod(net.shapes[name])), B * sum(sizes.values()))
        if numbers > TABLE_LIMIT:
            raise ValueError(f"the contributions table for {name} would hold {numbers:,} numbers (T={T}, "
                             f"{name}{net.shapes[name]}, B={B}), more than the limit {TABLE_LIMIT:,}; use a "
                             "shorter sequence or bptt(...).by_loss / .by_copy, which are the table's row and "
                             "column sums")
    tables = _chain_tables(p, 0, T, T if k2 is None else min(k2, T), 0.0)
    return {name: assemble_table(net.cell, p.trace, p.batch.xs, tables, name) for name in wrt}
