"""Random test instances: public ones from a seed fixed per exercise, hidden ones from a secret seed.

Instance i of an exercise is drawn from its own generator, seeded by a hash of (exercise id, "public" or
"hidden", the seed, i), so instances do not depend on each other, on the order of grading or on Python's
hash randomisation. The public seed is fixed, so a student sees the same public instances every time;
hidden instances come from a seed chosen at grading time (a fresh random one in the notebook, the
course's seed in the batch grader), so they cannot be looked up in advance.

:func:`elman_problem` draws the small Elman problems most exercises use.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .exercise import Answer, Exercise

#: Seed of every exercise's public instances (mixed with the exercise id).
PUBLIC_SEED = 2024


@dataclass(frozen=True)
class Instance:
    """One test instance.

    Attributes:
        visibility: "public" (details shown to the student) or "hidden".
        number: 1-based within its visibility.
        inputs: the keyword arguments the student's function is called with.
        answer: the reference answer on these inputs.
    """

    visibility: str
    number: int
    inputs: dict[str, Any]
    answer: Answer

    @property
    def label(self) -> str:
        return f"{self.visibility} instance {self.number}"


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' text, the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def draw(exercise: Exercise, visibility: str, seed: int, count: int) -> list[Instance]:
    """``count`` instances of ``exercise``, each with its reference answer.

    Draws are cached per (exercise, visibility, seed, count): instances are shared, never modified (the
    student's function gets deep copies of the inputs).

    Args:
        exercise: the exercise.
        visibility: "public" or "hidden".
        seed: the seed they are drawn from.
        count: how many.
    """
    return list(_draw(exercise, visibility, int(seed), count))


@lru_cache(maxsize=512)
def _draw(exercise: Exercise, visibility: str, seed: int, count: int) -> tuple[Instance, ...]:
    out = []
    for i in range(1, count + 1):
        rng = np.random.default_rng(stable_seed(exercise.id, visibility, seed, i))
        inputs = exercise.generate(rng)
        out.append(Instance(visibility, i, inputs, exercise.reference(**inputs)))
    return tuple(out)


def public_instances(exercise: Exercise) -> list[Instance]:
    """The exercise's public instances (always the same)."""
    return draw(exercise, "public", PUBLIC_SEED, exercise.n_public)


def hidden_instances(exercise: Exercise, seed: int) -> list[Instance]:
    """The exercise's hidden instances for the grading seed ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"hidden_seed must be an int, got {type(seed).__name__}")
    return draw(exercise, "hidden", int(seed), exercise.n_hidden)


def elman_problem(rng: np.random.Generator, T: int | None = None, n_in: int = 2, n_hidden: int = 3,
                  n_out: int = 2) -> dict[str, np.ndarray]:
    r"""A random Elman problem: parameters, inputs and mse targets.

    Weights are :math:`\mathcal N(0, \sigma^2/\text{fan-in})` with :math:`\sigma` between 0.9 and 1.4, so
    tanh works in its curved part (where a wrong derivative shows) without saturating, and the implicit
    terms are comparable with the explicit ones.

    Args:
        rng: the generator.
        T: sequence length; drawn from 4..6 when None.
        n_in, n_hidden, n_out: D, H, O.

    Returns:
        dict with W (H,H), U (H,D), b (H,), V (O,H), c (O,), xs (T,D), targets (T,O).
    """
    T = int(rng.integers(4, 7)) if T is None else T
    D, H, O = n_in, n_hidden, n_out
    gain = rng.uniform(0.9, 1.4)
    return {
        "W": rng.normal(0.0, gain / np.sqrt(H), (H, H)),
        "U": rng.normal(0.0, gain / np.sqrt(D), (H, D)),
        "b": rng.normal(0.0, 0.3, H),
        "V": rng.normal(0.0, 1.0 / np.sqrt(H), (O, H)),
        "c": rng.normal(0.0, 0.3, O),
        "xs": rng.normal(0.0, 1.0, (T, D)),
        "targets": rng.normal(0.0, 1.0, (T, O)),
    }
