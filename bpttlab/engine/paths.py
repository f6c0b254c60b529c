r"""The gradient as a sum over all paths: the direct, quadratic-time algorithm.

Expanding every :math:`\partial E_t/\partial\theta` into its explicit and implicit parts gives one term
per pair (loss t, copy k): the contribution :math:`C[t][k]` of ARCHITECTURE.md, the sum over all paths
from copy k of the parameter to the loss :math:`E_t`,

.. math::

    \frac{\partial E}{\partial \theta} = \sum_{t=1}^{T} \sum_{k=1}^{t} C[t][k], \qquad
    C[t][k] = \frac{\partial E_t}{\partial s_t}
              \Bigl(\prod_{j=k+1}^{t} \frac{\partial s_j}{\partial s_{j-1}}\Bigr)
              \frac{\partial^+ s_k}{\partial \theta} .

Computed as written, every loss sends its own error signal back through all copies before it: T(T+1)/2
steps of the cell's backward pass, O(T^2) time (Minchen Li's GRU tutorial calls it the direct
algorithm). The backward recursion of :func:`bpttlab.bptt` factors the common suffixes,

.. math::

    \bar s_k = \frac{\partial E_k}{\partial s_k}
               + \bar s_{k+1} \frac{\partial s_{k+1}}{\partial s_k}, \qquad
    \frac{\partial E}{\partial \theta} = \sum_k \bar s_k \frac{\partial^+ s_k}{\partial \theta},

one step per copy, O(T) time, the same numbers up to rounding. Here each row t of the table is
reduced to its site cotangents as it is computed, and the terms are summed per copy k, which is the
same sum of the same :math:`C[t][k]` without holding the (T, T, *shape) table.
"""
from __future__ import annotations

import numpy as np

from .. import validation as V
from ..network import Network
from .passes import by_loss_tables, clip_after, frozen, gradient, norm, prepare, warn_nonfinite_gradient
from .results import BPTTResult, Trace


def bptt_all_paths(net: Network, xs, targets, loss="mse", reduction: str = "sum", k2: int | None = None,
                   clip=None, h0=None) -> BPTTResult:
    r"""BPTT by the direct sum over all paths, one backward chain per loss: O(T^2) time.

    .. math::

        \frac{\partial E}{\partial \theta} = \sum_{t=1}^{T} \sum_{k=\max(1, t-k_2+1)}^{t} C[t][k]

    It returns what :func:`bpttlab.bptt` returns, computed the slow way, to compare the two algorithms
    (and their running times). With k2 it costs O(T k2), like truncated BPTT, which is this algorithm.

    Args:
        net, xs, targets, loss, reduction, k2, h0: as for :func:`bpttlab.bptt`.
        clip: None, ("norm", tau), ("value", tau), or ("step", tau) together with k2 (each chain is
            clipped on its own; the summed dE/ds that full BPTT clips does not exist on a single path).

    Returns:
        a :class:`bpttlab.BPTTResult`.

    Raises:
        ValueError: clip=("step", tau) without k2, or any input :func:`bpttlab.bptt` rejects.

    Example:
        >>> import numpy as np, bpttlab as bl
        >>> net = bl.make("gru", n_in=1, n_hidden=2, n_out=1, seed=0)
        >>> xs, ys = np.ones((4, 1)), np.zeros((4, 1))
        >>> np.allclose(bl.bptt_all_paths(net, xs, ys).grads["W_z"], bl.bptt(net, xs, ys).grads["W_z"])
        True

    See also:
        :func:`bpttlab.contributions` for the table C[t][k] of one parameter.
    """
    p = prepare(net, xs, targets, loss, reduction, h0)
    k2 = V.positive_int(k2, "k2", allow_none=True)
    clip = V.clip(clip)
    tau = clip[1] if clip and clip[0] == "step" else 0.0
    if tau > 0.0 and k2 is None:
        raise ValueError("clip=('step', tau) needs k2 in bptt_all_paths: full BPTT clips the summed dE/ds_k "
                         "of all losses, which no single path carries; pass k2=T to clip each loss's chain")
    T = p.batch.T
    reach = T if k2 is None else min(k2, T)
    with np.errstate(all="ignore"):
        raw = p.tier.truncated(net.params, p.trace, p.batch.xs, p.dO, reach, tau)
    size = norm(raw)
    warn_nonfinite_gradient(size)
    grads, clipped = clip_after(raw, size, clip)
    ran = frozen(p, {k: v.copy() for k, v in net.params.items()})
    return BPTTResult(
        loss=float(p.E.sum()), losses=p.E.sum(axis=1), grads=grads, raw_grads=raw, grad_norm=size,
        clipped=clipped or tau > 0.0, trace=Trace(p.batch.xs, p.trace, p.batch.batched), k2=k2, clip=clip,
        _by_copy=lambda: gradient(ran, reach, tau, per_copy=True),
        _by_loss=lambda: by_loss_tables(ran, k2, tau, False))
