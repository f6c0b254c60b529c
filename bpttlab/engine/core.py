r"""The public numeric API: forward pass, BPTT gradients and the per-timestep decomposition.

For a loss :math:`E = \sum_t E_t` (or its mean over the T*B terms) of an unrolled network,
:func:`bptt` returns :math:`\partial E/\partial\theta` for every parameter in linear time (one backward
recursion on the tier that runs the cell, :mod:`bpttlab.engine.tiers`), and, on request, the
per-timestep decomposition of ARCHITECTURE.md:

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

import numpy as np

from .. import registry
from .. import validation as V
from ..losses import CROSS_ENTROPY, MSE, Loss
from ..network import CHECKED, Network
from . import compilation
from .checkpoint import checkpointed_bptt
from .passes import (Pass, by_loss_tables, chain_tables, check_table_size, clip_after, frozen, gradient, norm,
                     prepare, warn_nonfinite, warn_nonfinite_from, warn_nonfinite_gradient)
from .results import BPTTResult, Trace
from .tiers import tier

_F64 = np.dtype(np.float64)


def _ready(a, shape: tuple[int, ...]) -> bool:
    """Whether ``a`` is already a float64 C-order ndarray of this shape (finiteness is checked later).
    False is safe (it only means "take the general path"), so the dtype test is by identity."""
    return type(a) is np.ndarray and a.shape == shape and a.dtype is _F64 and a.flags.c_contiguous


class CheckedParams:
    """A network's parameters as last found fit for a fused kernel: float64 arrays in C order of the cell's
    shapes, and the network's state size. Checking that in full costs more than the arithmetic of a small
    pass, so it is done when the network changes (:class:`~bpttlab.network.Network` drops this record on any
    assignment to it, ``net.params = ...`` included) and when :meth:`fits` finds the arrays changed. A
    repeat call on the :class:`_Plan` made from a full check compares less (:meth:`holds`): only the
    arrays' identity, dtype and number of dimensions, what a compiled entry point needs to read an argument
    at all (:mod:`bpttlab.cells.direct`); shapes and strides can change in place, and the fused kernel
    checks those itself (:meth:`SiteKernels.prepared_full_bptt`). ``plan`` is the plan of the last fused
    call, which goes with this record."""

    __slots__ = ("params", "names", "arrays", "shapes", "entries", "state_size", "plan")

    def __init__(self, params: dict, names: tuple[str, ...], shapes: tuple, state_size: int):
        self.params, self.names, self.shapes, self.state_size, self.plan = params, names, shapes, state_size, None
        self.arrays = tuple(params[name] for name in names)
        self.entries = tuple((name, a, a.ndim) for name, a in zip(names, self.arrays))

    @classmethod
    def of(cls, net: Network) -> "CheckedParams | None":
        """Check ``net``'s parameters and record them on it; None (and no record) if they do not fit."""
        params, shapes = net.params, net.shapes
        if not all(_ready(params.get(name), shape) for name, shape in shapes.items()):
            return None
        checked = net.__dict__[CHECKED] = cls(params, tuple(shapes), tuple(shapes.values()), net.state_size)
        return checked

    def fits(self, params: dict) -> bool:
        """Whether ``params`` is the checked dict, holding the checked arrays, each still float64 in C
        order of its shape (the full check, which a new call plan is made from)."""
        return self.holds(params) and all(map(_ready, self.arrays, self.shapes))

    def __getstate__(self):
        """Copies and pickles start without the plan (it holds a function of this record's arrays)."""
        return None, {slot: None if slot == "plan" else getattr(self, slot) for slot in self.__slots__}

    def holds(self, params: dict) -> bool:
        """Whether ``params`` is the checked dict, holding the checked arrays with their dtypes and numbers of
        dimensions (one plain loop: at five parameters it is the cheapest way to ask)."""
        if params is not self.params:
            return False
        try:
            for name, a, ndim in self.entries:
                if params[name] is not a or a.dtype is not _F64 or a.ndim != ndim:
                    return False
        except KeyError:  # a parameter was deleted from the dict
            return False
        return True


_KEPT_SIZE = 1 << 14


