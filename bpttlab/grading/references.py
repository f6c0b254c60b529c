r"""Reference answers, all computed by the engine (:func:`bpttlab.forward`, :func:`bpttlab.bptt`,
:func:`bpttlab.contributions`).

Exercises hand the student plain arrays (W, U, b, V, c, xs, targets for a tanh Elman network with the mse
loss, ARCHITECTURE.md's notation); these functions build the network those arrays describe and ask the
engine. Quantities that are not a parameter gradient come from engine outputs too:

* :math:`\bar a_t = \partial E/\partial a_t` is the gradient reaching copy t of the bias b
  (``by_copy["b"]``), and :math:`\bar o_t = \partial E/\partial o_t` that of c;
* a Jacobian row :math:`e_i^\top \partial^+ h_t/\partial W` is the explicit contribution C[t][t] of a
  loss whose gradient at step t is :math:`e_i` and zero elsewhere (mse with V = I, targets
  :math:`y_t = h_t - e_i`, :math:`y_s = h_s` for s != t);
* the losses of some steps are left out of a gradient by setting their targets to the outputs
  (:math:`\partial E_s/\partial o_s = o_s - y_s = 0`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import bptt, contributions, forward
from ..network import Network, make

ELMAN_PARAMETERS = ("W", "U", "b", "V", "c")


def elman(W, U, b, V=None, c=None) -> Network:
    """The tanh Elman network with these parameters (copies); V, c default to a zero 1-unit output."""
    W, U, b = (np.array(p, dtype=np.float64) for p in (W, U, b))
    H, D = U.shape
    V = np.zeros((1, H)) if V is None else np.array(V, dtype=np.float64)
    c = np.zeros(V.shape[0]) if c is None else np.array(c, dtype=np.float64)
    net = make("elman", n_in=D, n_hidden=H, n_out=V.shape[0], activation="tanh", seed=None)
    net.params = {"W": W, "U": U, "b": b, "V": V, "c": c}
    return net


@dataclass(frozen=True)
class Unrolled:
    r"""The engine's forward and backward pass of one problem, the raw material of the mistakes.

    Attributes:
        h: hidden states h_0..h_T, (T+1, H).
        a: pre-activations a_1..a_T, (T, H).
        obar: :math:`\partial E/\partial o_t`, (T, O).
        abar: :math:`\partial E/\partial a_t` (all losses), (T, H).
        abar_by_loss: :math:`\partial E_t/\partial a_k`, (T, T, H): row t-1 for the loss E_t alone.
    """

    h: np.ndarray
    a: np.ndarray
    obar: np.ndarray
    abar: np.ndarray
    abar_by_loss: np.ndarray


def unroll(W, U, b, V, c, xs, targets) -> Unrolled:
    """Run the engine forward and backward on a problem and keep what the slips need."""
    net = elman(W, U, b, V, c)
    res = bptt(net, xs, targets)
    by_copy = res.by_copy
    return Unrolled(h=res.trace.h, a=res.trace.arrays["a"][:, 0], obar=by_copy["c"], abar=by_copy["b"],
                    abar_by_loss=contributions(net, xs, targets, "b"))


def hidden_states(W, U, b, xs) -> np.ndarray:
    """h_1..h_T, (T, H), from h_0 = 0."""
    return forward(elman(W, U, b), xs).h[1:]


def total_loss(W, U, b, V, c, xs, targets) -> np.ndarray:
    r""":math:`E = \sum_t \tfrac12 \lVert o_t - y_t \rVert^2`, as a 0-d array."""
    return np.array(bptt(elman(W, U, b, V, c), xs, targets).loss)


def gradient(name: str, W, U, b, V, c, xs, targets, k2: int | None = None,
             reduction: str = "sum") -> np.ndarray:
    """dE/d(name) by BPTT, optionally truncated at k2 or with the mean reduction."""
    return bptt(elman(W, U, b, V, c), xs, targets, k2=k2, reduction=reduction).grads[name]


def loss_gradient(name: str, W, U, b, V, c, xs, targets, t: int) -> np.ndarray:
    r""":math:`\partial E_t/\partial \theta` for the loss of step t (1-based), ``by_loss[t-1]``."""
    return bptt(elman(W, U, b, V, c), xs, targets).by_loss[name][t - 1]


def contribution_table(name: str, W, U, b, V, c, xs, targets) -> np.ndarray:
    """C[t-1, k-1] = dE_t/dθ_k, (T, T, *shape)."""
    return contributions(elman(W, U, b, V, c), xs, targets, name)


def hidden_gradients(W, U, b, V, c, xs, targets) -> np.ndarray:
    r""":math:`\partial E/\partial h_t` for t = 1..T, (T, H): :math:`V^\top \bar o_t + W^\top \bar a_{t+1}`."""
    u = unroll(W, U, b, V, c, xs, targets)
    later = np.vstack([u.abar[1:], np.zeros((1, u.abar.shape[1]))])
    return u.obar @ np.asarray(V) + later @ np.asarray(W)


def explicit_dh_dW(W, U, b, xs, t: int) -> np.ndarray:
    r"""The explicit Jacobian :math:`J[i, j, k] = \partial^+ h_t[i] / \partial W[j, k]`, (H, H, H).

    Row i is the explicit contribution C[t][t] of a loss whose gradient with respect to h_t is
    :math:`e_i` (V = I, c = 0, targets equal to the outputs except :math:`y_t = h_t - e_i`).
    """
    W = np.asarray(W, dtype=np.float64)
    H = W.shape[0]
    net = elman(W, U, b, np.eye(H), np.zeros(H))
    xs = np.asarray(xs, dtype=np.float64)[:t]
    outputs = forward(net, xs).outputs
    J = np.empty((H, H, H))
    for i in range(H):
        targets = outputs.copy()
        targets[t - 1, i] -= 1.0
        J[i] = contributions(net, xs, targets, "W")[t - 1, t - 1]
    return J


def without_losses_before(net: Network, xs, targets, first: int, h0=None) -> np.ndarray:
    """Targets whose losses before step ``first`` (0-based) contribute nothing (targets = outputs there)."""
    kept = np.array(targets, dtype=np.float64)
    kept[:first] = forward(net, xs, h0=h0).outputs[:first]
    return kept


def tbptt_update(W, U, b, V, c, xs, targets, k1: int, k2: int, lr: float) -> dict[str, np.ndarray]:
    r"""The TBPTT(k1, k2) update made at the last step T of ``xs``.

    The network ran forward over all T steps from :math:`h_0 = 0` with these parameters. The losses of
    the last k1 steps are back-propagated no further than copy T-k2+1 (:math:`h_{T-k_2}` is a constant),
    and every parameter takes one SGD step:

    .. math::

        \theta \leftarrow \theta - \eta \sum_{t=T-k_1+1}^{T} \sum_{k=T-k_2+1}^{t} C[t][k] .

    Returns:
        the updated parameters, name -> array.
    """
    net = elman(W, U, b, V, c)
    T = len(xs)
    start = max(0, T - k2)
    h_start = forward(net, xs).h[start]
    window, window_targets = np.asarray(xs)[start:], np.asarray(targets)[start:]
    kept = without_losses_before(net, window, window_targets, T - k1 - start, h0=h_start)
    grads = bptt(net, window, kept, h0=h_start).grads
    return {name: net.params[name] - lr * grads[name] for name in ELMAN_PARAMETERS}


def clip_by_norm(grads: dict[str, np.ndarray], tau: float) -> dict[str, np.ndarray]:
    r"""Global norm clipping, as the engine's ``clip=("norm", tau)``: :math:`g \cdot \min(1, \tau/\lVert g\rVert)`."""
    norm = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())))
    scale = tau / norm if norm > tau else 1.0
    return {name: np.asarray(g, dtype=np.float64) * scale for name, g in grads.items()}


