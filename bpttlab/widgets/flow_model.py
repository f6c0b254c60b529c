r"""The state behind the gradient-flow map: a network, a sequence, and the settings a student turns.

:class:`FlowModel` holds the settings (spectral radius of the recurrent matrix, activation,
initialisation, clipping, truncation, which map) and computes the T x T map

.. math::

    M[t][k] = \Bigl\lVert \frac{\partial E_t}{\partial s_k} \Bigr\rVert_2
    \quad\text{or}\quad
    M[t][k] = \Bigl\lVert \frac{\partial s_t}{\partial s_k} \Bigr\rVert_2
    = \Bigl\lVert \prod_{j=k+1}^{t} \operatorname{diag} f'(a_j)\, W \Bigr\rVert_2 \;(\text{Elman}),

for :math:`k \le t` (and :math:`k > t - k_2` with truncation), from :mod:`bpttlab.engine.flow`. Since
:math:`\lVert \partial s_t/\partial s_k \rVert \le (\gamma\,\rho_{\max})^{t-k}` with
:math:`\gamma = \max|f'|` and :math:`\rho_{\max}` the largest singular value of W, a spectral radius below 1
makes the map fade away from the diagonal (vanishing gradients) and one well above 1 can make it blow up
(exploding gradients) — Pascanu, Mikolov and Bengio (2013).

Clipping: ("step", tau) rescales every back-propagated :math:`\partial E/\partial s_k` to norm tau,
so it changes the map itself; ("norm", tau) rescales the whole parameter gradient, which scales every
term of the map by the same factor :math:`\min(1, \tau/\lVert g \rVert)`; ("value", tau) clips the
entries of the parameter gradient and leaves the map as it is (the summary reports it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import registry
from .. import validation as V
from ..engine import BPTTResult, bptt
from ..engine.flow import state_gradients, state_jacobians
from ..network import INITS, Network, make
from .formatting import number

MEASURES = ("loss", "state")


@dataclass(frozen=True)
class FlowSettings:
    """What the student turns.

    Attributes:
        radius: spectral radius given to every recurrent matrix (largest singular value if not square).
        activation: a registered activation name.
        init: "normal", "orthogonal" or "identity" to redraw the recurrent matrices, or None to keep the
            network's own.
        clip: None, ("norm", tau), ("value", tau) or ("step", tau).
        measure: "loss" for ||dE_t/ds_k||, "state" for ||ds_t/ds_k||.
        k2: truncation, None for full BPTT.
    """

    radius: float
    activation: str
    init: str | None
    clip: tuple[str, float] | None
    measure: str
    k2: int | None


@dataclass(frozen=True)
class FlowMap:
    """One computed map.

    Attributes:
        norms: (T, T) with ``norms[t-1, k-1]`` = M[t][k]; NaN where it is not defined (k > t, or cut off
            by k2).
        result: the engine's gradient of the whole pass at these settings (for the gradient norms).
        factor: the factor "norm" clipping applied to the map (1 otherwise).
    """

    norms: np.ndarray
    result: BPTTResult
    factor: float


class FlowModel:
    """A network and a sequence, with settings, and the gradient-flow map they give.

    Either pass ``net``, ``xs`` and ``targets`` (the map of that network on that sequence; ``radius``
    defaults to its current spectral radius and ``init`` to None, its own matrices), or none of them,
    and a random network and sequence are drawn from ``cell``, ``T``, ``n_hidden`` and ``seed``.

    Args:
        net, xs, targets: a network and one sequence (T, D) with its targets, or None.
        loss, reduction: as for :func:`bpttlab.bptt`.
        radius, activation, init, clip, measure, k2: see :class:`FlowSettings`.
        cell, T, n_in, n_hidden, n_out, seed: what to draw when no network is given.

    Raises:
        TypeError, ValueError: a bad setting, naming it.
    """

    def __init__(self, net: Network | None = None, xs=None, targets=None, *, loss="mse",
                 reduction: str = "sum", radius: float | None = None, activation: str | None = None,
                 init: str | None = None, clip=None, measure: str = "loss", k2: int | None = None,
                 cell: str = "elman", T: int = 20, n_in: int = 1, n_hidden: int = 8, n_out: int = 1,
                 seed: int = 0):
        given = [a is not None for a in (net, xs, targets)]
        if any(given) and not all(given):
            raise ValueError("pass net, xs and targets together (or none of them, for a random network)")
        self.seed = seed
        if net is None:
            T = V.positive_int(T, "T")
            net = make(cell, n_in, n_hidden, n_out, activation or "tanh", init or "normal", seed)
            rng = np.random.default_rng([seed, 1])
            xs, targets = rng.normal(size=(T, n_in)), rng.normal(size=(T, n_out))
            init = init or "normal"
        V.check_network(net)
        batch = V.inputs(net, xs)
        if batch.batched:
            raise ValueError(f"xs must be one sequence of shape (T, {net.n_in}), got a batch {np.shape(xs)}")
        self.base = net.copy()
        self.xs = batch.xs[:, 0]
        self.targets = targets
        self.loss = loss
        self.reduction = reduction
        first = self.base.cell.recurrent[0]
        self._settings = self._check(FlowSettings(
            radius=self.base.spectral_radius(first) if radius is None else radius,
            activation=self.base.activation.name if activation is None else activation,
            init=init, clip=clip, measure=measure, k2=k2))
        self._map: FlowMap | None = None
        self.compute()

    @property
    def settings(self) -> FlowSettings:
        return self._settings

    @property
    def T(self) -> int:
        return len(self.xs)

    def update(self, **changes) -> FlowMap:
        """Change some settings (names of :class:`FlowSettings`) and recompute the map.

        The settings are unchanged if the new ones are invalid or the computation fails.
        """
        unknown = set(changes) - set(FlowSettings.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown setting(s) {', '.join(sorted(unknown))}; settings are "
                            f"{', '.join(FlowSettings.__dataclass_fields__)}")
        old, old_map = self._settings, self._map
        self._settings = self._check(replace(self._settings, **changes))
        try:
            return self.compute()
        except Exception:
            self._settings, self._map = old, old_map
            raise

    def _check(self, s: FlowSettings) -> FlowSettings:
        if isinstance(s.radius, bool) or not isinstance(s.radius, (int, float, np.integer, np.floating)) \
                or not np.isfinite(s.radius) or s.radius < 0:
            raise ValueError(f"radius must be a finite number >= 0, got {s.radius!r}")
        self.base.cell.check_activation(registry.activations.get(s.activation, "activation"))
        if s.init is not None and s.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)} or None (keep the network's), got {s.init!r}")
        if s.measure not in MEASURES:
            raise ValueError(f"measure must be 'loss' (||dE_t/ds_k||) or 'state' (||ds_t/ds_k||), got {s.measure!r}")
        return replace(s, radius=float(s.radius), clip=V.clip(s.clip),
                       k2=V.positive_int(s.k2, "k2", allow_none=True))

    def network(self) -> Network:
        """The network at the current settings: activation set, recurrent matrices (redrawn with
        ``init`` if given and) scaled to spectral radius ``radius``."""
        s = self._settings
        net = self.base.copy()
        net.activation = registry.activations.get(s.activation, "activation")
        cell = net.cell
        if s.init is not None:
            fresh = cell.init_params(net.n_in, net.n_hidden, net.n_out, s.init, np.random.default_rng(self.seed))
            for name in cell.recurrent:
                net.params[name] = fresh[name]
        for name in cell.recurrent:
            r = net.spectral_radius(name)
            if r == 0.0:
                raise ValueError(f"{name} is zero, so it cannot be scaled to spectral radius {s.radius}; "
                                 "choose another init")
            net.params[name] = net.params[name] * (s.radius / r)
        return net

    def compute(self) -> FlowMap:
        """Recompute the map at the current settings."""
        s = self._settings
        net = self.network()
        res = bptt(net, self.xs, self.targets, loss=self.loss, reduction=self.reduction, k2=s.k2, clip=s.clip)
        factor = 1.0
        if s.measure == "state":
            J = state_jacobians(net, self.xs)
            norms = np.linalg.norm(J, ord=2, axis=(2, 3))
        else:
            G = state_gradients(net, self.xs, self.targets, loss=self.loss, reduction=self.reduction, k2=s.k2,
                                clip=s.clip if s.clip and s.clip[0] == "step" else None)
            norms = np.sqrt(np.sum(G * G, axis=2))
            if s.clip and s.clip[0] == "norm" and res.grad_norm > s.clip[1]:
                factor = s.clip[1] / res.grad_norm
                norms = norms * factor
        t, k = np.indices((self.T, self.T))
        keep = k <= t
        if s.k2 is not None:
            keep &= k > t - s.k2
        self._map = FlowMap(np.where(keep, norms, np.nan), res, factor)
        return self._map

    @property
    def map(self) -> FlowMap:
        return self._map

    def symbol(self) -> str:
        """The map's quantity in plain text, with the cell's state symbol: ``|dE_t/dh_k|``."""
        s = self.base.cell.state_symbol
        return f"|dE_t/d{s}_k|" if self._settings.measure == "loss" else f"|d{s}_t/d{s}_k|"

    def lags(self) -> np.ndarray:
        r"""The geometric mean of the map along each diagonal t - k = 0, 1, ..., T-1 (NaN where no entry
        is defined): how the norm falls or grows with the distance back in time."""
        out = np.full(self.T, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            logs = np.log(self._map.norms)
            for lag in range(self.T):
                d = np.diagonal(logs, offset=-lag)
                d = d[~np.isnan(d)]
                if d.size:
                    out[lag] = np.exp(d.mean())
        return out

    def summary(self) -> str:
        """One deterministic line: the settings, the map at lag 0 and at the longest lag, the gradient norm."""
        s, m = self._settings, self._map
        lags = self.lags()
        last = int(np.max(np.nonzero(~np.isnan(lags))[0]))
        clip = "none" if s.clip is None else f"{s.clip[0]}:{number(s.clip[1], 3)}"
        grad = number(float(np.sqrt(sum(float(np.sum(g * g)) for g in m.result.grads.values()))), 3)
        return (f"{self.symbol()} at lag 0: {number(lags[0], 3)}, at lag {last}: {number(lags[last], 3)}; "
                f"radius {number(s.radius, 3)}, {s.activation}, init {s.init or 'as given'}, clip {clip}, "
                f"k2 {s.k2 or 'full'}; |dE/dtheta| {number(m.result.grad_norm, 3)} -> {grad}")

    def __repr__(self) -> str:
        return f"FlowModel({self.base.cell.name}, T={self.T}, H={self.base.n_hidden}; {self.summary()})"
