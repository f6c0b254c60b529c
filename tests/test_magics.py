"""The %bptt magics in an in-process IPython shell: outputs against independent oracles (finite
differences and the naive NumPy reference in tests/naive.py), argument errors, computation failures."""
from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import bpttlab as bl
import naive
from bpttlab.cells.elman import ElmanCell
from bpttlab.magics import SUBCOMMANDS, BPTTError


@pytest.fixture
def ip():
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("bpttlab")
    rng = np.random.default_rng(3)
    shell.user_ns.update(xs=rng.normal(size=(5, 2)), ys=rng.normal(size=(5, 1)), np=np)
    yield shell
    shell.reset(new_session=False)


def bptt(ip, line, cell=None):
    if cell is None:
        return ip.run_line_magic("bptt", line)
    return ip.run_cell_magic("bptt", line, cell)


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d\.\d{4}e[+-]\d\d", text)]


# -- registration and help -----------------------------------------------------------------------------


def test_load_ext_registers_line_and_cell_magic(ip):
    assert ip.find_line_magic("bptt") is not None
    assert ip.find_cell_magic("bptt") is not None


def test_question_mark_help_documents_every_subcommand(ip):
    doc = ip.find_line_magic("bptt").__doc__
    for name in SUBCOMMANDS:
        assert f"%bptt {name}" in doc, name
    assert "--hidden" in doc and "--clip" in doc and "--epochs" in doc


@pytest.mark.parametrize("sub", ["new", "grad", "train", "derive"])
def test_dash_h_prints_the_subcommand_usage(ip, sub):
    with capture_output() as out:
        assert bptt(ip, f"{sub} -h") is None
    assert out.stdout.startswith(f"usage: %bptt {sub}")


def test_no_subcommand_prints_the_overview(ip):
    with capture_output() as out:
        bptt(ip, "")
    assert all(name in out.stdout for name in SUBCOMMANDS)


# -- subcommands ---------------------------------------------------------------------------------------


def test_cells_lists_every_registry_with_origins(ip):
    class Leaky(ElmanCell):
        name = "leaky_magic_test"

    bl.registry.cells.register("leaky_magic_test", Leaky())
    try:
        listing = bptt(ip, "cells")
    finally:
        bl.registry.cells.unregister("leaky_magic_test")
    assert set(listing.groups) == {"cells", "activations", "losses", "exercise packs"}
    assert {"elman", "jordan"} <= set(listing.names("cells"))
    assert {"tanh", "relu", "sigmoid", "identity"} <= set(listing.names("activations"))
    assert {"mse", "cross_entropy"} <= set(listing.names("losses"))
    rows = {row[0]: row for row in listing.groups["cells"]}
    assert rows["leaky_magic_test"][1] == "registered at run time"
    assert rows["elman"][1].startswith("bpttlab ")
    text = repr(listing)
    assert "leaky_magic_test" in text and "registered at run time" in text
    assert "<table>" in listing._repr_html_()


