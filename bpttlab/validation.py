"""Input checks shared by the public functions: each bad input gets a ValueError (TypeError for a wrong
type) that names the argument and says what was expected, before anything reaches a Numba kernel."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry
from .losses import Loss
from .network import Network

REDUCTIONS = ("sum", "mean")
CLIP_MODES = ("norm", "value", "step")


@dataclass(frozen=True)
class Batch:
    """Inputs brought to the engine's layout: xs (T, B, D) float64, and whether the caller batched."""

    xs: np.ndarray
    batched: bool

    @property
    def T(self) -> int:
        return self.xs.shape[0]

    @property
    def B(self) -> int:
        return self.xs.shape[1]


def check_network(net) -> None:
    if not isinstance(net, Network):
        raise TypeError(f"net must be a bpttlab Network (from bl.make), got {type(net).__name__}")
    net.cell.check_activation(net.activation)  # a network built by hand may pair them wrongly
    for name, shape in net.shapes.items():
        p = net.params.get(name)
        if p is None:
            raise ValueError(f"net.params is missing {name!r}; expected parameters {', '.join(net.shapes)}")
        if not isinstance(p, np.ndarray) or p.shape != shape:
            got = p.shape if isinstance(p, np.ndarray) else type(p).__name__
            raise ValueError(f"net.params[{name!r}] must be an array of shape {shape}, got {got}")
        if p.dtype != np.float64 or not p.flags.c_contiguous:
            net.params[name] = np.ascontiguousarray(p, dtype=np.float64)
        if not np.all(np.isfinite(net.params[name])):
            raise ValueError(f"net.params[{name!r}] contains NaN or inf")


def inputs(net: Network, xs) -> Batch:
    """xs of shape (T, D) or (T, B, D), numeric and finite; float32 is accepted and computed in float64."""
    arr = np.asarray(xs)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"xs must be a numeric array, got dtype {arr.dtype}")
    D = net.n_in
    if arr.ndim == 1 and D == 1:
        arr = arr[:, None]
    if arr.ndim not in (2, 3) or arr.shape[-1] != D or arr.shape[0] < 1 or (arr.ndim == 3 and arr.shape[1] < 1):
        raise ValueError(f"xs must have shape (T, {D}) or (T, B, {D}) with T, B >= 1 (n_in={D}), "
                         f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"xs contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    batched = arr.ndim == 3
    out = np.ascontiguousarray(arr if batched else arr[:, None, :], dtype=np.float64)
    return Batch(out, batched)


def initial_state(net: Network, h0, batch: Batch) -> np.ndarray:
    """h0 (s_0: h_0 for Elman, o_0 for Jordan) as (B, S); None means zeros."""
    S = net.state_size
    if h0 is None:
        return np.zeros((batch.B, S))
    arr = np.asarray(h0)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"h0 must be a numeric array, got dtype {arr.dtype}")
    if arr.shape == (S,):
        arr = np.broadcast_to(arr, (batch.B, S))
    if arr.shape != (batch.B, S):
        want = f"({S},) or ({batch.B}, {S})" if batch.batched else f"({S},)"
        raise ValueError(f"h0 must have shape {want} (the {net.cell.name} state size is {S}), got {np.shape(h0)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("h0 contains NaN or inf")
    return np.array(arr, dtype=np.float64)


def loss_plugin(loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    return registry.losses.get(loss, "loss")


def targets(loss: Loss, y, net: Network, batch: Batch) -> np.ndarray:
    return loss.targets(y, batch.T, batch.B, net.n_out, batch.batched)


def reduction(value) -> str:
    if value not in REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {value!r}")
    return value


@dataclass(frozen=True)
class Problem:
    """The validated inputs of a pass: batch, s0 (B, S), the Loss, targets y and the reduction."""

    batch: Batch
    s0: np.ndarray
    loss: Loss
    y: np.ndarray
    reduction: str


def problem(net: Network, xs, y, loss, red, h0) -> Problem:
    """Check the network, the inputs xs, h0, the loss, the targets y and the reduction red, in that order."""
    check_network(net)
    batch = inputs(net, xs)
    s0 = initial_state(net, h0, batch)
    loss_obj = loss_plugin(loss)
    return Problem(batch, s0, loss_obj, targets(loss_obj, y, net, batch), reduction(red))


def positive_int(value, name: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value}")
    return int(value)


def clip(value) -> tuple[str, float] | None:
    """None or (mode, tau) with mode in norm | value | step and tau > 0."""
    if value is None:
        return None
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and value[0] in CLIP_MODES):
        raise ValueError(f"clip must be None or (mode, tau) with mode one of {', '.join(CLIP_MODES)}, "
                         f"got {value!r}")
    tau = value[1]
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.integer, np.floating)) \
            or not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"clip threshold tau must be a positive finite number, got {tau!r}")
    return value[0], float(tau)
