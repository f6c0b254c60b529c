"""The kernel process: ipykernel's :class:`~ipykernel.kernelapp.IPKernelApp` with the bpttlab extension
among the default extensions, so ``%bptt`` is there without ``%load_ext``, and the Numba cache warming
in a background thread while the kernel starts (:mod:`bpttlab.kernel.warmup`)."""
from __future__ import annotations

from ipykernel.kernelapp import IPKernelApp
from traitlets import List, Unicode

from .warmup import start_warm_up


class BPTTLabKernelApp(IPKernelApp):
    """An IPython kernel that loads ``bpttlab`` (the ``%bptt`` magics) at start-up."""

    name = "bpttlab-kernel"
    default_extensions = List(Unicode(), ["storemagic", "bpttlab"]).tag(config=False)


def main(argv: list[str] | None = None) -> None:
    """Start the kernel (``python -m bpttlab.kernel -f CONNECTION_FILE``).

    The warm-up starts first: bpttlab itself is already imported (this module is inside it), and loading
    the cached kernels (LLVM work, outside the GIL) overlaps with the kernel's own start-up.
    """
    app = BPTTLabKernelApp.instance()
    start_warm_up(app.log)
    app.initialize(argv)
    app.start()