def test_new_stores_the_network_in_the_user_namespace(ip):
    net = bptt(ip, "new rnn jordan --in 2 --hidden 4 --out 3 --act relu --init orthogonal --seed 5")
    assert ip.user_ns["rnn"] is net
    assert (net.cell.name, net.activation.name, net.n_in, net.n_hidden, net.n_out) == ("jordan", "relu", 2, 4, 3)
    same = bl.make("jordan", 2, 4, 3, activation="relu", init="orthogonal", seed=5)
    other = bl.make("jordan", 2, 4, 3, activation="relu", init="orthogonal", seed=6)
    assert all(np.array_equal(net.params[k], same.params[k]) for k in same.params)
    assert not np.array_equal(net.params["U"], other.params["U"])
    W = net.params["W"]  # orthogonal init: W has orthonormal columns (4 x 3)
    np.testing.assert_allclose(W.T @ W, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("options, k2", [("", None), ("--k2 2", 2), ("--reduction mean", None)])
def test_grad_splits_each_loss_like_finite_differences(ip, options, k2):
    bptt(ip, "new net elman --in 2 --hidden 3 --out 1 --seed 1")
    net, xs, ys = (ip.user_ns[k] for k in ("net", "xs", "ys"))
    report = bptt(ip, f"grad net xs ys --wrt W {options}")
    reduction = "mean" if "mean" in options else "sum"
    table = naive.truncate(naive.fd_table("elman", "tanh", net.params, xs, ys, reduction=reduction), k2)
    C = table["W"]
    np.testing.assert_allclose(report.table, C, atol=1e-8)
    np.testing.assert_allclose(report.per_loss, C.sum(axis=1), atol=1e-8)
    np.testing.assert_allclose(report.grads["W"], C.sum(axis=(0, 1)), atol=1e-8)
    # the printed per-timestep table: E_t, dE_t/dW, explicit, implicit, copy t, as norms to 4 digits
    lines = repr(report).split("per time step")[1].splitlines()[3:8]
    E = naive.bptt("elman", "tanh", net.params, xs, ys, reduction=reduction).losses
    for t, line in enumerate(lines):
        expected = [E[t], np.linalg.norm(C[t].sum(axis=0)), np.linalg.norm(C[t, t]),
                    np.linalg.norm(C[t, :t].sum(axis=0)), np.linalg.norm(C[:, t].sum(axis=0))]
        np.testing.assert_allclose(numbers(line), expected, rtol=1e-3, atol=1e-9)
        assert line.split()[0] == str(t + 1)


def test_grad_of_a_scalar_parameter_is_shown_signed(ip):
    bptt(ip, "new net elman --in 2 --hidden 3 --out 1 --seed 1")
    report = bptt(ip, "grad net xs ys --wrt c")
    C = naive.fd_table("elman", "tanh", ip.user_ns["net"].params, ip.user_ns["xs"], ip.user_ns["ys"])["c"]
    line = repr(report).split("per time step")[1].splitlines()[5]  # t = 3
    np.testing.assert_allclose(numbers(line)[1:], [C[2].sum(), C[2, 2, 0], C[2, :2].sum(), C[:, 2].sum()],
                               rtol=1e-3, atol=1e-9)
    assert "(values)" in repr(report)


def test_grad_clip_norm_rescales_the_gradient_and_notes_the_split_is_before(ip):
    bptt(ip, "new net elman --in 2 --hidden 3 --out 1 --seed 1")
    report = bptt(ip, "grad net xs ys --clip norm:0.01")
    total = np.sqrt(sum(np.sum(g ** 2) for g in report.grads.values()))
    assert total == pytest.approx(0.01)
    assert report.raw_grads["W"] == pytest.approx(report.table.sum(axis=(0, 1)))
    assert any("before clipping" in note for note in report.notes)


def test_grad_step_clipping_leaves_out_the_split_with_a_note(ip):
    bptt(ip, "new net elman --in 2 --hidden 3 --out 1 --seed 1")
    report = bptt(ip, "grad net xs ys --clip step:0.01")
    assert report.table is None and report.per_loss is None
    assert "note: step clipping" in repr(report)


def test_grad_result_is_returned_and_stored_under_as(ip):
    bptt(ip, "new net elman --in 2 --seed 1")
    report = bptt(ip, "grad net xs[:3] ys[:3] --as g")
    assert ip.user_ns["g"] is report
    assert report.result.trace.outputs.shape == (3, 1)
    html = report._repr_html_()
    assert html.count("<table>") == 3


def test_train_updates_the_network_like_naive_tbptt_and_plots(ip):
    bptt(ip, "new net elman --in 2 --hidden 3 --seed 2")
    start = {k: v.copy() for k, v in ip.user_ns["net"].params.items()}
    with capture_output() as out:
        hist = bptt(ip, "train net xs ys --k1 2 --k2 3 --lr 0.05 --epochs 4 --clip norm:2")
    ref = naive.tbptt("elman", "tanh", start, ip.user_ns["xs"], ip.user_ns["ys"], k1=2, k2=3, lr=0.05,
                      clip=("norm", 2.0), epochs=4)
    for k, v in ref.params.items():
        np.testing.assert_allclose(ip.user_ns["net"].params[k], v, atol=1e-12)
    np.testing.assert_allclose(hist.epoch_loss, ref.epoch_loss, atol=1e-12)
    assert len(hist.loss) == 4 * 3
    assert any("Figure" in str(o.data.get("text/plain", "")) for o in out.outputs)
    assert "TBPTT updates" in out.stderr  # the progress bar


def test_train_no_plot(ip):
    bptt(ip, "new net elman --in 2 --seed 2")
    with capture_output() as out:
        bptt(ip, "train net xs ys --epochs 2 --no-plot")
    assert not out.outputs


def test_expression_arguments_are_evaluated_in_the_notebook(ip):
    bptt(ip, "new net elman --in 2 --seed 2")
    report = bptt(ip, "grad net xs[1:4] ys[1:4]")
    ref = bl.bptt(ip.user_ns["net"], ip.user_ns["xs"][1:4], ip.user_ns["ys"][1:4])
    assert report.loss == ref.loss


# -- argument errors: UsageError, one line, saying what was expected -------------------------------------

BAD_ARGUMENTS = [
    ("frobnicate", r"unknown subcommand 'frobnicate'; expected one of cells, new, derive"),
    ("new net elman --hidden x", r"%bptt new: argument --hidden: expected a positive integer, got 'x'"),
    ("new net elman --hidden 0", r"argument --hidden: expected a positive integer, got '0'"),
    ("new 2net elman", r"argument NAME: expected a Python variable name, got '2net'"),
    ("new net", r"the following arguments are required: CELL"),
    ("new net rnn", r"unknown cell 'rnn'; registered cells: .*elman.*jordan"),
    ("new net elman --act swish", r"unknown activation 'swish'; registered activations: identity"),
    ("new net elman --init zeros", r"argument --init: invalid choice: 'zeros'"),
    ("new net elman --seed -3", r"argument --seed: expected a non-negative integer"),
    ("new net elman --colour red", r"unrecognized arguments: --colour red"),
    ("grad missing xs ys", r"%bptt grad: NET 'missing' is not defined in the notebook"),
    ("grad xs xs ys", r"NET 'xs' must be a bpttlab network .*got ndarray"),
    ("grad net nope ys", r"XS 'nope' is not defined in the notebook"),
    ("grad net xs[:2] ys", r"targets must have shape \(2, 1\)"),
    ("grad net xs ys --loss hinge", r"unknown loss 'hinge'; registered losses: cross_entropy, mse"),
    ("grad net xs ys --clip norm", r"argument --clip: expected MODE:TAU with MODE norm\|value\|step"),
    ("grad net xs ys --clip scale:3", r"argument --clip: expected MODE:TAU"),
    ("grad net xs ys --k2 0", r"argument --k2: expected a positive integer, got '0'"),
    ("grad net xs ys --wrt Z", r"wrt must be one of the parameters W, U, b, V, c, got 'Z'"),
    ("grad net xs ys --reduction max", r"argument --reduction: invalid choice: 'max'"),
    ("grad net xs ys --as 1x", r"argument --as: expected a Python variable name"),
    ("grad net xs+ ys", r"XS 'xs\+' could not be evaluated: SyntaxError"),
    ("train net xs ys --lr -1", r"argument --lr: expected a positive number, got '-1'"),
    ("train net xs ys --k1 4 --k2 2", r"k2 must be >= k1"),
    ("train net xs ys --epochs 1.5", r"argument --epochs: expected a positive integer, got '1.5'"),
    ("derive elman --size 1,2", r"argument --size: expected D,H,O: three positive integers"),
    ("exercise e1", r"%bptt exercise grades a whole cell: start the cell with %%bptt exercise ID"),
    ("grad net 'xs ys", r"could not split the arguments"),
]


@pytest.mark.parametrize("line, message", BAD_ARGUMENTS)
def test_bad_arguments_raise_a_one_line_usage_error(ip, line, message):
    bptt(ip, "new net elman --in 2")
    with pytest.raises(UsageError, match=message) as err:
        bptt(ip, line)
    assert "\n" not in str(err.value)


def test_line_subcommand_used_as_cell_magic_is_a_usage_error(ip):
    with pytest.raises(UsageError, match=r"%%bptt grad is not a cell magic"):
        bptt(ip, "grad net xs ys", cell="pass")


def test_usage_error_is_shown_without_a_traceback(ip):
    with capture_output() as out:
        ip.run_cell("%bptt new net elman --hidden x")
    text = out.stdout + out.stderr
    assert "UsageError: %bptt new: argument --hidden: expected a positive integer, got 'x'" in text
    assert "Traceback" not in text


# -- computation failures: a real exception with a two-line traceback -------------------------------------


class SingularCell(ElmanCell):
    """A broken plugin: its forward pass inverts a singular matrix (the failure is inside NumPy)."""

    name = "singular_test"
    kernels = None  # no compiled kernels: the engine calls step()

    def step(self, params, s_prev, x, act):
        np.linalg.inv(np.zeros((2, 2)))


def test_computation_failure_raises_bpttError_with_a_short_traceback(ip):
    net = bl.make(SingularCell(), n_in=2, seed=0)
    ip.user_ns["bad"] = net
    with pytest.raises(BPTTError, match=r"%bptt grad failed: LinAlgError: Singular matrix") as err:
        bptt(ip, "grad bad xs ys")
    assert isinstance(err.value.__cause__, np.linalg.LinAlgError)
    lines = err.value._render_traceback_()
    assert len(lines) == 2
    assert re.search(r"raised at test_magics\.py:\d+ in step", lines[1])  # the plugin's own line
    with capture_output() as out:
        ip.run_cell("%bptt grad bad xs ys")
    text = out.stdout + out.stderr
    assert "BPTTError: %bptt grad failed: LinAlgError: Singular matrix" in text
    assert "Traceback" not in text and "numpy" not in text


def test_value_error_from_inside_a_library_is_a_failure_not_a_usage_error(ip):
    class Broken(ElmanCell):
        name = "broken_test"
        kernels = None

        def step(self, params, s_prev, x, act):
            np.reshape(np.zeros(3), (2, 2))

    ip.user_ns["bad"] = bl.make(Broken(), n_in=2, seed=0)
    with pytest.raises(BPTTError, match=r"ValueError: cannot reshape array"):
        bptt(ip, "grad bad xs ys")


# -- the subcommands that use the symbolic, widget and grading modules --------------------------------------


def test_derive_returns_the_derivation_of_bl_derive(ip):
    symbolic = importlib.import_module("bpttlab.symbolic")
    d = bptt(ip, "derive elman --T 3 --wrt W --t 2 --act sigmoid --as dW")
    ref = symbolic.derive("elman", T=3, wrt="W", t=2, activation="sigmoid")
    assert ip.user_ns["dW"] is d
    assert (d.T, d.t, d.wrt, d.activation.name) == (3, 2, "W", "sigmoid")
    assert d.total == ref.total and d.explicit == ref.explicit


def test_derive_size_k2_and_expanded(ip):
    symbolic = importlib.import_module("bpttlab.symbolic")
    d = bptt(ip, "derive elman --T 4 --wrt U --size 1,2,1 --k2 2")
    ref = symbolic.derive("elman", T=4, wrt="U", size=(1, 2, 1), k2=2)
    assert d.total == ref.total and sorted(d.terms) == [3, 4]
    expanded = bptt(ip, "derive elman --T 3 --wrt W --expanded")
    assert expanded == symbolic.derive("elman", T=3, wrt="W").expanded


@pytest.mark.parametrize("line, message", [
    ("derive elman --wrt Z", r"%bptt derive: wrt must be one of the elman parameters W, U, b, V, c, got 'Z'"),
    ("derive elman --T 2 --t 3", r"%bptt derive: t must be in 1..T=2, got 3"),
    ("derive lstm_nope", r"%bptt derive: unknown cell 'lstm_nope'"),
])
def test_derive_bad_arguments(ip, line, message):
    with pytest.raises(UsageError, match=message):
        bptt(ip, line)


def test_check_returns_the_report_of_bl_check(ip):
    check = importlib.import_module("bpttlab.agreement")
    bptt(ip, "new net elman --in 2 --hidden 2 --seed 3")
    report = bptt(ip, "check net xs[:3] ys[:3] --as rep")
    ref = check.check(ip.user_ns["net"], ip.user_ns["xs"][:3], ip.user_ns["ys"][:3])
    assert ip.user_ns["rep"] is report and report.passed and ref.passed
    assert repr(report) == repr(ref)


def test_check_rounded_hides_digits_below_the_tolerance(ip):
    bptt(ip, "new net elman --in 2 --hidden 2 --seed 3")
    exact = bptt(ip, "check net xs[:3] ys[:3]")
    rounded = bptt(ip, "check net xs[:3] ys[:3] --rounded")
    tiny = re.compile(r"\d\.\de-(1[1-9]|[2-9]\d)")   # an error printed with digits below 1e-10
    assert rounded.passed and tiny.search(str(exact)) and not tiny.search(str(rounded))
    assert str(rounded).count("< 1e-10") > str(exact).count("< 1e-10")
    # the same comparisons underneath: only the display differs
    assert [r.rel_error for r in rounded.rows] == [r.rel_error for r in exact.rows]


def test_step_opens_the_stepper_on_the_network(ip):
    widgets = importlib.import_module("bpttlab.widgets")
    bptt(ip, "new net elman --in 2 --seed 3")
    stepper = bptt(ip, "step net xs ys --wrt U --k2 2")
    assert isinstance(stepper, widgets.Stepper)
    m = stepper.model
    assert (m.T, m.wrt, m.k2) == (5, "U", 2)
    ref = bl.bptt(ip.user_ns["net"], ip.user_ns["xs"], ip.user_ns["ys"], k2=2)
    np.testing.assert_allclose(m.result.grads["U"], ref.grads["U"])


def test_flow_opens_the_gradient_flow_on_the_network(ip):
    widgets = importlib.import_module("bpttlab.widgets")
    bptt(ip, "new net elman --in 2 --hidden 4 --seed 3")
    flow = bptt(ip, "flow net xs ys --radius 0.5 --measure state --clip norm:1")
    assert isinstance(flow, widgets.GradientFlow)
    s = flow.model.settings
    assert (s.radius, s.measure, s.clip) == (0.5, "state", ("norm", 1.0))
    assert flow.model.map.norms.shape == (5, 5)


CORRECT_GRAD_V = """
def grad_V(W, U, b, V, c, xs, targets):
    h, g = np.zeros(len(b)), np.zeros_like(V)
    for x, y in zip(xs, targets):
        h = np.tanh(W @ h + U @ x + b)
        g += np.outer(V @ h + c - y, h)
    return g
"""


def test_exercise_cell_grades_the_function_it_defines(ip):
    feedback = bptt(ip, "exercise grad-V", cell=CORRECT_GRAD_V)
    assert feedback.passed and callable(ip.user_ns["grad_V"])
    wrong = bptt(ip, "exercise grad-V --as fb", cell=CORRECT_GRAD_V.replace("V @ h + c - y", "y - V @ h - c"))
    assert not wrong.passed and ip.user_ns["fb"] is wrong


def test_exercise_unknown_id_is_a_usage_error(ip):
    with pytest.raises(UsageError, match=r"^%%bptt exercise: unknown exercise 'nope'; registered exercises: "):
        bptt(ip, "exercise nope", cell="pass")


def test_a_trailing_comment_is_ignored_but_a_quoted_hash_is_kept(ip):
    bptt(ip, "new cnet elman --in 2 --hidden 3 --out 1 --seed 4  # a comment, like Python")
    assert ip.user_ns["cnet"].params["W"].shape == (3, 3)
    plain = bl.make("elman", n_in=2, n_hidden=3, n_out=1, seed=4)
    assert np.array_equal(ip.user_ns["cnet"].params["W"], plain.params["W"])
    with pytest.raises(UsageError, match="#1"):
        bptt(ip, "new '#1' elman --in 2 --hidden 3 --out 1")
