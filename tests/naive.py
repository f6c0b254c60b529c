r"""Slow, obviously-right NumPy references for the engine, written from ARCHITECTURE.md alone.

Nothing here imports bpttlab. Every function loops over time in Python and takes **one parameter dict per
time step** (``copies[t]`` is the copy of theta used by step t+1, 0-based like the arrays), so that

* finite differences of E_t with respect to ``copies[k]`` give the contribution C[t][k] directly
  (:func:`fd_table`);
* the textbook backward recursion (:func:`backprop`) returns the gradient reaching each copy, which is
  ``by_copy``; summing copies gives the gradient, and one loss alone gives one row of C;
* TBPTT (:func:`tbptt`) can run each step with the parameter version that was current when it ran.

Arrays are batched internally: xs (T, B, D), states (T+1, B, S), targets (T, B, O) for mse, (T, B) classes
for cross_entropy. Elman: a_t = W h_{t-1} + U x_t + b, h_t = f(a_t), o_t = V h_t + c, state s_t = h_t.
Jordan: a_t = W o_{t-1} + U x_t + b, same h_t and o_t, state s_t = o_t.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

# -- activations: f and f' ---------------------------------------------------------------------------


def _sigmoid(a):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


ACTIVATIONS = {
    "tanh": (np.tanh, lambda a: 1.0 - np.tanh(a) ** 2),
    "relu": (lambda a: np.where(a > 0, a, 0.0), lambda a: np.where(a > 0, 1.0, 0.0)),
    "sigmoid": (_sigmoid, lambda a: _sigmoid(a) * (1.0 - _sigmoid(a))),
    "identity": (lambda a: np.array(a, dtype=float), lambda a: np.ones_like(a, dtype=float)),
}

# -- losses: E_t per batch element and dE_t/do_t ---------------------------------------------------------


def loss_values(loss, o, y):
    """E_t for every (t, b): mse 0.5 ||o - y||^2, cross_entropy -log softmax(o)[y]. o (T, B, O) -> (T, B)."""
    T, B, _ = o.shape
    E = np.zeros((T, B))
    for t in range(T):
        for b in range(B):
            if loss == "mse":
                E[t, b] = 0.5 * np.sum((o[t, b] - y[t, b]) ** 2)
            else:
                m = np.max(o[t, b])
                E[t, b] = -(o[t, b, y[t, b]] - m - np.log(np.sum(np.exp(o[t, b] - m))))
    return E


def loss_grads(loss, o, y):
    """dE_t/do_t: mse o - y; cross_entropy softmax(o) - onehot(y). (T, B, O)."""
    if loss == "mse":
        return o - y
    g = np.zeros_like(o)
    T, B, _ = o.shape
    for t in range(T):
        for b in range(B):
            e = np.exp(o[t, b] - np.max(o[t, b]))
            g[t, b] = e / e.sum()
            g[t, b, y[t, b]] -= 1.0
    return g


# -- cells ---------------------------------------------------------------------------------------------


def state_size(cell, params):
    return params["W"].shape[0] if cell == "elman" else params["V"].shape[0]


def step(cell, p, s_prev, x, f):
    """One copy on a batch: returns (a, h, s, o); s_prev (B, S), x (B, D)."""
    a = s_prev @ p["W"].T + x @ p["U"].T + p["b"]
    h = f(a)
    o = h @ p["V"].T + p["c"]
    return a, h, (h if cell == "elman" else o), o


def forward(cell, act, copies, xs, s0):
    """Unrolled forward pass with copy t's parameters at step t. Returns a, h (T, B, H), s (T+1, B, S),
    o (T, B, O)."""
    f = ACTIVATIONS[act][0]
    T = xs.shape[0]
    s = [np.array(s0, dtype=float)]
    a, h, o = [], [], []
    with np.errstate(all="ignore"):
        for t in range(T):
            at, ht, st, ot = step(cell, copies[t], s[-1], xs[t], f)
            a.append(at)
            h.append(ht)
            s.append(st)
            o.append(ot)
    return SimpleNamespace(a=np.array(a), h=np.array(h), s=np.array(s), o=np.array(o))


def clip_rows(d, tau):
    """("step", tau): rescale each row (one sequence of the batch) to norm tau when it is longer."""
    if tau <= 0:
        return d
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return np.where(n > tau, d * tau / np.where(n > 0, n, 1.0), d)


def backprop(cell, act, copies, tr, xs, dO, losses, k_lo, t_hi, tau=0.0, norms=None):
    """The textbook BPTT recursion over copies t_hi-1 .. k_lo (0-based), from later steps to earlier.

    Only the losses E_t with t in ``losses`` inject dE_t/do_t = dO[t]. Elman:
    dh_t = V^T dO_t + W^T da_{t+1}, da_t = f'(a_t) dh_t. Jordan: do_t = dO_t + W^T da_{t+1},
    dh_t = V^T do_t, da_t = f'(a_t) dh_t. ``tau`` > 0 rescales dh_t (Elman) / do_t (Jordan), the
    back-propagated dE/ds_t, per sequence, to norm tau when it is longer. If ``norms`` is a list, the
    norms of dE/ds_t before clipping are appended to it.

    Returns:
        the gradient reaching each copy: a list of T dicts (zeros outside the window).
    """
    df = ACTIVATIONS[act][1]
    T, B = xs.shape[:2]
    grads = [{k: np.zeros_like(v) for k, v in copies[t].items()} for t in range(T)]
    delta = np.zeros((B, tr.s.shape[2]))  # dE/ds_t arriving from copy t+1
    for t in range(t_hi - 1, k_lo - 1, -1):
        p, g = copies[t], grads[t]
        g_o = dO[t] if t in losses else np.zeros_like(dO[t])
        ds = delta + (g_o @ p["V"] if cell == "elman" else g_o)
        if norms is not None:
            norms.extend(np.linalg.norm(ds, axis=1))
        if cell == "elman":
            dh = clip_rows(ds, tau)
            g["V"] = g_o.T @ tr.h[t]
            g["c"] = g_o.sum(axis=0)
        else:
            do = clip_rows(ds, tau)
            dh = do @ p["V"]
            g["V"] = do.T @ tr.h[t]
            g["c"] = do.sum(axis=0)
        da = df(tr.a[t]) * dh
        g["W"] = da.T @ tr.s[t]
        g["U"] = da.T @ xs[t]
        g["b"] = da.sum(axis=0)
        delta = da @ p["W"]
    return grads


def clip_after(grads, clip):
    """("norm", tau): rescale the whole gradient to norm tau if longer; ("value", tau): clip entries."""
    if clip is None or clip[0] == "step":
        return dict(grads)
    tau = clip[1]
    if clip[0] == "value":
        return {k: np.minimum(np.maximum(v, -tau), tau) for k, v in grads.items()}
    norm = np.sqrt(sum(np.sum(v ** 2) for v in grads.values()))
    return {k: v * (tau / norm if norm > tau else 1.0) for k, v in grads.items()}


# -- the reference bptt --------------------------------------------------------------------------------


def batched(xs, y, loss):
    """(T, D) inputs -> (T, 1, D) and their targets likewise; batched ones unchanged."""
    xs = np.asarray(xs, dtype=float)
    if xs.ndim == 3:
        return xs, np.asarray(y)
    y = np.asarray(y)
    return xs[:, None, :], y[:, None] if loss == "cross_entropy" else y[:, None, :]


def _stack(dicts):
    return {k: np.array([d[k] for d in dicts]) for k in dicts[0]}


def _sum(dicts):
    return {k: sum(d[k] for d in dicts) for k in dicts[0]}


def bptt(cell, act, params, xs, y, loss="mse", reduction="sum", k2=None, clip=None, h0=None):
    """Everything :func:`bpttlab.bptt` returns, computed naively.

    Returns:
        namespace with loss, losses (T,), grads, raw_grads, by_copy and by_loss (name -> (T, *shape)),
        table (name -> (T, T, *shape), C[t][k], without clipping unless it is per-loss step clipping),
        and the forward pass ``trace``.
    """
    xs, y = batched(xs, y, loss)
    T, B = xs.shape[:2]
    S = state_size(cell, params)
    s0 = np.zeros((B, S)) if h0 is None else np.broadcast_to(np.asarray(h0, dtype=float), (B, S))
    copies = [params] * T
    tr = forward(cell, act, copies, xs, s0)
    scale = 1.0 / (T * B) if reduction == "mean" else 1.0
    E = loss_values(loss, tr.o, y) * scale
    dO = loss_grads(loss, tr.o, y) * scale
    tau = clip[1] if clip is not None and clip[0] == "step" else 0.0
    window = T if k2 is None else k2
    rows = [backprop(cell, act, copies, tr, xs, dO, {t}, max(0, t - window + 1), t + 1, tau) for t in range(T)]
    if k2 is None:
        by_copy = backprop(cell, act, copies, tr, xs, dO, set(range(T)), 0, T, tau)
    else:
        by_copy = [_sum([rows[t][k] for t in range(T)]) for k in range(T)]
    raw = _sum(by_copy)
    step_full = tau > 0 and k2 is None
    return SimpleNamespace(
        loss=E.sum(), losses=E.sum(axis=1), raw_grads=raw, grads=clip_after(raw, clip),
        by_copy=_stack(by_copy), by_loss=None if step_full else _stack([_sum(r) for r in rows]),
        table=None if step_full else {k: np.array([[rows[t][j][k] for j in range(T)] for t in range(T)])
                                      for k in params},
        trace=tr)


# -- finite-difference oracles -------------------------------------------------------------------------


def step_losses(cell, act, copies, xs, y, loss, scale, s0):
    """E_t (T,) summed over the batch, for the given per-step copies."""
    tr = forward(cell, act, copies, xs, s0)
    with np.errstate(all="ignore"):
        return loss_values(loss, tr.o, y).sum(axis=1) * scale


def fd_table(cell, act, params, xs, y, loss="mse", reduction="sum", h0=None, eps=1e-6):
    r"""C[t][k] by central differences of E_t with respect to the copy of each parameter used at step k.

    .. math:: C[t][k]_i \approx \frac{E_t(\theta_k + \varepsilon e_i) - E_t(\theta_k - \varepsilon e_i)}{2\varepsilon}

    with every other copy held at theta. Returns name -> (T, T, *shape).
    """
    xs, y = batched(xs, y, loss)
    T, B = xs.shape[:2]
    S = state_size(cell, params)
    s0 = np.zeros((B, S)) if h0 is None else np.broadcast_to(np.asarray(h0, dtype=float), (B, S))
    scale = 1.0 / (T * B) if reduction == "mean" else 1.0
    table = {name: np.zeros((T, T) + p.shape) for name, p in params.items()}
    for k in range(T):
        for name, p in params.items():
            for idx in np.ndindex(*p.shape):
                E = []
                for sign in (1.0, -1.0):
                    pk = {n: v.copy() for n, v in params.items()}
                    pk[name][idx] += sign * eps
                    copies = [params] * T
                    copies[k] = pk
                    E.append(step_losses(cell, act, copies, xs, y, loss, scale, s0))
                table[name][(slice(None), k) + idx] = (E[0] - E[1]) / (2 * eps)
    return table


def truncate(table, k2):
    """Keep C[t][k] only for k > t - k2 (0-based: t - k < k2)."""
    T = next(iter(table.values())).shape[0]
    t, k = np.indices((T, T))
    keep = (k <= t) & (t - k < (T if k2 is None else k2))
    return {n: c * keep.reshape((T, T) + (1,) * (c.ndim - 2)) for n, c in table.items()}


def _flatten(params):
    return np.concatenate([v.ravel() for v in params.values()])


def _unflatten(theta, like):
    out, i = {}, 0
    for k, v in like.items():
        out[k] = theta[i:i + v.size].reshape(v.shape)
        i += v.size
    return out


def _fd_jacobian(fun, x, eps):
    """d fun / d x by central differences; fun maps a vector to a vector."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * eps))
    return np.array(cols).T


