"""Grading in the notebook: the core pack, diagnoses of students' mistakes, partial credit, feedback,
``bl.grade`` and ``%%bptt exercise``.

The oracle is tests/grading_students.py: answers written independently of bpttlab, in plain NumPy loops,
the way students write them. A right one must get full marks against the engine's references; a wrong one
must be diagnosed as the mistake it makes, and located at the first time step and the entry where it
disagrees with the right student answer.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import bpttlab as bl
import grading_students as S
from bpttlab.grading import CATALOGUE, Exercise, ExercisePack, Slip, get_exercise
from bpttlab.grading.exercise import validate_pack
from bpttlab.grading.diagnosis import planned_calls
from bpttlab.grading.instances import hidden_instances, public_instances
from bpttlab.grading.sandbox import Job, Sandbox

SEED = 20240607
ISSUE_MISTAKES = ("explicit_only", "activation_derivative_missing", "activation_derivative_wrong",
                  "off_by_one_time", "no_accumulation", "mean_instead_of_sum", "transposed", "wrong_truncation",
                  "sign_flipped", "elementwise_product")


def instances(exercise_id: str, seed: int = SEED):
    ex = get_exercise(exercise_id)
    return public_instances(ex) + hidden_instances(ex, seed)


# -- the pack -------------------------------------------------------------------------------------------


def test_core_pack_is_registered_with_the_exercises_the_issue_lists():
    pack = bl.registry.exercises.get("core")
    assert bl.registry.exercises.origins["core"] != "registered at run time"  # came from the entry point
    ids = pack.ids()
    assert len(ids) >= 10
    # forward pass, total loss, dE/dV, explicit term of dh_t/dW, full dE_t/dW, dE/dU, truncated gradient
    # with k2, norm clipping, one TBPTT(k1, k2) update, a GRU gate derivative
    for wanted in ("forward-pass", "total-loss", "grad-V", "explicit-dh-dW", "grad-Et-W", "grad-U",
                   "truncated-grad-W", "clip-norm", "tbptt-update", "gru-update-gate"):
        assert wanted in ids
    assert set(S.CORRECT) == set(ids)


def test_every_issue_mistake_is_catalogued_and_written_by_some_student():
    assert set(ISSUE_MISTAKES) <= set(CATALOGUE)
    assert set(ISSUE_MISTAKES) <= {key for _, _, key in S.MISTAKES}
    for key, mistake in CATALOGUE.items():
        assert mistake.key == key and mistake.title and mistake.explanation and mistake.hint


# -- right answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("exercise_id", sorted(S.CORRECT))
@pytest.mark.parametrize("seed", [SEED, 7])
def test_right_answers_get_full_marks_on_public_and_hidden_instances(exercise_id, seed):
    fb = bl.grade(exercise_id, S.CORRECT[exercise_id], hidden_seed=seed)
    ex = get_exercise(exercise_id)
    assert [v.visibility for v in fb.verdicts] == ["public"] * ex.n_public + ["hidden"] * ex.n_hidden
    assert ex.n_hidden > 0
    assert all(v.passed for v in fb.verdicts), fb.text
    assert fb.passed and fb.score == ex.points and fb.diagnosis == "correct"
    assert f"Hidden instances: {ex.n_hidden} of {ex.n_hidden} right." in fb.text


@pytest.mark.parametrize("exercise_id", sorted(S.CORRECT))
def test_references_agree_with_the_students_right_answers_entry_by_entry(exercise_id):
    for inst in instances(exercise_id):
        mine = S.CORRECT[exercise_id](**inst.inputs)
        if isinstance(inst.answer, dict):
            assert set(mine) == set(inst.answer)
            for k in mine:
                np.testing.assert_allclose(mine[k], inst.answer[k], rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(mine, inst.answer, rtol=1e-9, atol=1e-12)


def test_public_instances_are_fixed_and_hidden_ones_depend_on_the_seed():
    ex = get_exercise("grad-W")
    a, b = public_instances(ex), public_instances(ex)
    assert all(np.array_equal(x.inputs["W"], y.inputs["W"]) for x, y in zip(a, b))
    h1, h2, h3 = hidden_instances(ex, 1), hidden_instances(ex, 1), hidden_instances(ex, 2)
    assert all(np.array_equal(x.inputs["W"], y.inputs["W"]) for x, y in zip(h1, h2))
    assert not any(np.array_equal(x.inputs["W"], y.inputs["W"]) for x, y in zip(h1, h3))
    assert not any(np.array_equal(x.inputs["W"], y.inputs["W"]) for x, y in zip(a, h1))


def test_grade_draws_fresh_hidden_instances_without_a_seed():
    seen = []

    def spy(W, U, b, V, c, xs, targets):
        seen.append(np.array(W))
        return S.grad_V(W, U, b, V, c, xs, targets)

    bl.grade("grad-V", spy)
    bl.grade("grad-V", spy)
    ex = get_exercise("grad-V")
    first, second = seen[:len(seen) // 2], seen[len(seen) // 2:]
    n = ex.n_public
    assert all(np.array_equal(x, y) for x, y in zip(first[:n], second[:n]))  # public: the same
    assert not any(np.array_equal(x, y) for x, y in zip(first[n:], second[n:]))  # hidden: redrawn


# -- mistakes -------------------------------------------------------------------------------------------


def _differs(a, b) -> bool:
    if isinstance(b, dict):
        return any(_differs(a[k], b[k]) for k in b)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape != b.shape or not np.allclose(a, b, rtol=1e-6, atol=1e-9)


def expected_step(ex: Exercise, fn, right, inputs) -> int | None:
    """The first time step at which ``fn`` disagrees with the right student answer, found directly."""
    tl = ex.timeline
    if tl is None:
        return None
    if tl.mode == "rows":
        mine, ok = np.asarray(fn(**inputs)), np.asarray(right(**inputs))
        if mine.shape != ok.shape:
            return None
        wrong = [t + 1 for t in range(len(ok)) if not np.allclose(mine[t], ok[t], rtol=0, atol=1e-7)]
        return wrong[-1] if tl.backward else wrong[0]
    steps = int(inputs[tl.step_arg]) if tl.step_arg else len(inputs[tl.args[0]])
    for n in range(1, steps + 1):
        cut = dict(inputs)
        for name in tl.args:
            cut[name] = inputs[name][:n]
        if tl.step_arg:
            cut[tl.step_arg] = n
        if _differs(fn(**cut), right(**cut)):
            return n
    raise AssertionError("the mistaken answer agrees with the right one on every prefix")


def expected_where(ex: Exercise, answer, right_answer) -> set[str]:
    """The parameter and the entry with the largest error where an answer is wrong, found directly (all
    entries whose error ties with the largest, up to rounding)."""
    name = ex.parameter
    if isinstance(right_answer, dict):
        key = next(k for k in ("W", "U", "b", "V", "c", *right_answer) if k in right_answer
                   and _differs(answer[k], right_answer[k]))
        name = f"{ex.parameter}[{key!r}]"
        answer, right_answer = answer[key], right_answer[key]
    answer, right_answer = np.asarray(answer, dtype=float), np.asarray(right_answer, dtype=float)
    if answer.shape != right_answer.shape or answer.ndim == 0:
        return {name}
    err = np.abs(answer - right_answer)
    return {f"{name}[{', '.join(str(int(i)) for i in index)}]" for index in np.argwhere(err >= err.max() - 1e-9)}


@pytest.mark.parametrize("exercise_id, student, mistake", S.MISTAKES,
                         ids=[f"{e}-{f.__name__}" for e, f, _ in S.MISTAKES])
def test_each_mistake_is_diagnosed_with_its_first_step_and_parameter(exercise_id, student, mistake):
    ex = get_exercise(exercise_id)
    right = S.CORRECT[exercise_id]
    fb = bl.grade(exercise_id, student, hidden_seed=SEED)
    assert fb.diagnosis == mistake, fb.text
    assert fb.score == 0  # no credit for a catalogued mistake
    failed = 0
    for v, inst in zip(fb.verdicts, instances(exercise_id)):
        wrong = _differs(student(**inst.inputs), right(**inst.inputs))
        assert v.passed == (not wrong)
        if v.passed:
            continue
        failed += 1
        assert v.mistake == mistake, (v.visibility, v.number, v.problem)
        assert v.step == expected_step(ex, student, right, inst.inputs)
        assert v.where in expected_where(ex, student(**inst.inputs), right(**inst.inputs))
    assert failed > 0
    main = fb.main
    text = fb.text
    assert f"Diagnosis: {CATALOGUE[mistake].title}" in text
    slip = ex.slip(main.mistake, main.detail)
    assert f"Hint: {slip.hint or CATALOGUE[mistake].hint}" in text
    if main.step is not None:
        assert f"at t = {main.step}" in text
    if main.max_error is not None:
        assert main.where in text
    else:
        assert main.problem in text  # e.g. a wrong shape
    lines = text.splitlines()
    assert len(lines) == len(set(lines))  # nothing said twice
    hints = [line[len("Hint: "):].rstrip(".").lower() for line in lines if line.startswith("Hint: ")]
    assert not any(a != b and a in b for a in hints for b in hints), hints
    assert f"{CATALOGUE[mistake].title}: {CATALOGUE[mistake].title}" not in text


def test_no_slip_detail_repeats_its_mistake_title():
    for ex in bl.registry.exercises.get("core").exercises:
        for slip in ex.slips:
            assert slip.detail.strip().lower() != CATALOGUE[slip.mistake].title.lower(), (ex.id, slip.detail)


def _location_line(fb) -> str:
    return next(line for line in fb.text.splitlines() if "goes wrong" in line or "largest error" in line)


@pytest.mark.parametrize("exercise_id, student, array, symbol", [
    ("forward-pass", S.rnn_forward_transposed, "hs", "h"),
    ("grad-hidden", S.grad_hidden_W_not_transposed, "dhs", "dE/dh"),
])
def test_location_of_a_time_indexed_answer_keeps_time_1_based_and_indices_0_based(exercise_id, student, array,
                                                                                    symbol):
    fb = bl.grade(exercise_id, student, hidden_seed=SEED)
    line = _location_line(fb)
    main = fb.main
    # the first wrong step t names row t - 1 of the array, which is the maths quantity at time t
    step = re.search(rf"at t = (\d+) \({re.escape(array)}\[(\d+)\] is {re.escape(symbol)}_(\d+)\)", line)
    assert step, line
    t, row, t_again = map(int, step.groups())
    assert t == main.step and row == t - 1 and t_again == t
    # the largest error: row r, entry j of the array is the maths quantity at time r + 1, entry j
    entry = re.search(rf"is in {re.escape(array)}\[(\d+), (\d+)\], which is {re.escape(symbol)}_(\d+)\[(\d+)\]",
                      line)
    assert entry, line
    r, j, t_entry, j_again = map(int, entry.groups())
    inst = instances(exercise_id)[0]
    err = np.abs(np.asarray(student(**inst.inputs)) - np.asarray(S.CORRECT[exercise_id](**inst.inputs)))
    assert err[r, j] == pytest.approx(err.max()) and t_entry == r + 1 and j_again == j
    assert not re.search(rf"(?<![\w/]){re.escape(symbol)}\[", line)  # no maths name indexed like an array


def test_location_of_a_parameter_gradient_names_the_prefix_and_the_entry():
    fb = bl.grade("grad-W", S.grad_W_explicit_only, hidden_seed=SEED)
    line = _location_line(fb)
    assert line.startswith("It first goes wrong at t = 3: on x_1..x_3 alone (xs[:3]) your function already differs")
    assert re.search(r"the largest error, [\d.e-]+, is in dE/dW\[\d, \d\] \(public instance 1\)\.$", line), line
    fb = bl.grade("tbptt-update", S.tbptt_update_plus, hidden_seed=SEED)
    assert re.search(r"^The largest error, [\d.e-]+, is in params\['W'\]\[\d, \d\] \(public instance 1\)\.$",
                     _location_line(fb)), fb.text


@pytest.mark.parametrize("exercise_id, student, says, never", [
    ("forward-pass", S.rnn_forward_transposed, ["W @ h"], ["dE/dW", "going back", "backward"]),
    ("forward-pass", S.rnn_forward_elementwise, ["W @ h"], ["dE/dW", "outer", "delta"]),
    ("explicit-dh-dW", S.explicit_dh_dW_transposed, ["J[i, j, k]"], ["dE/dW", "going back"]),
    ("total-loss", S.total_loss_overwritten, ["E += E_t"], ["parameter"]),
    ("total-loss", S.total_loss_mean, ["Drop the division"], ["1/T"]),
    ("grad-hidden", S.grad_hidden_no_future, ["dE/dh_{t+1}"], ["C[t][t]", "every copy"]),
    ("grad-Et-W", S.grad_Et_W_explicit_only, ["dE_t/dh_{k-1}"], ["its own loss"]),
    ("grad-V", S.grad_V_outer_swapped, ["np.outer(o_t - y_t, h_t)"], ["a_t = W h_{t-1}"]),
    ("truncated-grad-W", S.truncated_grad_W_W_not_transposed, ["W.T @ ā"], []),
    ("tbptt-update", S.tbptt_update_W_not_transposed, ["W.T @ ā"], []),
    ("tbptt-update", S.tbptt_update_per_loss, ["same copy T-k2+1"], ["E_t keeps the copies"]),
    ("truncated-grad-W", S.truncated_grad_W_one_short, ["k = t-k2+1"], ["TBPTT"]),
    ("explicit-dh-dW", S.explicit_dh_dW_no_derivative, ["∂⁺h_t/∂W needs"], ["dE/dh_t"]),
    ("tbptt-update", S.tbptt_update_last_loss, ["k1 losses"], ["shared by every copy"]),
    ("tbptt-update", S.tbptt_update_mean, ["Drop the division"], ["1/T"]),
    ("tbptt-update", S.tbptt_update_plus, ["θ - lr · g"], ["o_t - y_t"]),
    ("gru-update-gate", S.gru_grad_Wz_no_derivative, ["σ'(a_z) = z(1 - z)"], ["h_t = f(a_t)", "f'(a_t)"]),
    ("gru-update-gate", S.gru_grad_Wz_n_minus_h, ["∂h_t/∂z = h_{t-1} - n"], ["o_t - y_t"]),
    ("gru-update-gate", S.gru_grad_Wz_new_state, ["h_prev"], ["xs[0]"]),
    ("gru-update-gate", S.gru_grad_Wz_elementwise, ["np.outer(ā_z, h_prev)"], ["dE/dW =", "W h_{t-1}"]),
])
def test_hints_speak_about_the_exercise_at_hand(exercise_id, student, says, never):
    fb = bl.grade(exercise_id, student, hidden_seed=SEED)
    hints = [line for line in fb.text.splitlines() if line.startswith("Hint:")]
    advice = "\n".join([*hints, *fb.diagnosis_lines()])
    for phrase in says:
        assert phrase in advice, fb.text
    for phrase in never:
        assert phrase not in advice, fb.text




def test_explicit_only_goes_wrong_where_the_first_implicit_term_is_nonzero():
    # With h_0 = 0 the copy-1 term of dE/dW vanishes, so dropping the implicit paths shows first at t = 3
    # for W (C[3][2] is the first nonzero implicit term) and at t = 2 for U (C[2][1] = ... x_1ᵀ).
    assert {v.step for v in bl.grade("grad-W", S.grad_W_explicit_only, hidden_seed=1).verdicts} == {3}
    assert {v.step for v in bl.grade("grad-U", S.grad_U_explicit_only, hidden_seed=1).verdicts} == {2}


def test_an_unknown_mistake_is_still_located():
    def grad_W_doubled_last_step(W, U, b, V, c, xs, targets):
        g = S.grad_W(W, U, b, V, c, xs, targets)
        return g + S.grad_W(W, U, b, V, c, xs, targets) * (len(xs) >= 4)

    fb = bl.grade("grad-W", grad_W_doubled_last_step, hidden_seed=SEED)
    assert fb.diagnosis == "wrong" and fb.score == 0
    assert {v.step for v in fb.verdicts} == {4}
    assert "not one of the known mistakes" in fb.text


# -- partial credit -------------------------------------------------------------------------------------


def test_partial_credit_is_an_equal_share_per_instance():
    def right_for_short_sequences(W, U, b, V, c, xs, targets):
        g = S.grad_W(W, U, b, V, c, xs, targets)
        return g if len(xs) < 6 else np.zeros_like(g)

    ex = get_exercise("grad-W")
    insts = instances("grad-W")
    short = [len(i.inputs["xs"]) < 6 for i in insts]
    assert 0 < sum(short) < len(short)  # the seed gives both kinds
    fb = bl.grade("grad-W", right_for_short_sequences, hidden_seed=SEED)
    assert [v.passed for v in fb.verdicts] == short
    assert fb.score == pytest.approx(ex.points * sum(short) / len(short))
    assert not fb.passed


@pytest.mark.parametrize("student, mistake", [(S.clip_each, "per_tensor_clipping"),
                                              (S.clip_always, "always_rescaled"),
                                              (S.clip_values, "clipped_by_value")])
def test_clipping_mistakes_earn_nothing_even_on_the_instances_where_they_coincide(student, mistake):
    insts = instances("clip-norm")
    right = [not _differs(student(**i.inputs), S.clip_by_norm(**i.inputs)) for i in insts]
    assert 0 < sum(right) < len(right)  # each is right where no clipping is needed (0.571 of 1 point before)
    fb = bl.grade("clip-norm", student, hidden_seed=SEED)
    assert [v.passed for v in fb.verdicts] == right
    assert fb.diagnosis == mistake and fb.score == 0
    assert "A known mistake earns no points, even on the instances where it happens to give the right answer." \
        in fb.text


def _digest(value) -> bytes:
    """The inputs of a call as bytes (dicts in key order, arrays by shape and value)."""
    if isinstance(value, dict):
        return b"".join(k.encode() + b"=" + _digest(value[k]) + b";" for k in sorted(value))
    arr = np.asarray(value, dtype=float)
    return repr(arr.shape).encode() + arr.tobytes()


def _every_slip():
    return [pytest.param(ex, slip, id=f"{ex.id}-{slip.mistake}-{i}")
            for _, pack in bl.registry.exercises.items() for ex in pack.exercises
            for i, slip in enumerate(ex.slips)]


@pytest.mark.parametrize("ex, slip", _every_slip())
def test_every_catalogued_slip_is_diagnosed_located_and_scores_zero(ex, slip):
    """Each slip of each registered exercise, written as a student's function (it returns what the slip
    computes), is named, located at its first wrong time step, and earns nothing, even where it happens to
    coincide with the right answer."""
    insts = public_instances(ex) + hidden_instances(ex, SEED)
    # the slip's answers, computed before grading: a graded function may not call bpttlab itself
    answers = {_digest(inputs): slip.compute(**inputs) for _, _, inputs in planned_calls(ex, insts)}

    def student(**inputs):
        return answers[_digest(inputs)]

    fb = bl.grade(ex, student, hidden_seed=SEED)
    assert fb.diagnosis == slip.mistake, fb.text
    assert fb.score == 0
    failed = [(v, inst) for v, inst in zip(fb.verdicts, insts) if not v.passed]
    assert failed, "the slip agrees with the reference on every instance: it cannot be diagnosed"
    for v, inst in failed:
        if slip.compute(**inst.inputs) is None:  # the slip does not exist on this instance: the student's
            assert v.raised                      # function returns nothing (or fails) there
            continue
        assert slip.mistake in dict(v.matches), (v.visibility, v.number, v.matches)
        if ex.timeline is not None:  # None only where the answer's shape is wrong (no row to point at)
            assert v.step == expected_step(ex, slip.compute, ex.reference, inst.inputs), (v.visibility, v.number)
    assert fb.main.mistake == slip.mistake
    if fb.main.step is not None:
        assert f"t = {fb.main.step}" in fb.text


# -- feedback -------------------------------------------------------------------------------------------


ALL_PASSED = re.compile(r"all\s+(the\s+)?tests?\s+(have\s+)?passed|all\s+passed", re.I)


@pytest.mark.parametrize("exercise_id", ["grad-W", "clip-norm", "gru-update-gate"])
def test_feedback_never_claims_all_tests_passed_when_hidden_cases_exist(exercise_id):
    for fb in (bl.grade(exercise_id, S.CORRECT[exercise_id]),
               bl.grade(exercise_id, S.CORRECT[exercise_id], hidden_seed=SEED)):
        ex = fb.exercise
        for rendering in (fb.text, fb._repr_html_(), repr(fb)):
            assert not ALL_PASSED.search(rendering)
            assert f"{ex.n_public} of {ex.n_public}" in rendering and f"{ex.n_hidden} of {ex.n_hidden}" in rendering
    assert "drawn afresh" in bl.grade(exercise_id, S.CORRECT[exercise_id]).text
    assert "drawn afresh" not in bl.grade(exercise_id, S.CORRECT[exercise_id], hidden_seed=SEED).text


def test_html_feedback_shows_score_instances_diagnosis_and_hint():
    fb = bl.grade("grad-W", S.grad_W_no_derivative, hidden_seed=SEED)
    html = fb._repr_html_()
    assert "0 / 3" in html
    assert html.count("✗") == len(fb.verdicts)
    assert "activation derivative missing" in html
    assert "Hint:" in html and "f&#x27;(a_t)" in html
    ok = bl.grade("grad-W", S.grad_W, hidden_seed=SEED)._repr_html_()
    assert "3 / 3" in ok and ok.count("✓") == len(fb.verdicts) and "Hint" not in ok


def test_a_function_that_raises_or_returns_nothing_is_reported_not_raised():
    def broken(W, U, b, V, c, xs, targets):
        return W @ xs  # shapes do not fit

    fb = bl.grade("grad-W", broken, hidden_seed=SEED)
    assert fb.score == 0 and fb.diagnosis == "raised"
    assert "ValueError" in fb.text and "in broken" in fb.text

    fb = bl.grade("grad-W", lambda **kw: None, hidden_seed=SEED)
    assert "forget to return" in fb.text


def test_printing_while_graded_is_kept_out_and_noted(capsys):
    def chatty(W, U, b, V, c, xs, targets):
        print("debug", W.shape)
        return S.grad_W(W, U, b, V, c, xs, targets)

    fb = bl.grade("grad-W", chatty, hidden_seed=SEED)
    assert fb.passed
    assert "debug" not in capsys.readouterr().out
    assert "printed" in fb.text


def test_the_student_cannot_change_the_instances_by_mutating_inputs():
    def vandal(W, U, b, V, c, xs, targets):
        g = S.grad_W(W, U, b, V, c, xs, targets)
        W[...] = 0.0
        xs[...] = 0.0
        return g

    assert bl.grade("grad-W", vandal, hidden_seed=SEED).passed
    assert bl.grade("grad-W", S.grad_W, hidden_seed=SEED).passed


# -- bad ids and arguments ------------------------------------------------------------------------------


def test_bad_ids_and_arguments_give_clear_errors():
    with pytest.raises(ValueError, match=r"unknown exercise 'grad-Z'.*grad-W"):
        bl.grade("grad-Z", S.grad_W)
    with pytest.raises(TypeError, match="exercise_id must be an exercise id"):
        bl.grade(3, S.grad_W)
    with pytest.raises(TypeError, match="fn must be the function to grade, got str"):
        bl.grade("grad-W", "grad_W")
    with pytest.raises(TypeError, match="hidden_seed must be an int, got str"):
        bl.grade("grad-W", S.grad_W, hidden_seed="1")
    with pytest.raises(ValueError, match="no exercise 'nope'.*grad-W"):
        bl.grade("core:nope", S.grad_W)
    with pytest.raises(ValueError, match="nopack"):
        bl.grade("nopack:grad-W", S.grad_W)
    assert bl.grade("core:grad-W", S.grad_W, hidden_seed=1).passed


def _tiny(**changes) -> Exercise:
    fields = dict(id="tiny", title="t", chapter="c", prompt="p", function="f", signature="f()", parameter="x",
                  generate=lambda rng: {}, reference=lambda: np.zeros(1))
    fields.update(changes)
    return Exercise(**fields)


@pytest.mark.parametrize("pack, error, message", [
    ("not a pack", TypeError, "must be a bpttlab.grading.exercise.ExercisePack, got str"),
    (ExercisePack("other", "d", (_tiny(),)), ValueError, "calls itself 'other'"),
    (ExercisePack("p", "d", ()), ValueError, "has no exercises"),
    (ExercisePack("p", "d", (_tiny(), _tiny())), ValueError, "used twice"),
    (ExercisePack("p", "d", (_tiny(id="bad id"),)), ValueError, "the id must be"),
    (ExercisePack("p", "d", (_tiny(slips=(Slip("typo", "d", lambda: 0),)),)), ValueError,
     "names mistake 'typo', which is not in the catalogue"),
    (ExercisePack("p", "d", (_tiny(points=0),)), ValueError, "points must be positive, got 0"),
])
def test_invalid_packs_are_rejected_with_the_reason(pack, error, message):
    with pytest.raises(error, match=message):
        validate_pack("p", pack)


def test_a_plugin_pack_is_gradable_by_id_and_by_pack_prefix():
    ex = _tiny(id="grad-W", function="f", reference=lambda: np.ones(2), n_hidden=1)
    bl.registry.exercises.register("extra", ExercisePack("extra", "d", (ex,)))
    try:
        with pytest.raises(ValueError, match="in several packs; say which: core:grad-W, extra:grad-W"):
            bl.grade("grad-W", S.grad_W)
        assert bl.grade("extra:grad-W", lambda: np.ones(2)).passed
    finally:
        bl.registry.exercises.unregister("extra")


# -- %%bptt exercise ------------------------------------------------------------------------------------


@pytest.fixture
def ip():
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("bpttlab")
    shell.user_ns["np"] = np
    yield shell
    shell.reset(new_session=False)


GRAD_V_CELL = """\
def grad_V(W, U, b, V, c, xs, targets):
    h, g = np.zeros(len(b)), np.zeros_like(V)
    for x, y in zip(xs, targets):
        h = np.tanh(W @ h + U @ x + b)
        g += np.outer({err}, h)
    return g