class _Plan:
    """What a fused call with default k2, clip and h0 needs that depends only on the inputs' shape, the
    loss and the reduction (and on the parameter arrays, since it lives on their :class:`CheckedParams`):
    a repeat call (:meth:`replay`) then costs a few identity checks and the kernel call. ``s0`` is a zero
    initial state made once (the kernel only reads it, and the result's trace holds a copy, ``h[0]``); the
    last inputs and mse targets are kept with their (T, B, n) views, since a training loop passes the same
    arrays again (their dtype, shape and order are still checked on every call: those can change in place),
    if they are small (up to ``_KEPT_SIZE`` numbers: where a view costs more than the pass, and keeping the
    arrays alive costs little)."""

    __slots__ = ("shape", "batched", "loss", "reduction", "loss_obj", "losses_changes", "mode_changes", "runner",
                 "run", "scale", "s0", "target_shape", "inputs", "targets")

    def __init__(self, shape, loss, reduction, loss_obj, runner, run, scale, s0, n_out):
        self.shape, self.loss, self.reduction, self.loss_obj = shape, loss, reduction, loss_obj
        self.batched = len(shape) == 3
        # a loss name means the same loss, and the compiled tier may still be used, while these hold
        self.losses_changes, self.mode_changes = registry.losses.changes, compilation.mode_changes
        self.runner, self.run, self.scale, self.s0 = runner, run, scale, s0
        self.target_shape = shape[:-1] + (n_out,) if loss_obj is MSE else None
        self.inputs = self.targets = (None, None)

    def replay(self, checked: CheckedParams, net, xs, targets, loss, reduction) -> BPTTResult | None:
        """The fused pass on ``xs`` and ``targets``, or None where the call is not this plan's (other
        inputs' shape, loss or reduction, parameters changed (``checked`` is the record this plan lives
        on), losses or compilation mode changed) or the kernel declined: the caller then takes the full
        path."""
        if type(xs) is not np.ndarray or xs.dtype is not _F64 or xs.shape != self.shape or loss is not self.loss \
                or reduction is not self.reduction or registry.losses.changes != self.losses_changes \
                or compilation.mode_changes != self.mode_changes or not xs.flags.c_contiguous \
                or not checked.holds(net.params):
            return None
        batched = self.batched
        seen = self.inputs  # (array, its view) pairs, each replaced whole: safe for threads sharing a network
        if seen[0] is xs:
            X = seen[1]
        else:
            X = xs if batched else xs.reshape(self.shape[0], 1, self.shape[1])
            if xs.size <= _KEPT_SIZE:
                self.inputs = xs, X
        if type(targets) is np.ndarray and targets.dtype is _F64 and targets.shape == self.target_shape \
                and targets.flags.c_contiguous:  # mse targets as the kernel reads them (a view)
            seen = self.targets
            if seen[0] is targets:
                y = seen[1]
            else:
                y = targets if batched else targets.reshape(self.shape[0], 1, -1)
                if targets.size <= _KEPT_SIZE:
                    self.targets = targets, y
        else:
            y = _fused_targets(self.loss_obj, targets, net, X, batched)
            if y is None:
                return None
        return _fused_result(net, X, batched, self.s0, self.scale, self.runner, self.run(X, y, self.s0, self.scale),
                             None, None)


def _loss_object(loss) -> Loss | None:
    """The Loss that ``loss`` names, or None where it names none."""
    try:
        return loss if isinstance(loss, Loss) else registry.losses.get(loss)
    except (TypeError, ValueError):
        return None


def _fused_targets(loss_obj, targets, net, X, batched: bool):
    """The targets as the fused kernel takes them ((T, B, O) floats or (T, B) classes), or None where they
    are not valid (the general path then raises)."""
    T, B, _ = X.shape
    if loss_obj is MSE and type(targets) is np.ndarray and targets.dtype is _F64 \
            and targets.shape == ((T, B, net.n_out) if batched else (T, net.n_out)) and targets.flags.c_contiguous:
        return targets if batched else targets.reshape(T, 1, net.n_out)
    try:
        return V.targets(loss_obj, targets, net, V.Batch(X, batched))
    except (TypeError, ValueError):
        return None