def fd_chain(transition, readout, params, S, xs, y, loss="mse", reduction="sum", h0=None, k2=None, tau=0.0,
             eps=1e-6):
    r"""Gradients with ("step", tau) clipping, assembled from finite-difference *local* derivatives.

    For any cell given as ``transition(p, s_prev, x) -> s`` and ``readout(p, s) -> o`` (one sequence,
    vectors; S is the state size), with J_k = ds_k/ds_{k-1}, P_k = d^+s_k/d theta_k, g_t = dE_t/ds_t and the direct output
    path e_t = d^+E_t/d theta_t (s_t held fixed), all by central differences, per sequence:

    * k2 set: each loss alone, d = clip(g_t), then d <- clip(d J_{k+1}) down to copy t-k2+1;
      C[t][k] = d P_k (+ e_t on the diagonal);
    * k2 None: the summed D_k = clip(g_k + D_{k+1} J_{k+1}); by_copy[k] = D_k P_k + e_k.

    tau = 0 means no clipping, so this is also an oracle for C without clipping.

    Returns:
        namespace with grads, by_copy (name -> (T, *shape)) and, when k2 is set, table (T, T, *shape).
    """
    xs, y = batched(xs, y, loss)
    T, B = xs.shape[:2]
    theta = _flatten(params)
    scale = 1.0 / (T * B) if reduction == "mean" else 1.0
    s0 = np.zeros((B, S)) if h0 is None else np.broadcast_to(np.asarray(h0, dtype=float), (B, S))

    def clip(d):
        n = np.linalg.norm(d)
        return d * (tau / n) if tau > 0 and n > tau else d

    def loss_of(o, b, t):
        return loss_values(loss, np.asarray(o)[None, None], y[t:t + 1, b:b + 1])[0, 0] * scale

    by_copy = np.zeros((T, theta.size))
    table = np.zeros((T, T, theta.size))
    for b in range(B):
        s = [s0[b]]
        for t in range(T):
            s.append(np.asarray(transition(params, s[-1], xs[t, b]), dtype=float))
        J = [None] + [_fd_jacobian(lambda v, t=t: transition(params, v, xs[t, b]), s[t], eps) for t in range(1, T)]
        P = [_fd_jacobian(lambda th, t=t: transition(_unflatten(th, params), s[t], xs[t, b]), theta, eps)
             for t in range(T)]
        g = [_fd_jacobian(lambda v, t=t: [loss_of(readout(params, v), b, t)], s[t + 1], eps)[0] for t in range(T)]
        e = [_fd_jacobian(lambda th, t=t: [loss_of(readout(_unflatten(th, params), s[t + 1]), b, t)], theta, eps)[0]
             for t in range(T)]
        if k2 is None:
            D = np.zeros(S)
            for k in range(T - 1, -1, -1):
                D = clip(g[k] + (D @ J[k + 1] if k + 1 < T else 0.0))
                by_copy[k] += D @ P[k] + e[k]
        for t in range(T):
            d = clip(g[t])
            table[t, t] += d @ P[t] + e[t]
            for k in range(t - 1, max(0, t - (T if k2 is None else k2) + 1) - 1, -1):
                d = clip(d @ J[k + 1])
                table[t, k] += d @ P[k]
    if k2 is not None:
        by_copy = table.sum(axis=0)
    per_copy = [_unflatten(row, params) for row in by_copy]
    return SimpleNamespace(
        by_copy=_stack(per_copy), grads=_unflatten(by_copy.sum(axis=0), params),
        table={n: np.array([[_unflatten(table[t, k], params)[n] for k in range(T)] for t in range(T)])
               for n in params})


