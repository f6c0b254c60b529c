"""Install the ``bpttlab`` kernelspec with jupyter_client.

``pip install .`` ships the spec from jupyter-config/ as data files, with ``"python"`` as the command
(Jupyter runs it with the interpreter of its own environment). :func:`install` writes the same spec with
this interpreter's absolute path instead, so a kernel installed for the user (or into another prefix)
still runs the environment bpttlab is installed in. The logos come from the package's resources.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

KERNEL_NAME = "bpttlab"
DISPLAY_NAME = "BPTT Lab (Python 3)"
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


def kernel_spec(python: str | None = None) -> dict:
    """The kernel.json of the BPTT Lab kernel.

    Args:
        python: the interpreter that runs the kernel; default this one (``sys.executable``). The shipped
            data-file spec uses ``"python"``, which Jupyter replaces by its own interpreter.
    """
    return {
        "argv": [python or sys.executable, "-m", "bpttlab.kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": True},
    }


def install(*, user: bool = False, sys_prefix: bool = False, prefix: str | None = None) -> str:
    """Install the kernelspec and return the directory it was written to.

    Args:
        user: into the user's Jupyter data directory (``~/.local/share/jupyter/kernels``).
        sys_prefix: into this environment (``sys.prefix/share/jupyter/kernels``).
        prefix: into ``prefix/share/jupyter/kernels``.
        With none of them, the system-wide Jupyter directory (which usually needs administrator rights).

    Raises:
        ValueError: more than one destination was given.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    if sum([bool(user), bool(sys_prefix), prefix is not None]) > 1:
        raise ValueError("give at most one of user=True, sys_prefix=True or prefix=PATH, got "
                         f"user={user!r}, sys_prefix={sys_prefix!r}, prefix={prefix!r}")
    if sys_prefix:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = Path(tmp) / KERNEL_NAME
        spec_dir.mkdir()
        (spec_dir / "kernel.json").write_text(json.dumps(kernel_spec(), indent=1) + "\n")
        source = resources.files("bpttlab.kernel") / "resources"
        for logo in LOGOS:
            with resources.as_file(source / logo) as path:
                shutil.copyfile(path, spec_dir / logo)
        return KernelSpecManager().install_kernel_spec(str(spec_dir), KERNEL_NAME, user=user, prefix=prefix)