def _fused_full(net, xs, targets, loss, reduction, k2, clip, h0) -> BPTTResult | None:
    """Full BPTT through the cell's fused kernel (:meth:`SiteKernels.full_bptt`) when the call qualifies.

    It qualifies when the cell's compiled tier is ready, there is no truncation (k2 None or >= T) and no step
    clipping, the loss is the built-in mse or cross_entropy, and the network's parameters and the inputs are
    float64 arrays in C order of the right shapes. Targets and h0 are validated as usual; NaN/inf in any
    input make the kernel stop at once. Returns None in every other case, and the general path then
    validates in full (raising the usual errors, in the usual order) and computes the gradient. This is the
    hot path of small problems, where checks cost more than the arithmetic: they are kept to cheap tests
    here (the parameters' are recorded on the network, :class:`CheckedParams`, and with default k2, clip
    and h0 what depends only on the sizes is kept there too, :class:`_Plan`), and the result's arrays are
    made when first asked for (:class:`_FusedResult`).
    """
    if type(xs) is not np.ndarray or xs.dtype is not _F64 or not isinstance(net, Network):
        return None
    if reduction not in V.REDUCTIONS:
        return None
    runner = tier(net.cell, net.activation)
    if not runner.compiled:
        return None
    loss_obj = _loss_object(loss)
    try:
        if clip is not None:
            clip = V.clip(clip)
    except (TypeError, ValueError):
        return None
    if (loss_obj is not MSE and loss_obj is not CROSS_ENTROPY) or (clip is not None and clip[0] == "step"):
        return None
    params = net.params
    checked = net.__dict__.get(CHECKED)
    if checked is None or not checked.fits(params):
        checked = CheckedParams.of(net)
        if checked is None:
            return None
    shape = xs.shape
    batched = len(shape) == 3
    if not (batched or len(shape) == 2) or shape[-1] != net.n_in or 0 in shape or not xs.flags.c_contiguous:
        return None
    T, B = shape[0], shape[1] if batched else 1
    if k2 is not None and (type(k2) is not int or k2 < T):
        return None
    X = xs if batched else xs.reshape(T, 1, net.n_in)
    y = _fused_targets(loss_obj, targets, net, X, batched)
    if y is None:
        return None
    if h0 is None:
        s0 = np.zeros((B, checked.state_size))
    else:
        try:
            s0 = V.initial_state(net, h0, V.Batch(X, batched))
        except (TypeError, ValueError):
            return None
    scale = 1.0 / (T * B) if reduction == "mean" else 1.0
    run = runner.prepared_full_bptt(params, T, B)
    if k2 is None and clip is None and h0 is None:
        checked.plan = _Plan(shape, loss, reduction, loss_obj, runner, run, scale, s0, net.n_out)
    return _fused_result(net, X, batched, s0, scale, runner, run(X, y, s0, scale), k2, clip)


def _fused_result(net, X, batched, s0, scale, runner, fused, k2, clip) -> BPTTResult | None:
    """The result of a fused kernel's pass (None where the kernel declined: an input is not finite)."""
    if fused is None:
        return None
    loss_value, norm2, first_bad, buffers, layout = fused
    if first_bad >= 0:
        warn_nonfinite_from(first_bad + 1, "output")
    size = math.sqrt(norm2)
    if not size < math.inf:  # NaN or inf (the test costs less than the call)
        warn_nonfinite_gradient(size)
    res = _FusedResult(loss_value, size, (net, X, batched, s0, scale, runner, buffers, layout))
    if k2 is not None:
        res.k2 = k2
    if clip is not None:
        res.clip = clip
        raw = res._values["raw_grads"] = res._make("raw_grads")
        res._values["grads"], res.clipped = clip_after(raw, size, clip)
    return res


