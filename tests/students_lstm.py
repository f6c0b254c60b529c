"""Students' answers to ``lstm-cell-state`` (chapter 05): one right, and one per catalogued mistake."""
import numpy as np


def _backward(i, f, g, o, c0, dh, local, gate=lambda f, t: f[t + 1]):
    """The student's loop: c forward, then ĉ backward with ``local(t, c_t)`` and ``gate(f, t)``."""
    c, cs = np.array(c0, dtype=float), []
    for t in range(len(f)):
        c = f[t] * c + i[t] * g[t]
        cs.append(c)
    dc, nxt = np.zeros((len(cs), len(c0))), np.zeros(len(c0))
    for t in reversed(range(len(cs))):
        dc[t] = local(t, cs[t])
        if t + 1 < len(cs):
            dc[t] += gate(f, t) * nxt
        nxt = dc[t]
    return dc


def cell_state_grads(i, f, g, o, c0, dh):
    return _backward(i, f, g, o, c0, dh, lambda t, c: dh[t] * o[t] * (1 - np.tanh(c) ** 2))


def cell_state_grads_no_forget(i, f, g, o, c0, dh):
    return _backward(i, f, g, o, c0, dh, lambda t, c: dh[t] * o[t] * (1 - np.tanh(c) ** 2), gate=lambda f, t: 1)


def cell_state_grads_same_step_gate(i, f, g, o, c0, dh):
    return _backward(i, f, g, o, c0, dh, lambda t, c: dh[t] * o[t] * (1 - np.tanh(c) ** 2), gate=lambda f, t: f[t])


def cell_state_grads_no_output_gate(i, f, g, o, c0, dh):
    return _backward(i, f, g, o, c0, dh, lambda t, c: dh[t] * (1 - np.tanh(c) ** 2))


def cell_state_grads_no_tanh_derivative(i, f, g, o, c0, dh):
    return _backward(i, f, g, o, c0, dh, lambda t, c: dh[t] * o[t])


def cell_state_grads_tanh_derivative_of_c(i, f, g, o, c0, dh):
    return _backward(i, f, g, o, c0, dh, lambda t, c: dh[t] * o[t] * (1 - c ** 2))


def cell_state_grads_no_carry(i, f, g, o, c0, dh):
    return _backward(i, f, g, o, c0, dh, lambda t, c: dh[t] * o[t] * (1 - np.tanh(c) ** 2), gate=lambda f, t: 0)


MISTAKES = [
    (cell_state_grads_no_forget, "gate_missing"), (cell_state_grads_same_step_gate, "off_by_one_time"),
    (cell_state_grads_no_output_gate, "gate_missing"),
    (cell_state_grads_no_tanh_derivative, "activation_derivative_missing"),
    (cell_state_grads_tanh_derivative_of_c, "activation_derivative_wrong"),
    (cell_state_grads_no_carry, "explicit_only"),
]
