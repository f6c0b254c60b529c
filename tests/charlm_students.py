"""Students' answers to chapter 10's exercise ``ce-output-grad``, written the way students write them: plain
NumPy loops over the steps, independent of bpttlab. ``CORRECT`` is a right answer; ``MISTAKES`` lists
(exercise id, function, the catalogue key its mistake must be diagnosed as), as in grading_students.py,
which merges both into its own tables.
"""
from __future__ import annotations

import numpy as np


def _softmax(scores):
    e = np.exp(scores - np.max(scores))
    return e / e.sum()


def ce_output_grad(logits, chars):
    grads = []
    for t in range(len(logits)):
        p = _softmax(logits[t])
        p[chars[t + 1]] -= 1.0
        grads.append(p)
    return np.array(grads)


def ce_output_grad_onehot_minus_p(logits, chars):
    grads = []
    for t in range(len(logits)):
        target = np.zeros(len(logits[t]))
        target[chars[t + 1]] = 1.0
        grads.append(target - _softmax(logits[t]))
    return np.array(grads)


def ce_output_grad_current_char(logits, chars):
    grads = []
    for t in range(len(logits)):
        p = _softmax(logits[t])
        p[chars[t]] -= 1.0
        grads.append(p)
    return np.array(grads)


def ce_output_grad_mean(logits, chars):
    return ce_output_grad(logits, chars) / len(logits)


def ce_output_grad_mse(logits, chars):
    grads = np.array(logits, dtype=float)
    for t in range(len(logits)):
        grads[t, chars[t + 1]] -= 1.0
    return grads


def ce_output_grad_unnormalised(logits, chars):
    grads = np.exp(logits)
    for t in range(len(logits)):
        grads[t, chars[t + 1]] -= 1.0
    return grads


def ce_output_grad_log_probabilities(logits, chars):
    grads = []
    for t in range(len(logits)):
        o = logits[t]
        logp = o - np.log(np.sum(np.exp(o)))
        logp[chars[t + 1]] -= 1.0
        grads.append(logp)
    return np.array(grads)


def ce_output_grad_softmax_over_time(logits, chars):
    e = np.exp(logits)
    p = e / e.sum(axis=0)
    for t in range(len(logits)):
        p[t, chars[t + 1]] -= 1.0
    return p


CORRECT = {"ce-output-grad": ce_output_grad}

MISTAKES = [
    ("ce-output-grad", ce_output_grad_onehot_minus_p, "sign_flipped"),
    ("ce-output-grad", ce_output_grad_current_char, "off_by_one_time"),
    ("ce-output-grad", ce_output_grad_mean, "mean_instead_of_sum"),
    ("ce-output-grad", ce_output_grad_mse, "softmax_missing"),
    ("ce-output-grad", ce_output_grad_unnormalised, "softmax_missing"),
    ("ce-output-grad", ce_output_grad_log_probabilities, "softmax_missing"),
    ("ce-output-grad", ce_output_grad_softmax_over_time, "wrong_axis"),
]
