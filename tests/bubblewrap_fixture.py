"""The ``bubblewrap`` fixture: the grader's sandbox must work for the grading tests.

When ``bwrap`` is missing it is installed from Debian's package (``apt-get install -y bubblewrap``, as
root or through ``sudo -n``). Where no sandbox can be made the tests that need one are skipped with the
reason, except in CI (the environment variable ``CI`` is set), where they fail: there the sandbox is
what they exist to test.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from bpttlab.grading.isolation import Bubblewrap, Limits, SandboxUnavailable


def _apt_install(package: str) -> str | None:
    """Install a Debian package; return why it could not be, or None."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and shutil.which("sudo") is None:
        return "not root and no sudo"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", package]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # an old package list: refresh it once
        subprocess.run([*sudo, "apt-get", "update"], env=env, capture_output=True, timeout=900)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode == 0:
        return None
    return f"{' '.join(install)} failed: " + " | ".join((done.stdout + done.stderr).strip().splitlines()[-2:])


@pytest.fixture(scope="session")
def bubblewrap() -> None:
    """A working bubblewrap sandbox (installed if missing); skip without one, fail in CI."""
    why = _apt_install("bubblewrap") if shutil.which("bwrap") is None else None
    if why is None:
        try:
            Bubblewrap(Limits()).probe()
        except SandboxUnavailable as exc:
            why = str(exc)
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the grading sandbox must work in CI: {why}", pytrace=False)
        pytest.skip(f"no grading sandbox here: {why}")
