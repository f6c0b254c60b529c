"""The library is not the answer: a graded function that gets its answer from bpttlab scores 0.

Each cheat below is a cell a student could write for the exercise grad-W (dE/dW of a tanh Elman network):
it computes the right answer with the engine, so without the rule it would get full marks (checked). It is
graded as ``%%bptt exercise grad-W`` in an IPython shell, and as the batch grader does it: the sandbox
child runs the function (the child never imports bpttlab; it meets a stand-in), the grader's static check
reads the source. Each must be diagnosed ``library_use`` and score 0. The honest student who compares with
``bl.bptt`` in another cell, or at the top of the exercise cell, keeps full marks.
"""
from __future__ import annotations

import textwrap

import nbformat
import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell

import bpttlab as bl
import grading_students as S
from test_grading import GRAD_V_CELL
from bpttlab.grading import get_exercise
from bpttlab.grading.diagnosis import assess, planned_calls
from bpttlab.grading.feedback import Feedback
from bpttlab.grading.instances import hidden_instances, public_instances
from bpttlab.grading.library_use import RULE, in_function, in_sources
from bpttlab.grading.notebooks import definitions, function_source
from bpttlab.grading.sandbox import Job, Sandbox

SEED = 11
IMPORTS = "import sys\nimport numpy as np\nimport bpttlab as bl\n"
BUILD = """\
def engine_net(W, U, b, V, c):
    net = bl.make("elman", n_in=U.shape[1], n_hidden=len(b), n_out=len(c), activation="tanh")
    net.params.update(W=W, U=U, b=b, V=V, c=c)
    return net
"""

#: name -> (cells before the exercise cell, the exercise cell, whether the static check alone must see it)
CHEATS = {
    "calls bl.bptt": ([IMPORTS, BUILD], """\
def grad_W(W, U, b, V, c, xs, targets):
    return bl.bptt(engine_net(W, U, b, V, c), xs, targets).grads["W"]
""", True),
    "sums bl.contributions under another name": ([IMPORTS, BUILD, "from bpttlab import contributions as table\n"], """\
def grad_W(W, U, b, V, c, xs, targets):
    return table(engine_net(W, U, b, V, c), xs, targets, "W").sum(axis=(0, 1))
""", True),
    "hides it in a helper of an earlier cell": ([IMPORTS, BUILD, """\
def my_backward(W, U, b, V, c, xs, targets):
    return bl.bptt(engine_net(W, U, b, V, c), xs, targets).grads
"""], """\
def grad_W(W, U, b, V, c, xs, targets):
    g = my_backward(W, U, b, V, c, xs, targets)
    return np.array(g["W"])
""", True),
    "imports the engine inside the function": ([IMPORTS], """\
def grad_W(W, U, b, V, c, xs, targets):
    from bpttlab import bptt, make
    net = make("elman", n_in=U.shape[1], n_hidden=len(b), n_out=len(c), activation="tanh")
    net.params.update(W=W, U=U, b=b, V=V, c=c)
    return bptt(net, xs, targets).grads["W"]
""", True),
    "imports an internal module with importlib": ([IMPORTS, BUILD], """\
def grad_W(W, U, b, V, c, xs, targets):
    import importlib
    engine = importlib.import_module("bpttlab.engine")
    return engine.bptt(engine_net(W, U, b, V, c), xs, targets).grads["W"]
""", True),
    "reaches the package through sys.modules with a spelled-out name": ([IMPORTS], """\
def grad_W(W, U, b, V, c, xs, targets):
    lib = sys.modules["bpt" + "tlab"]
    net = lib.make("elman", n_in=U.shape[1], n_hidden=len(b), n_out=len(c), activation="tanh")
    net.params.update(W=W, U=U, b=b, V=V, c=c)
    return lib.bptt(net, xs, targets).grads["W"]
""", False),
    "switches the profile hook off first": ([IMPORTS], """\
def grad_W(W, U, b, V, c, xs, targets):
    sys.setprofile(None)
    lib = sys.modules["bpt" + "tlab"]
    net = lib.make("elman", n_in=U.shape[1], n_hidden=len(b), n_out=len(c), activation="tanh")
    net.params.update(W=W, U=U, b=b, V=V, c=c)
    return lib.bptt(net, xs, targets).grads["W"]
""", False),
    "runs a %bptt magic through get_ipython": ([IMPORTS, BUILD], """\
def grad_W(W, U, b, V, c, xs, targets):
    get_ipython().run_line_magic("bptt", "cells")
    return bl.bptt(engine_net(W, U, b, V, c), xs, targets).grads["W"]
""", True),
}

