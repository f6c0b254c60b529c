r"""How gradients flow back through the unrolled network: state Jacobians and per-loss state gradients.

The engine's :func:`bpttlab.bptt` gives parameter gradients; this module gives what travels between the
copies. For the recurrent state :math:`s_t` (h for Elman, o for Jordan) the one-step Jacobian and its
products are

.. math::

    J_j = \frac{\partial s_j}{\partial s_{j-1}}, \qquad
    \frac{\partial s_t}{\partial s_k} = J_t J_{t-1} \cdots J_{k+1}
    \quad (\text{Elman: } J_j = \operatorname{diag} f'(a_j)\, W),

and the gradient of one loss with respect to an earlier state is the row vector

.. math::

    \frac{\partial E_t}{\partial s_k} = \frac{\partial E_t}{\partial s_t}\,\frac{\partial s_t}{\partial s_k},

whose norm over :math:`(t, k)` is the gradient-flow map of Pascanu, Mikolov and Bengio (2013): it
vanishes or explodes geometrically in :math:`t - k` with the spectral radius of W.

Both come from the engine's backward window (no loss, the identity as carry, one copy at a time), so they
hold for every cell plugin, and from :meth:`Cell.readout_vjp` for :math:`\partial E_t/\partial s_t`. Quadratic in T: meant for teaching-sized sequences.
"""
from __future__ import annotations

import numpy as np

from .. import validation as V
from ..network import Network
from .passes import prepare
from .tiers import clip_rows, tier


def _step_jacobians(net: Network, xs: np.ndarray, s0: np.ndarray) -> np.ndarray:
    """J[j-1, b] = ds_j/ds_{j-1} (S, S) for copies j = 1..T of each sequence b of xs (T, B, D)."""
    runner = tier(net.cell, net.activation)
    params = net.params
    T, B, _ = xs.shape
    S = net.state_size
    # Each sequence is repeated S times along the batch axis, so that the S unit carries e_r travel
    # through its copies at once: the vjp of row r returns row r of the Jacobian.
    wide = np.repeat(xs, S, axis=1)
    trace = runner.forward(params, wide, np.repeat(s0, S, axis=0))
    no_loss = np.zeros((T, B * S, net.n_out))
    unit = np.tile(np.eye(S), (B, 1))
    J = np.empty((T, B, S, S))
    for j in range(T):
        rows, _ = runner.backward(params, trace, wide, no_loss, T, j + 1, j, unit, 0.0)
        J[j] = rows.reshape(B, S, S)
    return J


def state_jacobians(net: Network, xs, h0=None) -> np.ndarray:
    r"""The Jacobians between states, :math:`\partial s_t / \partial s_k` for :math:`1 \le k \le t \le T`.

    .. math::

        \frac{\partial s_t}{\partial s_k} = \prod_{j=t}^{k+1} \frac{\partial s_j}{\partial s_{j-1}},
        \qquad \frac{\partial s_t}{\partial s_t} = I .

    Args:
        net: the network.
        xs: inputs (T, D) or (T, B, D).
        h0: initial state; zeros if None.

    Returns:
        array (T, T, S, S) (or (T, T, B, S, S) for batched inputs) with ``J[t-1, k-1]`` =
        :math:`\partial s_t/\partial s_k`; zero where k > t.

    Example:
        >>> import numpy as np, bpttlab as bl
        >>> net = bl.make("elman", n_in=1, n_hidden=2, n_out=1, seed=0)
        >>> J = state_jacobians(net, np.ones((3, 1)))
        >>> bool(np.allclose(J[2, 0], J[2, 1] @ J[1, 0]))
        True
    """
    V.check_network(net)
    batch = V.inputs(net, xs)
    s0 = V.initial_state(net, h0, batch)
    step = _step_jacobians(net, batch.xs, s0)
    T, B, S, _ = step.shape
    out = np.zeros((T, T, B, S, S))
    for t in range(T):
        out[t, t] = np.eye(S)
        for k in range(t - 1, -1, -1):
            out[t, k] = out[t, k + 1] @ step[k + 1]
    return out if batch.batched else out[:, :, 0]


def state_gradients(net: Network, xs, targets, loss="mse", reduction: str = "sum", k2: int | None = None,
                    clip=None, h0=None) -> np.ndarray:
    r"""The gradient of each loss with respect to each earlier state, :math:`\partial E_t/\partial s_k`.

    .. math::

        g_{t,t} = \frac{\partial E_t}{\partial s_t}, \qquad
        g_{t,k} = g_{t,k+1}\, \frac{\partial s_{k+1}}{\partial s_k} \quad (t - k_2 < k < t),

    the cotangent that copy k receives in the chain of :math:`E_t` alone, so that
    :math:`\sum_t g_{t,k}` is the :math:`\partial E/\partial s_k` of the whole backward pass. With
    ``clip=("step", tau)`` each :math:`g_{t,k}` is rescaled to norm tau where it is larger before it
    goes on, as the engine does; "norm" and "value" clipping act on the parameter gradient after the
    pass and leave these vectors unchanged.

    Args:
        net, xs, targets, loss, reduction, h0: as for :func:`bpttlab.bptt`.
        k2: truncation: E_t reaches only copies k > t - k2; None = full BPTT.
        clip: None, ("norm", tau), ("value", tau) or ("step", tau).

    Returns:
        array (T, T, S) (or (T, T, B, S) for batched inputs) with ``G[t-1, k-1]`` =
        :math:`\partial E_t/\partial s_k`; zero for k > t and for k <= t - k2.

    Example:
        >>> import numpy as np, bpttlab as bl
        >>> net = bl.make("elman", n_in=1, n_hidden=2, n_out=1, seed=0)
        >>> G = state_gradients(net, np.ones((3, 1)), np.zeros((3, 1)), k2=2)
        >>> bool(np.all(G[2, 0] == 0.0)), bool(np.any(G[2, 1] != 0.0))
        (True, True)
    """
    p = prepare(net, xs, targets, loss, reduction, h0)
    k2 = V.positive_int(k2, "k2", allow_none=True)
    clip = V.clip(clip)
    tau = clip[1] if clip and clip[0] == "step" else 0.0
    step = _step_jacobians(net, p.batch.xs, p.s0)
    states = p.trace["states"]
    direct = np.stack([net.cell.readout_vjp(net.params, states[t + 1], p.dO[t])[0] for t in range(p.batch.T)])
    T, B, S = direct.shape
    reach = T if k2 is None else min(k2, T)
    out = np.zeros((T, T, B, S))
    for t in range(T):
        g = clip_rows(direct[t], tau)
        out[t, t] = g
        for k in range(t - 1, max(-1, t - reach), -1):
            g = clip_rows(np.einsum("bi,bij->bj", g, step[k + 1]), tau)
            out[t, k] = g
    return out if p.batch.batched else out[:, :, 0]