def elman_transition(act):
    f = ACTIVATIONS[act][0]
    return lambda p, s, x: f(p["W"] @ s + p["U"] @ x + p["b"])


def jordan_transition(act):
    f = ACTIVATIONS[act][0]
    return lambda p, s, x: p["V"] @ f(p["W"] @ s + p["U"] @ x + p["b"]) + p["c"]


def linear_readout(p, s):
    return p["V"] @ s + p["c"]


def state_readout(p, s):
    return s


#: cell -> (transition(act), readout) for :func:`fd_chain`.
CHAIN_CELLS = {"elman": (elman_transition, linear_readout), "jordan": (jordan_transition, state_readout)}


# -- TBPTT(k1, k2), step by step -----------------------------------------------------------------------


def tbptt(cell, act, params, xs, y, k1, k2, lr, loss="mse", reduction="sum", clip=None, epochs=1, h0=None):
    """Truncated BPTT as ARCHITECTURE.md defines it, one time step at a time.

    Each step runs with the parameters current when it runs (its version is stored). After every k1 steps,
    and at the end of the sequence (step e), the losses of the block are back-propagated through the
    stored versions down to copy e-k2+1 (1-based), the gradient (summed over copies, then clipped) is
    applied to the current parameters, and the block's loss and gradient norm are recorded. Each epoch
    restarts from h0.

    Returns:
        namespace with params, loss and grad_norm per update, epoch_loss per epoch.
    """
    xs, y = batched(xs, y, loss)
    T, B = xs.shape[:2]
    f = ACTIVATIONS[act][0]
    params = {k: np.array(v, dtype=float) for k, v in params.items()}
    S = state_size(cell, params)
    s0 = np.zeros((B, S)) if h0 is None else np.broadcast_to(np.asarray(h0, dtype=float), (B, S))
    tau = clip[1] if clip is not None and clip[0] == "step" else 0.0
    out = SimpleNamespace(loss=[], grad_norm=[], epoch_loss=[])
    for _ in range(epochs):
        s = s0
        versions, a, h, states, o = [], [], [], [s0], []
        start, epoch_loss = 0, 0.0
        for t in range(T):
            p = {k: v.copy() for k, v in params.items()}
            at, ht, s, ot = step(cell, p, s, xs[t], f)
            versions.append(p)
            a.append(at)
            h.append(ht)
            states.append(s)
            o.append(ot)
            end = t + 1
            if end % k1 and end != T:
                continue
            scale = 1.0 / ((end - start) * B) if reduction == "mean" else 1.0
            ob = np.array(o[start:end])
            E = loss_values(loss, ob, y[start:end]).sum() * scale
            dO = np.zeros((end, B, ob.shape[2]))
            dO[start:end] = loss_grads(loss, ob, y[start:end]) * scale
            tr = SimpleNamespace(a=np.array(a), h=np.array(h), s=np.array(states))
            per_copy = backprop(cell, act, versions, tr, xs[:end], dO, set(range(start, end)),
                                max(0, end - k2), end, tau)
            g = _sum(per_copy)
            norm = float(np.sqrt(sum(np.sum(v ** 2) for v in g.values())))
            g = clip_after(g, clip)
            params = {k: params[k] - lr * g[k] for k in params}
            out.loss.append(E)
            out.grad_norm.append(norm)
            epoch_loss += E
            start = end
        out.epoch_loss.append(epoch_loss)
    out.params = params
    return out