GRU_PARAMETERS = ("U_r", "W_r", "b_r", "U_z", "W_z", "b_z", "U_n", "W_n", "b_n", "b_hn")


def gru(P: dict[str, np.ndarray]) -> Network:
    """A GRU network with the parameters P and an identity output layer (o_t = h_t)."""
    H, D = np.shape(P["U_z"])
    net = make("gru", n_in=D, n_hidden=H, n_out=H, seed=None)
    net.params = {name: np.array(P[name], dtype=np.float64) for name in GRU_PARAMETERS}
    net.params.update(V=np.eye(H), c=np.zeros(H))
    return net


def gru_gates(P: dict[str, np.ndarray], x, h_prev) -> dict[str, np.ndarray]:
    """The gates r, z, the candidate n and the new state h of one GRU step, from the engine's forward pass."""
    net = gru(P)
    tr = forward(net, np.asarray(x, dtype=np.float64)[None, :], h0=np.asarray(h_prev, dtype=np.float64))
    H = net.n_hidden
    gates = tr.arrays["gates"][0, 0]
    return {"r": gates[:H], "z": gates[H:2 * H], "n": gates[2 * H:], "h": tr.h[1]}


def gru_step_gradient(name: str, P: dict[str, np.ndarray], x, h_prev, dh) -> np.ndarray:
    r""":math:`\partial E/\partial \theta` of one GRU step, given :math:`\partial E/\partial h_t` = ``dh``.

    One step (T = 1) from :math:`h_0` = ``h_prev`` with o = h and targets :math:`h_1 - dh`, so that
    :math:`\partial E/\partial h_1 = dh`.
    """
    net = gru(P)
    xs = np.asarray(x, dtype=np.float64)[None, :]
    h0 = np.asarray(h_prev, dtype=np.float64)
    targets = forward(net, xs, h0=h0).outputs - np.asarray(dh, dtype=np.float64)[None, :]
    return bptt(net, xs, targets, h0=h0).grads[name]
