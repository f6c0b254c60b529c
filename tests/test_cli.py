"""The ``bpttlab`` console command, run as a subprocess through its installed entry point (and in-process
where a plugin registered at run time is needed)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bpttlab as bl
from bpttlab import cli
from bpttlab.cells.elman import ElmanCell

BPTTLAB = Path(sys.executable).with_name("bpttlab")
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BPTTLAB), *args], capture_output=True, text=True, timeout=600)


def table(stdout: str) -> dict[str, list[str]]:
    """parameter -> the cells of its row in the printed table."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return {line.split()[0]: line.split() for line in lines[start + 1:-1]}


def test_help_lists_every_command():
    out = run("--help")
    assert out.returncode == 0
    for command in ("check", "bench", "kernel", "warm", "grade", "release"):
        assert re.search(rf"^\s+{command}\s", out.stdout, re.M), command


@pytest.mark.parametrize("command", [["check"], ["kernel"], ["kernel", "install"], ["warm"]])
def test_each_command_has_help(command):
    out = run(*command, "--help")
    assert out.returncode == 0
    assert out.stdout.startswith(f"usage: bpttlab {' '.join(command)}")


def test_check_agrees_for_the_issue_example():
    out = run("check", "--cell", "elman", "--hidden", "3", "--T", "6", "--seed", "0", "--no-sympy")
    assert out.returncode == 0, out.stderr
    rows = table(out.stdout)
    assert list(rows) == ["W", "U", "b", "V", "c"]
    for name, row in rows.items():
        assert float(row[-2]) < 1e-6 and row[-1] == "yes", row
    assert "all parameters agree" in out.stdout


def test_check_reports_the_network_it_built():
    out = run("check", "--cell", "jordan", "--in", "2", "--hidden", "4", "--out", "3", "--T", "5",
              "--loss", "cross_entropy", "--act", "sigmoid", "--seed", "7", "--no-sympy")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("bpttlab check: jordan sigmoid, D=2 H=4 O=3, T=5, loss cross_entropy (sum)")
    shapes = {name: re.search(r"\(.*?\)", " ".join(row)).group() for name, row in table(out.stdout).items()}
    assert shapes == {"W": "(4, 3)", "U": "(4, 2)", "b": "(4,)", "V": "(3, 4)", "c": "(3,)"}


def test_check_exit_status_is_1_when_a_parameter_disagrees():
    out = run("check", "--T", "4", "--tol", "1e-300", "--no-sympy")
    assert out.returncode == 1
    assert "DISAGREEMENT" in out.stdout and " NO" in out.stdout


class OffByOneCell(ElmanCell):
    """A plugin with a wrong backward pass: it forgets the recurrent path (only the explicit terms)."""

    name = "off_by_one_cli_test"
    kernels = None  # the per-copy tier runs the vjp below

    def step_vjp(self, params, cache, ds, act):
        ds_prev, grads = super().step_vjp(params, cache, ds, act)
        return np.zeros_like(ds_prev), grads


def test_check_catches_a_wrong_gradient(capsys):
    bl.registry.cells.register(OffByOneCell.name, OffByOneCell())
    try:
        status = cli.main(["check", "--cell", OffByOneCell.name, "--T", "5", "--no-sympy"])
    finally:
        bl.registry.cells.unregister(OffByOneCell.name)
    out = capsys.readouterr().out
    rows = table(out)
    assert status == 1
    assert rows["W"][-1] == "NO" and rows["U"][-1] == "NO"
    assert rows["V"][-1] == "yes" and rows["c"][-1] == "yes"  # the output layer has no implicit part


