"""The BPTT Lab kernel: the shipped kernelspec, real kernels started from the installed kernelspec with
jupyter_client (marked ``kernel``), the cache warm-up, and `pip install .` into a fresh virtual environment
(marked ``slow``)."""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import bpttlab as bl
import naive
from bpttlab.engine import compilation
from bpttlab.kernel import warmup
from bpttlab.kernel.install import LOGOS, install, kernel_spec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "jupyter-config" / "kernels" / "bpttlab"
DATA = "import numpy as np\nrng = np.random.default_rng(0)\nxs = rng.normal(size=(6, 1))\nys = np.sin(np.arange(6.0))[:, None]"


def local_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 1)), np.sin(np.arange(6.0))[:, None]


# -- the kernelspec files ---------------------------------------------------------------------------------


def test_shipped_kernel_json_is_the_installers_spec_run_by_jupyters_python():
    assert json.loads((SHIPPED / "kernel.json").read_text()) == kernel_spec("python")


@pytest.mark.parametrize("logo", LOGOS)
def test_shipped_logos_are_the_package_resources(logo):
    packaged = (resources.files("bpttlab.kernel") / "resources" / logo).read_bytes()
    assert (SHIPPED / logo).read_bytes() == packaged


@pytest.mark.parametrize("size", [32, 64])
def test_png_logos_have_their_size(size):
    image = matplotlib.image.imread(SHIPPED / f"logo-{size}x{size}.png")
    assert image.shape == (size, size, 4)
    assert image[..., 3].max() == 1.0  # not blank


def test_pyproject_ships_every_kernelspec_file_as_data_files():
    text = (ROOT / "pyproject.toml").read_text()
    for name in ("kernel.json", *LOGOS):
        assert f'"jupyter-config/kernels/bpttlab/{name}"' in text


def test_install_refuses_two_destinations(tmp_path):
    with pytest.raises(ValueError, match="at most one of user=True, sys_prefix=True or prefix=PATH"):
        install(user=True, prefix=str(tmp_path))


# -- the cache warm-up ------------------------------------------------------------------------------------


def test_warm_up_runs_every_built_in_cell():
    seconds = warmup.warm_up()
    builtin = {name for name, cell in bl.registry.cells.items() if type(cell).__module__.startswith("bpttlab.")}
    assert set(seconds) == builtin and {"elman", "jordan"} <= builtin
    assert all(s >= 0 for s in seconds.values())


def test_a_failing_warm_up_is_logged_not_raised(monkeypatch, caplog):
    def broken():
        raise RuntimeError("no cache directory")

    monkeypatch.setattr(warmup, "warm_up", broken)
    log = logging.getLogger("bpttlab-test-kernel")
    with caplog.at_level(logging.INFO, logger=log.name):
        warmup.start_warm_up(log, pause=0.0, child=False).join()
    assert "warming the Numba cache failed" in caplog.text and "no cache directory" in caplog.text


def test_a_warm_up_that_succeeds_logs_the_time_of_each_phase(monkeypatch, caplog):
    monkeypatch.setattr(warmup, "warm_up", lambda: {"elman": 0.25, "lstm": 0.5})
    log = logging.getLogger("bpttlab-test-kernel-ok")
    with caplog.at_level(logging.INFO, logger=log.name):
        warmup.start_warm_up(log, pause=0.0, child=False).join()
    assert re.search(r"Numba cache warm \(first gradient \d+\.\d\ds; elman 0\.25s, lstm 0\.50s\)", caplog.text)


LAZY = """
import sys
import bpttlab as bl
net = bl.make("gru", n_in=1, n_hidden=2, n_out=1, seed=0)
print(sorted(m for m in ("bpttlab.agreement", "bpttlab.symbolic", "bpttlab.grading", "bpttlab.widgets", "ipywidgets",
                         "numba", "sympy") if m in sys.modules))
import bpttlab.agreement
from bpttlab.symbolic import derive
from bpttlab.grading import grade
print(bl.check is sys.modules["bpttlab.agreement"].check, bl.derive is derive, bl.grade is grade, bl.widgets.__name__)
"""


def test_import_bpttlab_leaves_numba_sympy_and_the_symbolic_grading_and_widget_modules_to_first_use():
    """They are not needed for a first gradient, and loading them made every kernel start slower (Numba
    and SymPy took about half a second each)."""
    out = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\nTrue True True bpttlab.widgets\n"


