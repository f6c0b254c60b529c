"""Students' answers to ``checkpoint-segment`` (chapter 06): one right, and one per catalogued mistake."""
import numpy as np


def _segment(W, U, b, V, c, xs, targets, h_lo, carry, start=None, use_carry=True, deriv=True, back=None,
             return_a=False):
    h = np.array(h_lo if start is None else start, dtype=float)
    hs = [h]
    for x in xs:
        h = np.tanh(W @ h + U @ x + b)
        hs.append(h)
    back = W.T if back is None else back
    gW = np.zeros_like(W)
    dh_next = np.array(carry, dtype=float) if use_carry else np.zeros(len(b))
    da = None
    for t in range(len(xs), 0, -1):
        dh = V.T @ (V @ hs[t] + c - targets[t - 1]) + dh_next
        da = dh * (1 - hs[t] ** 2) if deriv else dh
        gW += np.outer(da, hs[t - 1])
        dh_next = back @ da
    return {"W": gW, "carry": da if return_a else dh_next}


def segment_backward(W, U, b, V, c, xs, targets, h_lo, carry):
    return _segment(W, U, b, V, c, xs, targets, h_lo, carry)


def segment_backward_from_zero(W, U, b, V, c, xs, targets, h_lo, carry):
    return _segment(W, U, b, V, c, xs, targets, h_lo, carry, start=np.zeros(len(b)))


def segment_backward_no_carry(W, U, b, V, c, xs, targets, h_lo, carry):
    return _segment(W, U, b, V, c, xs, targets, h_lo, carry, use_carry=False)


def segment_backward_returns_da(W, U, b, V, c, xs, targets, h_lo, carry):
    return _segment(W, U, b, V, c, xs, targets, h_lo, carry, return_a=True)


def segment_backward_W_not_transposed(W, U, b, V, c, xs, targets, h_lo, carry):
    return _segment(W, U, b, V, c, xs, targets, h_lo, carry, back=W)


def segment_backward_no_derivative(W, U, b, V, c, xs, targets, h_lo, carry):
    return _segment(W, U, b, V, c, xs, targets, h_lo, carry, deriv=False)


MISTAKES = [
    (segment_backward_from_zero, "wrong_start_state"), (segment_backward_no_carry, "wrong_truncation"),
    (segment_backward_returns_da, "off_by_one_time"), (segment_backward_W_not_transposed, "transposed"),
    (segment_backward_no_derivative, "activation_derivative_missing"),
]