HONEST_CHECK = """\
net = engine_net(np.eye(2) * 0.5, np.ones((2, 1)), np.zeros(2), np.ones((1, 2)), np.zeros(1))
xs, ys = np.ones((3, 1)), np.zeros((3, 1))
print(np.allclose(grad_W(**{k: net.params[k] for k in "WUbVc"}, xs=xs, targets=ys),
                  bl.bptt(net, xs, ys).grads["W"]))
"""


@pytest.fixture
def ip():
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("bpttlab")
    yield shell
    shell.reset(new_session=False)


def _in_notebook(ip, before, cell) -> Feedback:
    for source in before:
        assert ip.run_cell(source).success
    return ip.run_cell_magic("bptt", "exercise grad-W", cell)


def _in_batch(before, cell, exercise="grad-W") -> Feedback:
    """Grade as bpttlab.grading.batch does: definitions only, run in the sandbox child, judged here."""
    ex = get_exercise(exercise)
    instances = public_instances(ex) + hidden_instances(ex, SEED)
    calls = planned_calls(ex, instances)
    prelude = [(f"<cell {i + 1}>", definitions(src)) for i, src in enumerate(before)]
    source = function_source("%%bptt exercise grad-W\n" + cell, ex.function)
    run = Sandbox(timeout=60).run([Job(ex.id, source, ex.function, [inputs for _, _, inputs in calls], prelude)])
    result = run[ex.id]
    assert result.failure is None, result.reason
    table = {(i, n): outcome for (i, n, _), outcome in zip(calls, result.outcomes)}
    library = in_sources([src for _, src in prelude] + [source], ex.function)
    return Feedback(ex, assess(ex, instances, lambda i, n: table[i, n], library=library))


def _assert_zero_for_library(fb: Feedback) -> None:
    assert fb.diagnosis == "library_use", fb.text
    assert fb.score == 0 and not any(v.passed for v in fb.verdicts)
    assert "Diagnosis: uses the library's gradient" in fb.text
    assert "Write the computation with NumPy" in fb.text


