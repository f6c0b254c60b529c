"""What the engine hands back: a forward pass (:class:`Trace`) and a gradient (:class:`BPTTResult`)."""
from __future__ import annotations

from dataclasses import dataclass, field
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
