"""``bpttlab bench`` (bpttlab.benchmark): its NumPy reference against the naive one, and a tiny run of the
command. No timing is asserted, only that the numbers exist and the gradients agree."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bpttlab as bl
import naive
from bpttlab import benchmark

BPTTLAB = Path(sys.executable).with_name("bpttlab")


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BPTTLAB), "bench", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("config", [(1, 3, 1, 7, 1), (3, 5, 2, 6, 4)])
def test_numpy_reference_matches_the_naive_reference(config):
    D, H, O, _, _ = config
    net = bl.make("elman", n_in=D, n_hidden=H, n_out=O, activation="tanh", seed=3)
    xs, ys = benchmark.data(config, seed=1)
    loss, grads = benchmark.numpy_bptt(net.params, xs, ys)
    ref = naive.bptt("elman", "tanh", net.params, xs, ys)

    assert loss == pytest.approx(ref.loss, rel=1e-12)
    assert benchmark.max_rel_diff(grads, ref.grads) < 1e-12
    assert {k: g.shape for k, g in grads.items()} == {k: v.shape for k, v in net.params.items()}


def test_max_rel_diff_sees_one_wrong_entry():
    ref = {"W": np.ones((2, 2)), "c": np.array([2.0])}
    grads = {"W": np.array([[1.0, 1.0], [1.0, 1.5]]), "c": np.array([2.0])}
    assert benchmark.max_rel_diff(grads, ref) == pytest.approx(0.5)
    assert benchmark.max_rel_diff(ref, ref) == 0.0


def test_bench_json_for_tiny_sizes():
    out = bench("--quick", "--config", "1,3,1,4,1", "--config", "2,4,3,5,3", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["cell"] == "elman"
    assert [tuple(r["config"]) for r in res["rows"]] == [(1, 3, 1, 4, 1), (2, 4, 3, 5, 3)]
    for row in res["rows"]:
        assert min(row["bpttlab_s"], row["bpttlab_cpu_s"], row["numpy_s"], row["numpy_cpu_s"]) > 0
        assert row["calls"] >= 1
        assert row["max_rel_diff"] < benchmark.AGREEMENT
    assert res["first_call"]["first_call_s"] > 0 and res["first_call"]["import_s"] > 0
    assert res["environment"]["threads"] == benchmark.ONE_THREAD


def test_bench_table_for_a_cell_without_reference():
    args = benchmark.build_parser().parse_args(["--quick", "--cell", "jordan", "--config", "1,2,1,3,1",
                                                "--repeat", "1"])
    lines = benchmark.report(benchmark.run(args)).splitlines()
    assert lines[0].startswith("bpttlab bench: jordan tanh")
    row = lines[3].split()
    assert row[:5] == ["(1,", "2,", "1,", "3,", "1)"] and row[-4:] == ["n/a"] * 4
    assert "first bl.bptt" in lines[4]


@pytest.mark.parametrize("config", ["1,2,3", "1,2,0,4,5", "1,x,3,4,5"])
def test_bench_rejects_a_bad_config(config, capsys):
    with pytest.raises(SystemExit) as exc:
        benchmark.main(["--config", config])
    assert exc.value.code == 2
    assert f"expected D,H,O,T,B: five positive integers, got '{config}'" in capsys.readouterr().err


def test_bench_rejects_an_unknown_cell(capsys):
    assert benchmark.main(["--cell", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown cell 'nope'" in err and "elman" in err