def _cheat_namespace(before, cell) -> dict:
    namespace: dict = {}
    for source in [*before, cell]:
        exec(source.replace("get_ipython().run_line_magic", "print"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("name", CHEATS)
def test_each_cheat_gives_the_right_answer_with_the_engine(name):
    """The control: without the rule every cheat would pass, so a 0 below comes from the rule."""
    before, cell, _ = CHEATS[name]
    fn = _cheat_namespace(before, cell)["grad_W"]
    inst = public_instances(get_exercise("grad-W"))[0]
    np.testing.assert_allclose(fn(**inst.inputs), S.grad_W(**inst.inputs), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", CHEATS)
def test_a_cheat_scores_zero_in_the_notebook(ip, name):
    before, cell, _ = CHEATS[name]
    _assert_zero_for_library(_in_notebook(ip, before, cell))


@pytest.mark.parametrize("name", CHEATS)
def test_a_cheat_scores_zero_in_the_batch_grader(name):
    before, cell, static = CHEATS[name]
    fb = _in_batch(before, cell)
    _assert_zero_for_library(fb)
    source = function_source("%%bptt exercise grad-W\n" + cell, "grad_W")
    found = in_sources([definitions(src) for src in before] + [source], "grad_W")
    assert bool(found) == static, found  # the others are caught at run time, by the stand-in package


def test_the_static_check_names_what_was_used_and_where():
    before, cell, _ = CHEATS["hides it in a helper of an earlier cell"]
    found = in_sources([definitions(src) for src in before] + [cell], "grad_W")
    assert "bl.bptt (line 2)" in found and "bl.make (line 2)" in found


def test_the_run_time_watch_alone_catches_a_route_the_static_check_cannot_see(ip):
    assert ip.run_cell(IMPORTS + "TOOLS = {'backward': bl.bptt, 'make': bl.make}\n").success
    cell = textwrap.dedent("""\
        def grad_W(W, U, b, V, c, xs, targets):
            net = TOOLS["make"]("elman", n_in=U.shape[1], n_hidden=len(b), n_out=len(c), activation="tanh")
            net.params.update(W=W, U=U, b=b, V=V, c=c)
            return TOOLS["backward"](net, xs, targets).grads["W"]
        """)
    ip.run_cell(cell)
    assert in_function(ip.user_ns["grad_W"]) == []  # a dict of engine functions hides them from it
    fb = ip.run_cell_magic("bptt", "exercise grad-W", cell)
    _assert_zero_for_library(fb)
    assert "bpttlab." in fb.text  # the engine function the watch saw


RIGHT_CELL = """\
def grad_W(W, U, b, V, c, xs, targets):
    hs = [np.zeros(len(b))]
    for x in xs:
        hs.append(np.tanh(W @ hs[-1] + U @ x + b))
    g, carry = np.zeros_like(W), np.zeros(len(b))
    for t in range(len(xs), 0, -1):
        dh = V.T @ (V @ hs[t] + c - targets[t - 1]) + carry
        da = (1 - hs[t] ** 2) * dh
        g += np.outer(da, hs[t - 1])
        carry = W.T @ da
    return g
"""


def test_checking_against_bl_bptt_in_another_cell_keeps_full_marks(ip):
    check_helper = "def compare_with_engine(fn, net, xs, ys):\n    return bl.bptt(net, xs, ys).grads['W']\n"
    fb = _in_notebook(ip, [IMPORTS, BUILD, check_helper], RIGHT_CELL + HONEST_CHECK)
    assert fb.passed and fb.score == fb.points, fb.text
    out = ip.run_cell(HONEST_CHECK)
    assert out.success
    fb = _in_batch([IMPORTS, BUILD, check_helper, HONEST_CHECK], RIGHT_CELL + HONEST_CHECK)
    assert fb.passed and fb.score == fb.points, fb.text


def test_the_exercise_prompt_states_the_rule():
    for ex in bl.grading.exercises():
        assert RULE in ex.statement and RULE in ex._repr_html_().replace("&#x27;", "'")
    assert "scores 0" in RULE and "another cell" in RULE


@pytest.mark.kernel
def test_the_batch_grader_gives_a_cheating_cell_zero_and_keeps_an_honest_one(tmp_path):
    """A whole notebook through bpttlab.grading.batch (kernel, sandbox child, judgement): the cell that
    calls bl.bptt scores 0, the honest one that is checked against bl.bptt in the next cell full marks."""
    from nbformat.v4 import new_code_cell, new_notebook

    from bpttlab.grading import batch

    check_V = ("net = engine_net(np.eye(2) * 0.5, np.ones((2, 1)), np.zeros(2), np.ones((1, 2)), np.zeros(1))\n"
               "xs, ys = np.ones((3, 1)), np.zeros((3, 1))\n"
               "assert np.allclose(grad_V(**{k: net.params[k] for k in 'WUbVc'}, xs=xs, targets=ys),\n"
               "                   bl.bptt(net, xs, ys).grads['V'])\n")
    cells = ["%load_ext bpttlab\n" + IMPORTS, BUILD, "%%bptt exercise grad-W\n" + CHEATS["calls bl.bptt"][1],
             "%%bptt exercise grad-V\n" + GRAD_V_CELL.format(err="V @ h + c - y"), check_V]
    path = tmp_path / "student.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    settings = batch.Settings(exercises=("grad-W", "grad-V"), seed=SEED, timeout=120.0, kernel="python3")
    record = batch.grade_submission(str(path), settings, "student")
    results = {r["exercise"]: r for r in record["exercises"]}
    assert not record["notes"], record["notes"]  # every cell ran, the check cell included
    assert results["grad-W"]["diagnosis"] == "library_use" and results["grad-W"]["score"] == 0
    assert "uses the library's gradient" in results["grad-W"]["detail"]
    assert results["grad-V"]["diagnosis"] == "correct" and results["grad-V"]["score"] == get_exercise("grad-V").points
