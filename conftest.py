"""Session set-up shared by tests/ and workbooks/ (nbval): the BPTT Lab kernelspec must exist before
nbval starts the workbooks' kernels, whether bpttlab was installed with `pip install .` (which ships the
kernelspec as data files) or in editable mode (which may not)."""
from __future__ import annotations

import os

# Tests and the workbooks' stored outputs compare numbers, so every engine call runs on a known tier:
# compile the kernels on first use and wait for them, unless a test asks otherwise (the nbval kernels
# inherit this). tests/test_tiers.py checks both tiers and the background compilation users get.
os.environ.setdefault("BPTTLAB_COMPILE", "eager")


def pytest_sessionstart(session):
    from jupyter_client.kernelspec import KernelSpecManager

    if "bpttlab" not in KernelSpecManager().find_kernel_specs():
        from bpttlab.kernel.install import install

        install(prefix=None, user=False, sys_prefix=True)