"""


def test_cell_magic_runs_the_cell_and_grades_its_function(ip):
    fb = ip.run_cell_magic("bptt", "exercise grad-V", GRAD_V_CELL.format(err="V @ h + c - y"))
    assert fb.passed and fb.score == 1.0 and "drawn afresh" in fb.text
    assert callable(ip.user_ns["grad_V"])  # defined in the notebook like any cell

    fb = ip.run_cell_magic("bptt", "exercise grad-V", GRAD_V_CELL.format(err="y - (V @ h + c)"))
    assert fb.diagnosis == "sign_flipped" and fb.score == 0
    assert "<div" in fb._repr_html_()


def test_cell_magic_through_run_cell_shows_the_feedback(ip):
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        result = ip.run_cell("%%bptt exercise grad-V\n" + GRAD_V_CELL.format(err="V @ h + c - y"))
    assert result.success
    assert "grad-V" in out.stdout and "1 / 1 points" in out.stdout


def test_cell_magic_without_the_function_or_with_a_syntax_error(ip):
    fb = ip.run_cell_magic("bptt", "exercise grad-W", "x = 1\n")
    assert fb.score == 0 and fb.diagnosis == "no-function"
    assert "must define the function grad_W(" in fb.text

    ip.user_ns["grad_W"] = S.grad_W  # defined earlier, but not by this cell
    assert ip.run_cell_magic("bptt", "exercise grad-W", "y = 2\n").diagnosis == "no-function"

    fb = ip.run_cell_magic("bptt", "exercise grad-W", "def grad_W(:\n")
    assert fb.diagnosis == "syntax-error" and fb.score == 0


def test_cell_magic_grades_a_function_even_if_the_cell_raises_afterwards(ip):
    fb = ip.run_cell_magic("bptt", "exercise grad-V",
                           GRAD_V_CELL.format(err="V @ h + c - y") + "raise RuntimeError('later')\n")
    assert fb.passed
    assert "raised RuntimeError after defining grad_V" in fb.text


@pytest.mark.parametrize("line, message", [
    ("exercise grad-Z", "unknown exercise 'grad-Z'; registered exercises: .*grad-W"),
    ("exercise", "ID"),
])
def test_cell_magic_bad_ids_are_usage_errors(ip, line, message):
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("bptt", line, "def f(): pass\n")


# -- the sandbox ----------------------------------------------------------------------------------------


def test_sandbox_survives_timeouts_and_crashes_and_runs_the_rest_with_earlier_helpers():
    calls = [{"x": 1.0}, {"x": 2.0}]
    jobs = [Job("loops", "def f(x):\n    while True:\n        pass\n", "f", calls),
            Job("exits", "import os\ndef f(x):\n    os._exit(3)\n", "f", calls),
            Job("segfaults", "import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n", "f", calls),
            Job("missing", "def g(x):\n    return x\n", "f", calls),
            Job("fine", "def f(x):\n    print('x' * 100000)\n    return [x, twice(x)]\n", "f", calls,
                prelude=[("<cell 1>", "import no_such_module\n"), ("<cell 2>", "def twice(x):\n    return 2 * x\n")])]
    runs = Sandbox(timeout=2.0).run(jobs)
    assert runs["loops"].failure == "timeout"
    assert runs["exits"].failure == "crash" and "status 3" in runs["exits"].reason
    assert runs["segfaults"].failure == "crash" and "SIGSEGV" in runs["segfaults"].reason
    assert runs["missing"].failure == "error" and "does not define a function named f" in runs["missing"].reason
    assert [o["value"].tolist() for o in runs["fine"].outcomes] == [[1.0, 2.0], [2.0, 4.0]]
