"""The repo2docker / Binder set-up (.binder/): the image's requirements, and its postBuild run for real.

The postBuild runs, unchanged, in a fresh virtual environment on a copy of the repository. To keep this
affordable the environment installs no dependency again: it is made ``--without-pip`` and sees the test
environment's packages through a path line in a ``.pth`` file (a plain path, not a site directory, so the
test environment's own bpttlab, an editable install, stays invisible), and postBuild installs bpttlab
itself into it as a regular package, as the image does (pip builds it in an isolated build environment
with the build backend of pyproject.toml, fetched from the package index as in the image). Then the BPTT Lab kernelspec must be the new
environment's, and a kernel started from it must run the installed package and find every compiled kernel
of the Elman cell in the Numba cache (cache hits, no compilation).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / ".binder"


def requirement_lines(text: str) -> list[str]:
    return [line.split("#")[0].replace(" ", "") for line in text.splitlines() if line.split("#")[0].strip()]


def test_image_requirements_are_the_package_dependencies_and_its_nbgrader_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [d.replace(" ", "") for d in project["dependencies"] + project["optional-dependencies"]["nbgrader"]]
    assert requirement_lines((BINDER / "requirements.txt").read_text()) == wanted
    assert re.fullmatch(r"python-3\.1[1-9]\s*", (BINDER / "runtime.txt").read_text())
    assert os.access(BINDER / "postBuild", os.X_OK)


def copy_of_repository(dest: Path) -> Path:
    """What repo2docker copies into the image: the repository without caches and build leftovers."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".venv", ".git", "*.nbi", "*.nbc")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, dest / name)
    for name in ("bpttlab", "jupyter-config", ".binder"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


KERNEL_CHECK = textwrap.dedent("""
    import json
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    spec = KernelSpecManager().get_kernel_spec("bpttlab")
    code = '''
    import gc, json
    import numpy as np
    import bpttlab as bl
    from numba.core.registry import CPUDispatcher
    net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=0)
    bl.bptt(net, np.linspace(-1, 1, 4).reshape(4, 1), np.zeros((4, 1)))
    from bpttlab.engine import warm
    warm("elman")  # every Elman kernel now (the kernel's own warm-up loads them once its child is done)
    kernels = [d for d in gc.get_objects() if isinstance(d, CPUDispatcher) and d.__module__.startswith("bpttlab")]
    print(json.dumps({"file": bl.__file__,
                      "hits": sum(sum(d.stats.cache_hits.values()) for d in kernels),
                      "misses": sum(sum(d.stats.cache_misses.values()) for d in kernels)}))
    '''
    km, kc = start_new_kernel(kernel_name="bpttlab", startup_timeout=300)
    try:
        printed = []
        reply = kc.execute_interactive(code, timeout=600, output_hook=lambda m: printed.append(
            m["content"]["text"]) if m["msg_type"] == "stream" and m["content"]["name"] == "stdout" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    print(json.dumps({"dir": spec.resource_dir, "argv": spec.argv, "kernel": json.loads("".join(printed))}))
""")


@pytest.mark.slow
@pytest.mark.kernel
def test_postbuild_installs_the_kernelspec_and_a_warm_numba_cache(tmp_path):
    (tmp_path / "repo").mkdir()
    repo = copy_of_repository(tmp_path / "repo")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NUMBA_CACHE_DIR", "JUPYTER_PATH", "JUPYTER_DATA_DIR")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", HOME=str(tmp_path / "home"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    built = subprocess.run(["bash", str(repo / ".binder" / "postBuild")], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=3000)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    installed = site / "bpttlab"
    assert (installed / "__init__.py").exists()
    index_files = list(installed.rglob("__pycache__/*.nbi"))
    assert len(index_files) >= 4, "the warm-up left no Numba cache index in the installed package"

    checked = subprocess.run([str(python), "-c", KERNEL_CHECK], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=1200)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    found = json.loads(checked.stdout.strip().splitlines()[-1])
    assert Path(found["dir"]).resolve() == (venv / "share" / "jupyter" / "kernels" / "bpttlab").resolve()
    assert found["argv"][0] == str(python) and found["argv"][1:3] == ["-m", "bpttlab.kernel"]
    kernel = found["kernel"]
    assert Path(kernel["file"]).resolve() == (installed / "__init__.py").resolve()  # not the test's own copy
    assert kernel["hits"] > 0 and kernel["misses"] == 0, kernel