def test_background_compilations_wait_for_the_child_that_fills_the_cache(monkeypatch):
    """While ``bpttlab warm`` runs in the child, a compilation the kernel starts is held (its cells run on
    the per-copy tier), then it runs and only loads what the child compiled."""
    child_done = threading.Event()

    class Child:
        returncode = 0

        def communicate(self, timeout=None):
            child_done.wait(30)
            return b"", b""

    monkeypatch.setattr(warmup, "fill_cache", Child)
    monkeypatch.setattr(warmup, "warm_first_gradient", lambda: 0.0)
    monkeypatch.setattr(warmup, "warm_up", lambda: {})
    previous = compilation.set_mode("background")
    ran = []
    try:
        phases = warmup.start_warm_up(None, pause=0.0)
        held = compilation.start("test-held-compilation", lambda: ran.append(True))
        held.join(0.5)
        assert held.is_alive() and not ran and not compilation.is_ready("test-held-compilation")
        child_done.set()
        held.join(30)
        phases.join(30)
        assert ran == [True] and compilation.is_ready("test-held-compilation")
    finally:
        child_done.set()
        compilation.release()
        compilation.set_mode(previous)


def test_a_child_that_fails_is_logged_and_releases_the_held_compilations(monkeypatch, caplog):
    class Child:
        returncode = 1

        def communicate(self, timeout=None):
            return b"", b"no space left on device"

    monkeypatch.setattr(warmup, "fill_cache", Child)
    monkeypatch.setattr(warmup, "warm_first_gradient", lambda: 0.0)
    monkeypatch.setattr(warmup, "warm_up", lambda: {})
    previous = compilation.set_mode("background")
    log = logging.getLogger("bpttlab-test-kernel-child")
    try:
        with caplog.at_level(logging.INFO, logger=log.name):
            warmup.start_warm_up(log, pause=0.0).join(30)
        released = compilation.start("test-released-compilation", lambda: None)
        released.join(30)
    finally:
        compilation.release()
        compilation.set_mode(previous)
    assert "bpttlab warm failed in a child process: no space left on device" in caplog.text
    assert compilation.is_ready("test-released-compilation")


FIRST_PHASE = """
import bpttlab.cells.elman_kernels as elman
from bpttlab.kernel.warmup import warm_first_gradient
before = len(elman._full_bptt.signatures)
warm_first_gradient()
print(before, len(elman._full_bptt.signatures) > 0)
"""


def test_the_first_phase_loads_the_elman_kernels_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-c", FIRST_PHASE], capture_output=True, text=True, check=True)
    assert out.stdout == "0 True\n"


