"""Chapter 10: the exercise ``ce-output-grad`` and the public-domain text the chapter trains on.

Oracles: central finite differences of a cross-entropy written here in plain NumPy, the engine's BPTT (the
gradient reaching each copy of the output bias c is dE/do_t), and students' answers written as loops
(tests/charlm_students.py): the right one must get full marks, each mistaken one must be diagnosed as its
catalogued mistake, fail every instance and score 0.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bpttlab as bl
import charlm_students as S
from bpttlab.data import TEXTS, load_text
from bpttlab.grading import CATALOGUE, get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
from bpttlab.grading.pack_charlm import CE_OUTPUT_GRADIENT, charlm_problem, output_gradient

EXERCISE = "ce-output-grad"
SEEDS = (20240607, 7, 11)
ROOT = Path(__file__).resolve().parents[1]


def _all_instances(seed):
    ex = get_exercise(EXERCISE)
    return public_instances(ex) + hidden_instances(ex, seed)


def _cross_entropy(logits, chars):
    """E = Σ_t -log softmax(o_t)[c_t], by log-sum-exp."""
    total = 0.0
    for t, o in enumerate(logits):
        m = np.max(o)
        total += m + np.log(np.sum(np.exp(o - m))) - o[chars[t + 1]]
    return total


def test_the_exercise_is_in_the_core_pack_with_hidden_instances():
    pack = bl.registry.exercises.get("core")
    assert EXERCISE in pack.ids()
    ex = get_exercise(EXERCISE)
    assert ex is CE_OUTPUT_GRADIENT and ex.n_public >= 1 and ex.n_hidden >= 4 and ex.hints


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_equals_finite_differences_of_the_cross_entropy(seed):
    eps = 1e-6
    for inst in _all_instances(seed):
        logits, chars = inst.inputs["logits"], inst.inputs["chars"]
        fd = np.empty_like(logits)
        for idx in np.ndindex(*logits.shape):
            step = np.zeros_like(logits)
            step[idx] = eps
            fd[idx] = (_cross_entropy(logits + step, chars) - _cross_entropy(logits - step, chars)) / (2 * eps)
        np.testing.assert_allclose(inst.answer, fd, rtol=1e-6, atol=1e-8)


def test_reference_is_what_bptt_injects_at_the_outputs_of_a_character_model():
    rng = np.random.default_rng(3)
    K, T = 6, 9
    chars = charlm_problem(rng)["chars"] % K
    chars = np.concatenate([chars, (chars[-1] + 1 + rng.integers(0, K - 1, T)) % K])[:T + 1]
    net = bl.make("elman", n_in=K, n_hidden=4, n_out=K, activation="tanh", seed=5)
    xs = np.eye(K)[chars[:-1]]
    res = bl.bptt(net, xs, chars[1:], loss="cross_entropy")
    logits = bl.forward(net, xs).outputs
    np.testing.assert_allclose(output_gradient(logits, chars), res.by_copy["c"], rtol=1e-10, atol=1e-12)
    assert res.loss == pytest.approx(_cross_entropy(logits, chars), rel=1e-12)


def test_instances_never_repeat_a_character_so_every_step_has_a_new_target():
    for seed in range(40):
        p = charlm_problem(np.random.default_rng(seed))
        T, K = p["logits"].shape
        assert 4 <= T <= 7 and 5 <= K <= 8 and p["chars"].shape == (T + 1,)
        assert p["chars"].min() >= 0 and p["chars"].max() < K
        assert np.all(np.diff(p["chars"]) != 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_right_answer_gets_full_marks(seed):
    fb = bl.grade(EXERCISE, S.ce_output_grad, hidden_seed=seed)
    assert fb.passed and fb.score == CE_OUTPUT_GRADIENT.points and fb.diagnosis == "correct", fb.text


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("student, mistake", [(f, m) for _, f, m in S.MISTAKES],
                         ids=[f.__name__ for _, f, _ in S.MISTAKES])
def test_each_catalogued_mistake_is_diagnosed_on_every_instance_and_scores_zero(student, mistake, seed):
    fb = bl.grade(EXERCISE, student, hidden_seed=seed)
    assert fb.score == 0 and fb.diagnosis == mistake, fb.text
    for v in fb.verdicts:
        assert not v.passed and v.mistake == mistake and v.step == 1, (v.visibility, v.number, v.problem)
        assert v.where.startswith("dE/do[") and v.entry.startswith("dE_")
    assert f"Diagnosis: {CATALOGUE[mistake].title}" in fb.text


def test_every_slip_of_the_exercise_is_made_by_some_student():
    inputs = public_instances(CE_OUTPUT_GRADIENT)[0].inputs
    made = [next(s for s in CE_OUTPUT_GRADIENT.slips
                 if np.allclose(s.compute(**inputs), student(**inputs))) for _, student, _ in S.MISTAKES]
    assert {s.detail for s in made} == {s.detail for s in CE_OUTPUT_GRADIENT.slips}
    assert all(s.mistake == key for s, (_, _, key) in zip(made, S.MISTAKES))


def test_the_shipped_text_is_public_domain_bierce_and_under_100_kb():
    text = load_text()
    assert len(text.encode("utf-8")) < 100_000
    assert "A Public Domain Text, Copyright Expired" in text and "AMBROSE BIERCE" in text
    assert text.index("ABASEMENT, n.") < text.index("CYNIC, n.") and "DAMN, v." not in text
    assert "{" not in text and "}" not in text
    readme = (ROOT / "bpttlab" / "data" / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme or TEXTS[name] in readme for name in TEXTS)


def test_bad_text_names_are_errors_that_list_the_texts():
    with pytest.raises(ValueError, match="devils-dictionary-a-c"):
        load_text("moby-dick")
    with pytest.raises(TypeError, match="name"):
        load_text(3)


def test_the_text_loads_from_the_installed_package(tmp_path):
    """What setuptools installs (build_py with the package data of pyproject.toml), imported on its own."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "bpttlab", src / "bpttlab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    built = tmp_path / "lib"
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                    "--build-lib", str(built)], cwd=src, check=True, capture_output=True)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import bpttlab.data as d; "
             "assert d.__file__.startswith(sys.argv[1]), d.__file__; print(len(d.load_text().encode()))")
    out = subprocess.run([sys.executable, "-c", probe, str(built)], cwd=tmp_path, check=True, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"})
    assert int(out.stdout) == len(load_text().encode("utf-8"))


def test_the_student_release_of_chapter_10_keeps_no_answer():
    import nbformat

    from bpttlab.grading.notebooks import release

    teacher = nbformat.read(ROOT / "workbooks" / "10-char-lm.ipynb", as_version=4)
    student = release(teacher, known_ids=set(bl.registry.exercises.get("core").ids()), name="10-char-lm")
    text = "\n".join(cell.source for cell in student.cells)
    assert "SOLUTION" not in text and "Model answer" not in text and "p /= p.sum" not in text
    model_answers = sum(c.source.count("<!-- BEGIN SOLUTION -->") for c in teacher.cells)
    assert model_answers >= 4 and text.count("YOUR ANSWER HERE") == model_answers
    exercise = next(c for c in student.cells if c.source.startswith("%%bptt exercise ce-output-grad"))
    assert "raise NotImplementedError()" in exercise.source and not exercise.outputs