@pytest.mark.parametrize("args, message", [
    (["--hidden", "0"], "argument --hidden: expected a positive integer, got '0'"),
    (["--T", "x"], "argument --T: expected a positive integer, got 'x'"),
    (["--seed", "-1"], "argument --seed: expected a non-negative integer, got '-1'"),
    (["--cell", "rnn"], "unknown cell 'rnn'; registered cells: "),
    (["--loss", "hinge"], "unknown loss 'hinge'; registered losses: cross_entropy, mse"),
])
def test_check_bad_arguments_exit_2_with_a_message(args, message):
    out = run("check", "--no-sympy", *args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_check_compares_with_sympy():
    out = run("check", "--cell", "elman", "--hidden", "2", "--T", "3", "--seed", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    header = out.stdout.splitlines()[1]
    assert "engine vs SymPy" in header
    for row in table(out.stdout).values():
        assert float(row[-2]) < 1e-6 and float(row[-3]) < 1e-6


def test_check_beyond_the_derivable_sizes_says_how_to_go_on():
    out = run("check", "--cell", "jordan", "--hidden", "3", "--T", "4")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "e.g. size=(1, 2, 1)" in out.stderr and "pass --no-sympy" in out.stderr


def test_kernel_install_prefix_writes_the_kernelspec(tmp_path):
    out = run("kernel", "install", "--prefix", str(tmp_path))
    assert out.returncode == 0, out.stderr
    spec_dir = tmp_path / "share" / "jupyter" / "kernels" / "bpttlab"
    assert str(spec_dir) in out.stdout
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"][1:] == ["-m", "bpttlab.kernel", "-f", "{connection_file}"]
    assert Path(spec["argv"][0]).parent == Path(sys.executable).parent  # this environment's interpreter
    assert spec["display_name"] == "BPTT Lab (Python 3)" and spec["language"] == "python"
    shipped = ROOT / "jupyter-config" / "kernels" / "bpttlab"
    for logo in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
        assert (spec_dir / logo).read_bytes() == (shipped / logo).read_bytes()


def test_kernel_install_destinations_are_exclusive():
    out = run("kernel", "install", "--user", "--sys-prefix")
    assert out.returncode == 2
    assert "not allowed with argument" in out.stderr


def test_bench_dispatches_to_the_benchmark():
    out = run("bench", "--help")
    assert out.returncode == 0
    assert out.stdout.startswith("usage:")


@pytest.mark.parametrize("command", ["grade", "release"])
def test_grading_commands_have_help(command):
    out = run(command, "--help")
    assert out.returncode == 0
    assert out.stdout.startswith(f"usage: bpttlab {command}")


def test_warm_fills_the_numba_cache_with_the_named_cells(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([str(BPTTLAB), "warm", "jordan", "elman"], capture_output=True, text=True, timeout=900,
                         env=env)
    assert out.returncode == 0, out.stderr
    rows = table(out.stdout)  # the cells' rows; the last line is the total
    assert set(rows) == {"elman", "jordan"} and out.stdout.splitlines()[-1].split()[0] == "total"
    assert all(float(rows[name][1]) > 0.0 for name in ("elman", "jordan"))
    cached = {p.name.split(".")[0] for p in tmp_path.rglob("*.nbi")}
    assert {"elman_kernels", "jordan_kernels"} <= cached and "lstm_kernels" not in cached


COMPILES_NOTHING = """
import numpy as np
from numba.core import event

compiled = []


class Record(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)

    def on_end(self, ev):
        pass


event.register("numba:compile", Record())
import bpttlab as bl
from bpttlab.cells import elman_kernels
from bpttlab.engine import compilation

compilation.set_mode("eager")
rng = np.random.default_rng(0)
for name in bl.registry.cells.names():
    net = bl.make(name, n_in=2, n_hidden=3, n_out=2, seed=0)
    xs, y, classes = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), np.array([0, 1, 1, 0, 1])
    bl.forward(net, xs)
    bl.bptt(net, xs, y)
    bl.bptt(net, xs, classes, loss="cross_entropy", reduction="mean")
    bl.bptt(net, xs, y, k2=2)
    bl.bptt(net, xs, y, clip=("step", 1.0))
    bl.contributions(net, xs, y, wrt=sorted(net.params)[0])
print(compiled, sum(elman_kernels._full_bptt.stats.cache_hits.values()) > 0)
"""


def test_after_warm_a_fresh_process_loads_every_kernel_of_every_cell_from_the_cache(tmp_path):
    """What ``bpttlab warm`` leaves behind is complete: the next process runs every kind of pass on every
    cell and compiles nothing (a kernel called with other argument types than warm used would compile).
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([str(BPTTLAB), "warm"], capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr
    # run outside the checkout: ``python -c`` there would import its bpttlab/ folder, not the installed
    # package that ``bpttlab warm`` compiled (Numba caches kernels per source file)
    fresh = subprocess.run([sys.executable, "-c", COMPILES_NOTHING], capture_output=True, text=True,
                           timeout=300, env=env, check=True, cwd=tmp_path)
    assert fresh.stdout == "[] True\n"


def test_warm_names_an_unknown_cell():
    out = run("warm", "elmann")
    assert out.returncode != 0 and "elmann" in out.stderr and "elman" in out.stderr