# -- real kernels -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bpttlab_kernelspec():
    """The installed kernelspec; installed into this environment if missing (a clean checkout)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "bpttlab" not in KernelSpecManager().find_kernel_specs():
        install(sys_prefix=True)
    return KernelSpecManager().get_kernel_spec("bpttlab")


@dataclass
class Outcome:
    status: str
    stdout: str = ""
    stderr: str = ""
    results: list[dict] = field(default_factory=list)   # execute_result and display_data bundles
    error: dict | None = None

    @property
    def text(self) -> str:
        return "\n".join(r.get("text/plain", "") for r in self.results)


class Kernel:
    def __init__(self, client):
        self.client = client

    def run(self, code: str, timeout: float = 300) -> Outcome:
        outcome = Outcome("")

        def hook(msg):
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream":
                setattr(outcome, content["name"], getattr(outcome, content["name"]) + content["text"])
            elif kind in ("execute_result", "display_data"):
                outcome.results.append(content["data"])
            elif kind == "error":
                outcome.error = content

        reply = self.client.execute_interactive(code, output_hook=hook, timeout=timeout)
        outcome.status = reply["content"]["status"]
        if outcome.error is None and outcome.status == "error":
            outcome.error = reply["content"]
        return outcome


@contextmanager
def started(name: str):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=name, startup_timeout=120)
    try:
        yield Kernel(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def lab(bpttlab_kernelspec):
    with started("bpttlab") as k:
        yield k


@pytest.mark.kernel
def test_bptt_is_there_without_load_ext(bpttlab_kernelspec):
    with started("bpttlab") as k:
        out = k.run("%bptt new net elman --hidden 2 --seed 1")  # the very first cell
        assert out.status == "ok", out.error
        assert out.text == repr(bl.make("elman", 1, 2, 1, seed=1))
        assert k.run("print('bpttlab' in get_ipython().extension_manager.loaded)").stdout == "True\n"


@pytest.mark.kernel
def test_question_mark_pages_the_help_of_every_subcommand(lab):
    from bpttlab.magics import SUBCOMMANDS

    reply = lab.client.execute_interactive("%bptt?", output_hook=lambda msg: None, timeout=120)
    pages = [p["data"]["text/plain"] for p in reply["content"]["payload"] if p.get("source") == "page"]
    assert len(pages) == 1
    text = re.sub(r"\x1b\[[0-9;]*m", "", pages[0])  # the pager's colours
    for name in SUBCOMMANDS:  # each subcommand's usage line
        assert re.search(rf"^ +%bptt {name}\b", text, re.M), name
    assert "--hidden" in text and "--clip" in text and "--epochs" in text


@pytest.mark.kernel
def test_kernel_runs_this_environment(lab):
    assert lab.run("import sys; print(sys.prefix)").stdout == sys.prefix + "\n"


@pytest.mark.kernel
def test_cells_in_the_kernel(lab):
    out = lab.run("%bptt cells")
    assert out.status == "ok"
    assert re.search(r"^elman\s+bpttlab \S+\s+Elman", out.text, re.M)
    assert re.search(r"^tanh\s+bpttlab \S+\s+f\(a\) = tanh\(a\)", out.text, re.M)


@pytest.mark.kernel
def test_grad_in_the_kernel_prints_the_loss_and_the_per_step_table(lab):
    assert lab.run(DATA).status == "ok"
    assert lab.run("%bptt new net elman --hidden 3 --seed 4").status == "ok"
    out = lab.run("%bptt grad net xs ys")
    assert out.status == "ok", out.error
    xs, ys = local_data()
    net = bl.make("elman", 1, 3, 1, seed=4)
    ref = naive.bptt("elman", "tanh", net.params, xs, ys)
    assert f"E = {ref.loss:.6e}" in out.text
    assert "per time step, parameter W" in out.text and "<table>" in out.results[0]["text/html"]
    again = lab.run("print(type(_).__name__, _.grads['W'].shape)")
    assert again.stdout == "GradientReport (3, 3)\n"


@pytest.mark.kernel
def test_train_in_the_kernel_shows_progress_curve_and_history(lab):
    assert lab.run(DATA + "\n%bptt new tnet elman --hidden 3 --seed 4").status == "ok"
    out = lab.run("%bptt train tnet xs ys --k1 3 --k2 6 --lr 0.05 --epochs 20")
    assert out.status == "ok", out.error
    xs, ys = local_data()
    ref = naive.tbptt("elman", "tanh", bl.make("elman", 1, 3, 1, seed=4).params, xs, ys, k1=3, k2=6, lr=0.05,
                      epochs=20)
    assert out.results[-1]["text/plain"] == (f"History(TBPTT(k1=3, k2=6), 40 updates, 20 epochs, "
                                             f"final epoch loss {ref.epoch_loss[-1]:.6g})")
    assert any("image/png" in r for r in out.results)                       # the loss curve
    assert any("TBPTT updates" in r.get("text/plain", "") for r in out.results)  # the progress bar


KERNEL_BAD_ARGUMENTS = [
    ("%bptt nonsense", "%bptt: unknown subcommand 'nonsense'; expected one of cells, new, derive, grad, check, "
                       "train, step, flow, exercise"),
    ("%bptt new net elman --hidden many", "%bptt new: argument --hidden: expected a positive integer, got 'many'"),
    ("%bptt new net elman --act swish",
     "%bptt new: unknown activation 'swish'; registered activations: identity, relu, sigmoid, tanh"),
    ("%bptt grad nothere xs ys", "%bptt grad: NET 'nothere' is not defined in the notebook"),
    ("%bptt grad net xs", "%bptt grad: the following arguments are required: YS"),
    ("%bptt grad net xs ys --clip norm:-1",
     "%bptt grad: argument --clip: expected MODE:TAU with MODE norm|value|step and TAU > 0, got 'norm:-1'"),
    ("%bptt train net xs ys --k1 3 --k2 2",
     "%bptt train: k2 must be >= k1 (TBPTT back-propagates at least the block it updates on), got k1=3, k2=2"),
]


@pytest.mark.kernel
@pytest.mark.parametrize("line, message", KERNEL_BAD_ARGUMENTS)
def test_bad_arguments_give_the_usage_error_and_no_traceback(lab, line, message):
    assert lab.run(DATA + "\n%bptt new net elman").status == "ok"
    out = lab.run(line)
    assert out.status == "error"
    assert out.error["ename"] == "UsageError"
    assert out.stderr == f"UsageError: {message}\n"
    assert out.error.get("traceback", []) == [] and out.stdout == "" and not out.results


BROKEN_CELL = """
import numpy as np
from bpttlab.cells.elman import ElmanCell

class Singular(ElmanCell):
    kernels = None
    def step(self, params, s_prev, x, act):
        return np.linalg.inv(np.zeros((2, 2)))

