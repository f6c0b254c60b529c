"""The BPTT Lab Jupyter kernel: an IPython kernel with the ``%bptt`` magics already loaded and the
Numba kernels' cache warmed in the background, so a student's first gradient comes quickly.

* ``python -m bpttlab.kernel -f CONNECTION_FILE`` starts it (:mod:`bpttlab.kernel.app`);
* its kernelspec ``bpttlab`` ("BPTT Lab (Python 3)") is shipped as data files from jupyter-config/ by
  ``pip install .``, and ``bpttlab kernel install [--user | --sys-prefix | --prefix P]`` installs it
  where data files are not picked up (:mod:`bpttlab.kernel.install`).
"""
from __future__ import annotations

from .install import DISPLAY_NAME, KERNEL_NAME, install, kernel_spec

__all__ = ["DISPLAY_NAME", "KERNEL_NAME", "install", "kernel_spec"]
