"""Exercise lstm-cell-state: reference against finite differences and the engine's LSTM, mistakes."""
import numpy as np
import pytest

import bpttlab as bl
import pack_checks as K
import students_lstm as S
from bpttlab.grading import get_exercise
from bpttlab.grading.pack_lstm import cell_states, reference

ID = "lstm-cell-state"


def _fd_cell_grads(i, f, g, o, c0, dh, eps=1e-6):
    """∂L/∂c_t for L = Σ_t dh_t · (o_t tanh c_t), the gates held fixed, by nudging c_t and running on."""
    def L(t, nudge):
        c, total = np.array(c0, dtype=float), 0.0
        for s in range(len(f)):
            c = f[s] * c + i[s] * g[s] + (nudge if s == t else 0.0)
            total += dh[s] @ (o[s] * np.tanh(c))
        return total
    T, H = f.shape
    out = np.zeros((T, H))
    for t in range(T):
        for j in range(H):
            e = np.zeros(H)
            e[j] = eps
            out[t, j] = (L(t, e) - L(t, -e)) / (2 * eps)
    return out


@pytest.mark.parametrize("inst", K.all_instances(ID), ids=lambda i: i.label)
def test_reference_matches_finite_differences(inst):
    assert np.allclose(reference(**inst.inputs), _fd_cell_grads(**inst.inputs), rtol=1e-6, atol=1e-8)


def test_reference_agrees_with_the_engine_on_a_real_lstm():
    # With the recurrent weights at zero the gates depend on x only and h̄_t = Vᵀ(o_t - y_t); the engine's
    # per-copy gradient of the candidate bias is then ĉ_t ⊙ i_t ⊙ (1 - g_t²).
    rng = np.random.default_rng(3)
    net = bl.make("lstm", n_in=2, n_hidden=3, n_out=2, seed=4)
    for name in ("W_i", "W_f", "W_g", "W_o"):
        net.params[name] = np.zeros((3, 3))
    xs, ys = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    res = bl.bptt(net, xs, ys)
    gates = res.trace.arrays["gates"][:, 0]                    # [i, f, g, o] per step
    i, f, g, o = (gates[:, k * 3:(k + 1) * 3] for k in range(4))
    dh = (res.trace.outputs - ys) @ net.params["V"]
    c0 = np.zeros(3)
    dc = reference(i=i, f=f, g=g, o=o, c0=c0, dh=dh)
    assert np.allclose(dc * i * (1 - g ** 2), res.by_copy["b_g"], rtol=1e-9, atol=1e-12)
    assert np.allclose(cell_states(i, f, g, c0), res.trace.arrays["c"][1:, 0])


def test_right_answer_gets_full_marks():
    K.assert_full_marks(ID, S.cell_state_grads)


@pytest.mark.parametrize("student, mistake", S.MISTAKES, ids=[f.__name__ for f, _ in S.MISTAKES])
def test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero(student, mistake):
    K.assert_diagnosed_and_scores_zero(ID, student, mistake, S.cell_state_grads)


def test_every_catalogued_slip_fails_every_instance():
    K.assert_every_slip_fails_every_instance(ID)
    assert {m for _, m in S.MISTAKES} == {s.mistake for s in get_exercise(ID).slips}
