r"""Chapter 10's exercise: the cross-entropy gradient at the outputs of a character language model.

A character-level model reads a stretch of text :math:`c_0, c_1, \dots, c_T` (integer ids in an alphabet
of K characters) one character at a time: at step t = 1..T it reads :math:`c_{t-1}` and outputs K
scores, the logits :math:`o_t`; its target is the next character, :math:`y_t = c_t`. With the
probabilities :math:`p_t = \operatorname{softmax}(o_t)`,

.. math::

    E = \sum_{t=1}^{T} E_t, \qquad E_t = -\log p_t[y_t], \qquad
    \frac{\partial E}{\partial o_t} = \frac{\partial E_t}{\partial o_t} = p_t - \operatorname{onehot}(y_t),

since :math:`o_t` reaches no other loss. This is what back-propagation through time injects at every step
of the chapter's network, in place of the mse loss's :math:`o_t - y_t`.

The reference is the engine's own loss plugin (``bl.registry.losses.get("cross_entropy").grad``); the
slips are computed from the probabilities it implies, :math:`p_t = \bar o_t + \operatorname{onehot}(y_t)`.
Instances never repeat a character twice in a row, so reading :math:`c_{t-1}` as the target (the
off-by-one slip) is wrong at every step; every other slip is wrong for any logits.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from .exercise import Exercise, Slip, Timeline


def charlm_problem(rng: np.random.Generator) -> dict[str, np.ndarray]:
    r"""Logits o_1..o_T, (T, K), and the characters c_0..c_T, (T+1,), with no character twice in a row.

    T is drawn from 4..7 and K from 5..8; logits are :math:`\mathcal N(0, 1.5^2)`, so the probabilities
    are far from uniform and far from one-hot.
    """
    T, K = int(rng.integers(4, 8)), int(rng.integers(5, 9))
    steps = rng.integers(1, K, size=T)  # each next character differs from the one before
    chars = (int(rng.integers(0, K)) + np.concatenate([[0], np.cumsum(steps)])) % K
    return {"logits": rng.normal(0.0, 1.5, (T, K)), "chars": chars.astype(np.int64)}


def output_gradient(logits, chars) -> np.ndarray:
    r""":math:`\partial E/\partial o_t = \operatorname{softmax}(o_t) - \operatorname{onehot}(c_t)` for
    t = 1..T, (T, K), from the engine's cross-entropy loss."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(chars)[1:]
    return registry.losses.get("cross_entropy").grad(logits[:, None, :], targets[:, None])[:, 0]


def _onehot(ids, K: int) -> np.ndarray:
    return np.eye(K)[np.asarray(ids)]


def _probabilities(logits, chars) -> np.ndarray:
    """p_t = softmax(o_t), recovered from the reference gradient."""
    return output_gradient(logits, chars) + _onehot(np.asarray(chars)[1:], np.shape(logits)[1])


def _standing_in_for_p(replacement):
    """The slip: ``replacement(logits, p)`` where the probabilities p_t belong."""
    def compute(logits, chars):
        logits = np.asarray(logits, dtype=np.float64)
        return replacement(logits, _probabilities(logits, chars)) - _onehot(np.asarray(chars)[1:], logits.shape[1])
    return compute


def _softmax_over_time(logits, p):
    e = np.exp(logits - logits.max())
    return e / e.sum(axis=0, keepdims=True)


def _input_as_target(logits, chars):
    return _probabilities(logits, chars) - _onehot(np.asarray(chars)[:-1], np.shape(logits)[1])


CE_OUTPUT_GRADIENT = Exercise(
    id="ce-output-grad", title="The cross-entropy gradient at the outputs of a character model",
    chapter="10 A character-level language model",
    prompt="The model read the characters c_0..c_{T-1} (chars[:-1]) and produced the logits o_1..o_T, one row "
           "of K scores per step (logits[t] is o_{t+1}); the target of step t is the next character, "
           "y_t = c_t. With p_t = softmax(o_t) and E = Σ_t -log p_t[y_t], return dE/do_t for t = 1..T as an "
           "array of shape (T, K): row t is p_t - onehot(y_t).",
    function="ce_output_grad", signature="ce_output_grad(logits, chars) -> ndarray (T, K)", parameter="dE/do",
    generate=charlm_problem, reference=output_gradient,
    slips=(
        Slip("sign_flipped", "onehot(y_t) - softmax(o_t): the difference taken the wrong way round",
             lambda logits, chars: -output_gradient(logits, chars),
             hint="d(-log p_t[y_t])/do_t = p_t - onehot(y_t): the probabilities minus 1 at the target, so "
                  "every entry except the target's is positive."),
        Slip("off_by_one_time", "the character read, c_{t-1}, taken as the target instead of the next one, c_t",
             _input_as_target,
             hint="The model predicts the next character: row t of logits (o_{t+1}) is scored against "
                  "chars[t + 1], so the targets are chars[1:], not chars[:-1]."),
        Slip("mean_instead_of_sum", "divided by T",
             lambda logits, chars: output_gradient(logits, chars) / len(logits)),
        Slip("softmax_missing", "o_t - onehot(y_t): the logits used as probabilities (the mse gradient)",
             _standing_in_for_p(lambda logits, p: logits)),
        Slip("softmax_missing", "exp(o_t) - onehot(y_t): the softmax without its normaliser",
             _standing_in_for_p(lambda logits, p: np.exp(logits))),
        Slip("softmax_missing", "log softmax(o_t) - onehot(y_t): log-probabilities for probabilities",
             _standing_in_for_p(lambda logits, p: np.log(p))),
        Slip("wrong_axis", "softmax normalised over time (axis 0) instead of over the K characters",
             _standing_in_for_p(_softmax_over_time),
             hint="Each step has its own distribution over the K characters: normalise every row, "
                  "e / e.sum(axis=1, keepdims=True), so that each row of p sums to 1."),
    ),
    points=1.0,
    hints=("Subtract each row's maximum before np.exp: softmax(o) = softmax(o - max(o)), and large logits "
           "no longer overflow.",),
    timeline=Timeline("rows", symbol="dE_{t}/do_{t}"),
)