class _FusedResult(BPTTResult):
    """The result of a fused pass: its arrays are views of the kernel's flat buffers (grads, raw_grads,
    losses, trace), made on first access, and so are the decompositions by_copy and by_loss, which run on
    the trace with the copy of the parameters the kernel made (later edits of ``net.params`` do not reach
    them)."""

    clipped, k2, clip = False, None, None  # what a full pass has, unless set on the instance

    def __init__(self, loss: float, grad_norm: float, pass_: tuple):
        """``pass_``: (network, inputs (T, B, D), batched, s0, scale, tier, the kernel's buffers, their
        Layout). Nothing else is made here: at a few time steps an attribute more costs as much as a step."""
        self.loss, self.grad_norm, self._values, self._pass = loss, grad_norm, {}, pass_

    def _make(self, name: str):
        net, xs, batched, s0, scale, runner, buffers, layout = self._pass
        if name == "losses":
            return layout.view(buffers, "losses")
        if name == "grads":
            return layout.per_param(buffers, "grad")
        if name == "raw_grads":
            return layout.per_param(buffers, "raw")
        views = {array: layout.view(buffers, array) for array in set(layout.trace_names.values())}
        trace = {key: views[array] for key, array in layout.trace_names.items()}  # states is h, as before
        if name == "trace":
            return Trace(xs, trace, batched)
        ran = Network(net.cell, net.activation, net.n_in, net.n_hidden, net.n_out, layout.per_param(buffers, "param"))
        p = Pass(ran, V.Batch(xs, batched), s0, trace, layout.view(buffers, "E"), layout.view(buffers, "dO"), scale,
                 runner)
        if name == "by_copy":
            return gradient(p, self.k2, 0.0, per_copy=True)
        return by_loss_tables(p, self.k2, 0.0, False)


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
    with np.errstate(all="ignore"):  # overflow is reported once, just below
        tr = tier(net.cell, net.activation).forward(net.params, batch.xs, s0)
    warn_nonfinite(tr["outputs"], "output")
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
            by_copy or by_loss), see :mod:`bpttlab.engine.checkpoint`.

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
        return checkpointed_bptt(net, xs, targets, loss, reduction, k2, clip, h0, checkpoint)
    if k2 is None and clip is None and h0 is None and type(net) is Network:  # a repeat call: the fastest path
        checked = net.__dict__.get(CHECKED)
        if checked is not None and (plan := checked.plan) is not None:
            fused = plan.replay(checked, net, xs, targets, loss, reduction)
            if fused is not None:
                return fused
    fused = _fused_full(net, xs, targets, loss, reduction, k2, clip, h0)
    if fused is not None:
        return fused
    p = prepare(net, xs, targets, loss, reduction, h0)
    k2 = V.positive_int(k2, "k2", allow_none=True)
    clip = V.clip(clip)
    tau = clip[1] if clip and clip[0] == "step" else 0.0
    raw = gradient(p, k2, tau)
    size = norm(raw)
    warn_nonfinite_gradient(size)
    grads, clipped = clip_after(raw, size, clip)
    snapshot = {k: v.copy() for k, v in net.params.items()}  # the parameters the pass ran with
    return BPTTResult(
        loss=float(p.E.sum()), losses=p.E.sum(axis=1), grads=grads, raw_grads=raw, grad_norm=size,
        clipped=clipped or tau > 0.0, trace=Trace(p.batch.xs, p.trace, p.batch.batched), k2=k2, clip=clip,
        _by_copy=lambda: gradient(frozen(p, snapshot), k2, tau, per_copy=True),
        _by_loss=lambda: by_loss_tables(frozen(p, snapshot), k2, tau, tau > 0.0 and k2 is None))


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
            (it is quadratic in T: use a shorter sequence, or by_copy).
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
    p = prepare(net, xs, targets, loss, reduction, h0)
    k2 = V.positive_int(k2, "k2", allow_none=True)
    T, B = p.batch.T, p.batch.B
    for name in wrt:
        check_table_size(f"the contributions table for {name}", T * T * int(np.prod(net.shapes[name])),
                         f"T={T}, {name}{net.shapes[name]}, B={B}",
                         "it is quadratic in T: use a shorter sequence, or bptt(...).by_copy, its column sums, "
                         "which is linear in T")
    return chain_tables(p, 0, T, T if k2 is None else min(k2, T), 0.0, wrt)
