r"""Training by truncated BPTT, TBPTT(k1, k2), with plain SGD.

Following ARCHITECTURE.md: the network runs forward k1 steps at a time. At the end of each block
(time e, and at the end of the sequence) the losses of that block are back-propagated no further than
copy :math:`e - k_2 + 1`, through the computation as it happened (each copy's Jacobian uses the parameters
it ran with; the few parameter versions the window spans are kept), and the gradient is applied to the
current parameters:

.. math::

    \theta \leftarrow \theta - \eta \sum_{t = e-k_1+1}^{e} \; \sum_{k = e-k_2+1}^{t}
    \frac{\partial E_t}{\partial \theta_k}.

Nothing is recomputed after an update. Each epoch starts again from h0; k1 = k2 = T is full BPTT with one
update per pass.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .. import validation as V
from ..network import Network
from .passes import clip_after, warn_nonfinite
from .tiers import tier


@dataclass
class History:
    """Per update: the loss of the block and the gradient norm before clipping; per epoch: the loss."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    k1: int = 0
    k2: int = 0

    def __repr__(self) -> str:
        last = f", final epoch loss {self.epoch_loss[-1]:.6g}" if self.epoch_loss else ""
        return (f"History(TBPTT(k1={self.k1}, k2={self.k2}), {len(self.loss)} updates, "
                f"{len(self.epoch_loss)} epochs{last})")

    def plot(self, ax=None):
        """Loss per epoch (and per update) on a log scale."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3))[1]
        ax.semilogy(np.arange(1, len(self.epoch_loss) + 1), self.epoch_loss, label="epoch loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss E")
        ax.set_title(f"TBPTT(k1={self.k1}, k2={self.k2})")
        ax.legend()
        return ax


def train(net: Network, xs, targets, k1: int | None = None, k2: int | None = None, lr: float = 0.1,
          clip=None, epochs: int = 1, loss="mse", reduction: str = "sum", h0=None,
          progress: bool | None = None) -> History:
    """Train ``net`` in place by TBPTT(k1, k2) and SGD.

    Args:
        net: the network; its ``params`` are replaced by the updated arrays.
        xs, targets, loss, h0: as for :func:`bpttlab.bptt`.
        k1: forward steps between updates (default T).
        k2: steps back-propagated, k2 >= k1 (default k1).
        lr: the learning rate eta > 0.
        clip: as for :func:`bpttlab.bptt`; applied to each update.
        epochs: passes over the sequence.
        reduction: "sum" of the block's losses, or their "mean" (over block length x B).
        progress: show a progress bar; None shows one when there are more than 500 updates.

    Returns:
        a :class:`History`.
    """
    pb = V.problem(net, xs, targets, loss, reduction, h0)
    batch, s0, loss_obj, y, red = pb.batch, pb.s0, pb.loss, pb.y, pb.reduction
    T = batch.T
    k1 = V.positive_int(T if k1 is None else k1, "k1")
    k2 = V.positive_int(k1 if k2 is None else k2, "k2")
    if k2 < k1:
        raise ValueError(f"k2 must be >= k1 (TBPTT back-propagates at least the block it updates on), "
                         f"got k1={k1}, k2={k2}")
    epochs = V.positive_int(epochs, "epochs")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    clip = V.clip(clip)
    tau = clip[1] if clip and clip[0] == "step" else 0.0
    n_updates = epochs * -(-T // k1)
    hist = History(k1=k1, k2=k2)
    bar = _progress(n_updates, progress)
    runner = tier(net.cell, net.activation)
    exploded = False
    try:
        for _ in range(epochs):
            s = s0
            blocks: deque = deque()
            epoch_loss = 0.0
            for start in range(0, T, k1):
                end = min(T, start + k1)
                params = dict(net.params)
                xb = batch.xs[start:end]
                with np.errstate(all="ignore"):  # overflow is reported once, by step, just below
                    tr = runner.forward(params, xb, s)
                exploded = exploded or warn_nonfinite(tr["outputs"], "output", offset=start)
                s = tr["states"][-1]
                scale = 1.0 / ((end - start) * batch.B) if red == "mean" else 1.0
                with np.errstate(all="ignore"):
                    E = float(loss_obj.value(tr["outputs"], y[start:end]).sum()) * scale
                    dO = np.ascontiguousarray(loss_obj.grad(tr["outputs"], y[start:end]) * scale)
                blocks.append((start, params, tr, xb, dO))
                window_start = max(0, end - k2)
                while blocks and blocks[0][0] + len(blocks[0][3]) <= window_start:
                    blocks.popleft()
                with np.errstate(all="ignore"):
                    grads = _window_gradient(runner, net.params, blocks, window_start, tau)
                    norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
                    grads, _ = clip_after(grads, norm, clip)
                    net.params = {k: v - lr * grads[k] for k, v in net.params.items()}
                hist.loss.append(E)
                hist.grad_norm.append(norm)
                epoch_loss += E
                if bar is not None:
                    bar.update(1)
            hist.epoch_loss.append(epoch_loss)
    finally:
        if bar is not None:
            bar.close()
    return hist


def _window_gradient(runner, current: dict[str, np.ndarray], blocks: deque, window_start: int,
                     tau: float) -> dict[str, np.ndarray]:
    """Back-propagate the newest block's losses through the stored blocks down to window_start, each
    block with the parameter version it ran with."""
    grads = {k: np.zeros_like(v) for k, v in current.items()}
    carry = None
    for i in range(len(blocks) - 1, -1, -1):
        start, params, tr, xb, dO = blocks[i]
        n, B = xb.shape[:2]
        if carry is None:
            carry = np.zeros((B, tr["states"].shape[2]))
        carry, more = runner.backward(params, tr, xb, dO, 0 if i == len(blocks) - 1 else n, n,
                                      max(0, window_start - start), carry, tau)
        for k, g in more.items():
            grads[k] += g
    return grads


def _progress(total: int, progress: bool | None):
    if progress is False or (progress is None and total <= 500):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="TBPTT updates", unit="update")
