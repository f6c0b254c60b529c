"""What the engine hands back: a forward pass (:class:`Trace`) and a gradient (:class:`BPTTResult`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Trace:
    """A forward pass. Arrays are (T+1, [B,] n) for states (index 0 = the initial state), (T, [B,] n)
    for the rest; the batch axis is present only if the inputs had one."""

    xs: np.ndarray
    arrays: dict[str, np.ndarray]
    batched: bool

    def __post_init__(self) -> None:
        # only arrays: the per-copy tier also keeps its steps' caches in the pass, not in the trace
        self.arrays = {k: v for k, v in self.arrays.items() if type(v) is np.ndarray}

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


class _Lazy:
    """A :class:`BPTTResult` attribute made on first access (by its ``_make(name)``) and kept."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, res, owner=None):
        if res is None:
            return self
        values = res._values
        if self.name in values:
            return values[self.name]
        value = values[self.name] = res._make(self.name)  # one that raises raises again next time
        return value

    def __set__(self, res, value) -> None:
        res._values[self.name] = value


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

    by_copy and by_loss are made on first access; a subclass may make any array attribute so (the fused
    path's result makes views of its kernel's flat buffers only when asked, since at a few time steps
    making an array costs about as much as the arithmetic of a step).
    """

    losses = _Lazy()
    grads = _Lazy()
    raw_grads = _Lazy()
    trace = _Lazy()
    by_copy = _Lazy()
    by_loss = _Lazy()

    def __init__(self, loss: float, losses: np.ndarray, grads: dict[str, np.ndarray],
                 raw_grads: dict[str, np.ndarray], grad_norm: float, clipped: bool, trace: Trace | None,
                 k2: int | None, clip: tuple[str, float] | None, _by_copy: Callable[[], dict],
                 _by_loss: Callable[[], dict]):
        self.loss, self.grad_norm, self.clipped, self.k2, self.clip = loss, grad_norm, clipped, k2, clip
        self._values = {"losses": losses, "grads": grads, "raw_grads": raw_grads, "trace": trace}
        self._makers = {"by_copy": _by_copy, "by_loss": _by_loss}

    def _make(self, name: str):
        """The lazy attribute ``name`` (a subclass may make others than by_copy and by_loss lazily: every
        attribute not in ``_values`` is asked of this method on first access)."""
        return self._makers[name]()

    def __repr__(self) -> str:
        names = ", ".join(f"{k}{v.shape}" for k, v in self.grads.items())
        extra = (f", k2={self.k2}" if self.k2 else "") + (f", clip={self.clip}" if self.clip else "")
        return f"BPTTResult(loss={self.loss:.6g}, grad_norm={self.grad_norm:.6g}{extra}; grads: {names})"