bad = bl.make(Singular(), seed=0)
"""


@pytest.mark.kernel
def test_a_failing_computation_is_a_real_error_with_a_short_traceback(lab):
    assert lab.run("import bpttlab as bl\n" + BROKEN_CELL + DATA).status == "ok"
    out = lab.run("%bptt grad bad xs ys")
    assert out.status == "error"
    assert out.error["ename"] == "BPTTError"
    assert out.error["evalue"] == "%bptt grad failed: LinAlgError: Singular matrix"
    tb = out.error["traceback"]
    assert len(tb) == 2 and re.match(r"  raised at \S+:\d+ in step", tb[1])
    assert "numpy" not in "\n".join(tb)


@pytest.mark.kernel
def test_load_ext_works_on_the_stock_python3_kernel():
    with started("python3") as k:
        before = k.run("%bptt cells")
        assert before.status == "error" and "Line magic function `%bptt` not found" in before.stderr
        loaded = k.run("%load_ext bpttlab")
        assert loaded.status == "ok" and loaded.stdout == loaded.stderr == ""
        out = k.run("%bptt new net elman --hidden 2")
        assert out.status == "ok" and out.text == repr(bl.make("elman", 1, 2, 1, seed=0))


@pytest.mark.kernel
def test_derive_in_the_kernel(lab):
    out = lab.run("%bptt derive elman --T 3 --wrt W --t 3")
    assert out.status == "ok", out.error
    assert "text/latex" in out.results[0] or "text/html" in out.results[0]


# -- the kernelspec of the environment running the tests -------------------------------------------------


def _installed_by_pip():
    """The kernelspec files pip recorded for bpttlab, name -> path (a non-editable install), or None."""
    import sysconfig
    from importlib.metadata import distributions

    # the installed distribution, not a bpttlab.egg-info that a source checkout on sys.path may hold
    site = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    dist = next(distributions(name="bpttlab", path=site))
    if json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"):
        return None
    return {Path(f).name: Path(dist.locate_file(f)).resolve() for f in dist.files or []
            if "share/jupyter/kernels/bpttlab/" in f.as_posix()}


def test_this_environment_got_the_kernelspec_from_the_install_command():
    """`pip install ".[test]"` (the README's command, run by .ci/run) put the shipped files, unchanged, in
    sys.prefix/share/jupyter/kernels/bpttlab, and `jupyter kernelspec list` shows them there."""
    recorded = _installed_by_pip()
    if recorded is None:
        pytest.skip("bpttlab is installed in editable mode, which installs no data files (the root "
                    "conftest.py installs the kernelspec instead); the fresh-venv test checks the data files")
    spec_dir = (Path(sys.prefix) / "share" / "jupyter" / "kernels" / "bpttlab").resolve()
    assert recorded == {name: spec_dir / name for name in ("kernel.json", *LOGOS)}
    for name, path in recorded.items():
        assert path.read_bytes() == (SHIPPED / name).read_bytes(), name
    # `jupyter kernelspec list` is this app (the `jupyter-kernelspec` script), run by this environment
    listed = subprocess.run([sys.executable, "-m", "jupyter_client.kernelspecapp", "list", "--json"],
                            capture_output=True, text=True, check=True)
    spec = json.loads(listed.stdout)["kernelspecs"]["bpttlab"]
    assert Path(spec["resource_dir"]).resolve() == spec_dir
    assert spec["spec"]["display_name"] == "BPTT Lab (Python 3)"
    assert spec["spec"]["argv"] == ["python", "-m", "bpttlab.kernel", "-f", "{connection_file}"]


# -- the README's install command in a fresh virtual environment ----------------------------------------


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.nbi",
                                    "*.nbc", ".pytest_cache", ".hypothesis", "test-artifacts")
    shutil.copytree(ROOT, dest, ignore=ignore)


@pytest.mark.slow
def test_pip_install_in_a_fresh_venv_installs_the_kernelspec(tmp_path):
    src, venv = tmp_path / "bpttlab", tmp_path / "venv"
    _copy_sources(src)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "."], cwd=src, capture_output=True,
                         text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    listed = subprocess.run([str(venv / "bin" / "jupyter"), "kernelspec", "list", "--json"], capture_output=True,
                            text=True, check=True, env={"PATH": str(venv / "bin"), "HOME": str(tmp_path)})
    specs = json.loads(listed.stdout)["kernelspecs"]
    assert "bpttlab" in specs
    spec = specs["bpttlab"]
    assert Path(spec["resource_dir"]) == venv / "share" / "jupyter" / "kernels" / "bpttlab"
    assert spec["spec"]["display_name"] == "BPTT Lab (Python 3)"
    assert sorted(p.name for p in Path(spec["resource_dir"]).iterdir()) == sorted(["kernel.json", *LOGOS])
