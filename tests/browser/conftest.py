"""Fixtures of the browser tests: Debian's Chromium, a JupyterLab server on localhost, a headless page.

* ``chromium``: the path of the system Chromium, installed with ``apt-get install -y chromium`` when it is
  missing (as root, or through ``sudo -n``). Where it cannot be installed the browser tests are skipped
  with the reason, except in CI (the environment variable ``CI`` is set), where they fail.
* ``lab``: a JupyterLab server on a free localhost port with a token, serving a temporary copy of
  workbooks/ (outputs cleared, so that whatever the page shows comes from this run), with its own
  settings (no news, no update check, every cell kept in the page) and its log in the artifact folder.
* ``page``: a Playwright page of a headless Chromium with a fresh profile.

Playwright's own browser downloads are never used: Chromium is launched from ``CHROMIUM``.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Where screenshots and the server log go (gitignored); BPTTLAB_TEST_ARTIFACTS overrides it.
ARTIFACTS = Path(os.environ.get("BPTTLAB_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
SERVER_START_S = 60.0
POLL_S = 0.2


def _unavailable(reason: str):
    """Skip with ``reason``, or fail in CI, where the browser tests must run."""
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI, but {reason}", pytrace=False)
    pytest.skip(reason)


def _install_chromium() -> str | None:
    """Run ``apt-get install -y chromium`` (after ``apt-get update`` if the first try fails) as root or
    through ``sudo -n``; return why it failed, or None."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this system"
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo") is not None:
        prefix = ["sudo", "-n"]
    else:
        return "not root and sudo is not available"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = prefix + ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]

    def run(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)

    done = run(install)
    if done.returncode != 0:
        if prefix and "password" in done.stderr.lower():
            return "sudo -n needs a password"
        run(prefix + ["apt-get", "update"])
        done = run(install)
    if done.returncode == 0 and CHROMIUM.exists():
        return None
    tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return f"`{' '.join(install)}` exited with {done.returncode}: {tail}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system Chromium (installed with apt-get if missing)."""
    pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed "
                                                      "(pip install 'bpttlab[test]')")
    if not CHROMIUM.exists():
        why = _install_chromium()
        if why is not None:
            _unavailable(f"Chromium is not at {CHROMIUM} and could not be installed: {why}")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_workbooks(dest: Path) -> None:
    """Copy the chapters to ``dest`` with their outputs and saved widget state removed."""
    shutil.copytree(ROOT / "workbooks", dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    for path in dest.glob("[0-9][0-9]*-*.ipynb"):
        try:
            nb = nbformat.read(path, as_version=4)
        except (ValueError, nbformat.reader.NotJSONError):
            continue  # a chapter being rewritten right now: not one the tests open
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)


def _write_settings(settings: Path) -> None:
    """User settings for the test server: no news or update check, no windowing (every cell in the page)."""
    values = {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }
    for plugin, value in values.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server: its base URL, token and served folder."""

    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        """The notebook ``name`` in a workspace of its own: in the default one, JupyterLab would first
        restore the tabs an earlier test left open, and a cell locator of the visible notebook could meet
        another notebook's cell while the page still switches tabs."""
        return f"{self.url}/lab/workspaces/test-{secrets.token_hex(4)}/tree/{name}?token={self.token}"


@pytest.fixture(scope="session")
def lab(chromium, artifacts, tmp_path_factory) -> Iterator[Lab]:
    """A JupyterLab server on localhost serving a fresh copy of workbooks/ (started only once a browser
    is there to use it)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "bpttlab" not in KernelSpecManager().find_kernel_specs():
        pytest.fail("the bpttlab kernelspec is not installed (python -m bpttlab.kernel.install)", pytrace=False)
    base = tmp_path_factory.mktemp("lab")
    root = base / "workbooks"
    _copy_workbooks(root)
    _write_settings(base / "settings")
    for sub in ("config", "runtime", "workspaces"):
        (base / sub).mkdir()
    port, token = _free_port(), secrets.token_hex(16)
    # the kernels run as a student's would: the engine answers at once while it compiles in the background
    # (the test session itself compiles eagerly, see conftest.py; the widgets' numbers are the same on both
    # tiers to far more digits than they show)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1", BPTTLAB_COMPILE="background")
    log = open(artifacts / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={base / 'settings'}",
         f"--LabApp.workspaces_dir={base / 'workspaces'}", "--ServerApp.terminals_enabled=False",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {server.returncode}; see {log.name}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {url} within {SERVER_START_S:g} s; see {log.name}",
                            pytrace=False)
            time.sleep(POLL_S)
        yield Lab(url, token, root)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder for screenshots and logs (created)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def page(chromium, artifacts, tmp_path, request):
    """A page of a headless system Chromium with a fresh profile (1400 x 1000); its last state is saved as
    ``<test name>-last.png`` in the artifact folder, whether the test passed or not."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        page = context.pages[0] if context.pages else context.new_page()
        try:
            yield page
        finally:
            try:
                page.screenshot(path=str(artifacts / f"{request.node.name}-last.png"))
            finally:
                context.close()


#: The notebook test_widgets_in_lab.py opens in JupyterLab: not a notebook for nbval to run.
collect_ignore = ["widgets.ipynb"]
