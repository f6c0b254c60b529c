"""Running a student's notebook top to bottom in a fresh, confined kernel (step 3 of the batch grader).

The kernel is started through the run's :class:`~bpttlab.grading.isolation.Isolation`. A sandboxed kernel
has no network, so it does not talk TCP with the grader: it gets Jupyter's ``ipc`` transport, Unix
sockets. Nothing else of the grader's is visible to it but the folder of its connection file.

* A root grader makes the sockets' folder, hands it to the sandbox's user and shares it with the
  sandbox; once the kernel is ready, and before the first cell runs, it takes the folder back: the
  notebook cannot create files there (it could otherwise fill the grader's disk), only use the sockets.
* A grader that is not root could not take a folder back from a sandbox that runs as its own user
  (mapped into the sandbox's user namespace). The kernel makes its sockets in its own private ``/tmp``
  and may only read the connection file's folder; the grader holds the sockets from outside, through
  the sandbox's root as ``/proc`` shows it, before the first cell runs (:func:`_hold_sockets`), and
  connects to them through links in a folder of its own, so that nothing the notebook does to those
  names redirects it.

Without a sandbox (``--no-sandbox``) the sockets lie in the connection file's folder.

The package folder is read-only in the sandbox, and Numba only uses a cache it may write: the grader
lays out a copy of the package's compiled Numba kernels (from wherever its own Numba keeps them) in a
folder the kernel may read, which :mod:`~bpttlab.grading.confine` copies to the kernel's private
``NUMBA_CACHE_DIR``, so that a sandboxed kernel loads them instead of compiling them again.

Two time limits apply: ``timeout`` to each cell, ``notebook_timeout`` to all cells together (each cell
gets at most what is left of it). A cell that hits the memory, process or file-size limit is named in
the notes, in words a student understands. The kernel runs in a cgroup of its own where one can be made
(:meth:`~bpttlab.grading.isolation.Isolation.cgroup`): when the OOM killer acted in it (the memory of all
the kernel's processes together reached the limit), the notebook stops there, after that cell or when
the kernel dies, with that reason.
"""
from __future__ import annotations

import asyncio
import functools
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client import AsyncKernelManager
from jupyter_core.utils import run_sync

from .api import BATCH_ENV
from .isolation import SCRATCH, Isolation, limit_hit, memory_exceeded, sandbox_environment, sandbox_uid


#: Where a sandboxed kernel makes its sockets (KERNEL_SOCKETS-PORT), as the kernel sees it.
KERNEL_SOCKETS = f"{SCRATCH}/kernel"


@dataclass(frozen=True)
class Execution:
    """How far a notebook ran: ``stopped_at`` is the index of the cell where it stopped, or None.

    Attributes:
        stopped_at: index of the cell that did not finish, or None when every cell ran.
        status: why it stopped: "timeout", "notebook-timeout", "kernel-died" or "memory-limit".
        reason: the same in a sentence.
        failed_cells: indices of the cells that raised an error.
        limits_hit: a sentence for each cell whose error shows that a limit was hit.
    """

    stopped_at: int | None = None
    status: str | None = None
    reason: str | None = None
    failed_cells: tuple[int, ...] = ()
    limits_hit: tuple[str, ...] = ()


class MemoryLimitHit(Exception):
    """The OOM killer acted in the kernel's cgroup (raised from a cell hook to stop the notebook)."""


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel command runs through an isolation that shares ``run_dir`` with it
    (the connection file, and the sockets unless :func:`holds_sockets`: then it may only read it) and
    lets it read ``readable``, in ``cgroup`` when there is one. Held sockets are reached through links in
    ``links``, a folder of the grader's own."""

    isolation: Isolation
    run_dir: str
    links: str
    readable: tuple[str, ...] = ()
    held: tuple[int, ...] = ()
    cgroup = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        if holds_sockets(self.isolation):
            return self.isolation.command(command, readable=(self.run_dir, *self.readable), cgroup=self.cgroup)
        return self.isolation.command(command, shared=self.run_dir, readable=self.readable, cgroup=self.cgroup)

    def write_connection_file(self, **kwargs) -> None:
        """Write the connection file, readable by the sandbox's user (it holds only this kernel's key)."""
        super().write_connection_file(**kwargs)
        _hand_over(self.connection_file, self.isolation)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        """Launch the kernel; once a sandboxed one has made its sockets, hold them and connect through
        them (see :func:`_hold_sockets`)."""
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if holds_sockets(self.isolation):
            self.held = await _hold_sockets(self.provisioner.process, self.ports)
            name = os.path.basename(KERNEL_SOCKETS)
            for port, fd in zip(self.ports, self.held):
                os.symlink(f"/proc/{os.getpid()}/fd/{fd}", os.path.join(self.links, f"{name}-{port}"))
            self.ip = os.path.join(self.links, name)

    def release_sockets(self) -> None:
        for fd in self.held:
            os.close(fd)
        self.held = ()


async def _hold_sockets(launcher, ports: list[int], timeout: float = 120.0) -> tuple[int, ...]:
    """Descriptors (``O_PATH``) of the sockets ``KERNEL_SOCKETS-PORT`` of the kernel in the sandbox that
    ``launcher`` (the bubblewrap process) made, opened in the sandbox's root as ``/proc/CHILD/root``
    shows it (CHILD: the sandbox's first process), as soon as they are all there: before any cell
    runs, so they are the kernel's own. The grader then connects to those sockets whatever the notebook
    does to the names in its ``/tmp``, and it shares no writable folder with the sandbox."""
    names = [f"{KERNEL_SOCKETS}-{port}" for port in ports]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and launcher.poll() is None:
        for child in _children(launcher.pid):
            held = _open_sockets([f"/proc/{child}/root{name}" for name in names])
            if held:
                return held
        await asyncio.sleep(0.05)
    raise RuntimeError("the sandboxed kernel exited as it started" if launcher.poll() is not None else
                       f"the sandboxed kernel made no sockets within {timeout:g} s")


def _open_sockets(paths: list[str]) -> tuple[int, ...]:
    """``O_PATH`` descriptors of ``paths`` if each is a Unix socket (a link is not followed), else ()."""
    held: list[int] = []
    try:
        for path in paths:
            held.append(os.open(path, os.O_PATH | os.O_NOFOLLOW))
            if not stat.S_ISSOCK(os.fstat(held[-1]).st_mode):
                raise OSError(f"{path} is not a socket")
        return tuple(held)
    except OSError:
        for fd in held:
            os.close(fd)
        return ()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def holds_sockets(isolation: Isolation) -> bool:
    """Whether a kernel makes its sockets in its own ``/tmp``, held by the grader (a sandbox made by a
    grader that is not root), rather than in a folder the grader shares with it and takes back."""
    return isolation.isolated and os.geteuid() != 0


def _hand_over(path: str, isolation: Isolation, back: bool = False) -> None:
    """Give ``path`` to the user that sandboxed code runs as, when a root grader drops to one (``back``:
    take it back, leaving it readable)."""
    if isolation.isolated and os.geteuid() == 0:
        uid = 0 if back else sandbox_uid(True)
        os.chown(path, uid, uid)
        os.chmod(path, 0o755 if back else 0o700)


def numba_cache_copy(target: str) -> str:
    """Copy the compiled Numba kernels of bpttlab's package to ``target``, laid out as Numba reads a
    ``NUMBA_CACHE_DIR``, readable by all; returns ``target``.

    The kernels are taken from where this process's Numba keeps them for each folder of the package
    (:func:`numba_cache_of`): its ``__pycache__`` when the grader may write there, else the user's
    cache folder (a grader that is not root grading with a package it may not change), or
    ``NUMBA_CACHE_DIR`` when it is set."""
    from numba.core.caching import UserProvidedCacheLocator

    from .. import __file__ as package_init

    for package in sorted({p.parent for p in Path(package_init).parent.rglob("*.py")}):
        cache = numba_cache_of(package)
        kernels = [f for f in cache.iterdir() if f.suffix in (".nbi", ".nbc")] if cache and cache.is_dir() else []
        if kernels:
            folder = Path(target) / UserProvidedCacheLocator.get_suitable_cache_subpath(str(package / "x.py"))
            folder.mkdir(parents=True, exist_ok=True)
            for kernel in kernels:
                shutil.copy2(kernel, folder / kernel.name)
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)
    return target


@functools.lru_cache(maxsize=None)
def numba_cache_of(package: Path) -> Path | None:
    """The folder where this process's Numba caches the kernels of the modules in ``package``: the first
    of Numba's own cache locators that takes a module there (None if none does)."""
    from numba.core.caching import FunctionCache

    module = str(next(package.glob("*.py")))
    for locator in FunctionCache._impl_class._locator_classes:
        found = locator.from_function(numba_cache_of.__wrapped__, module)
        if found is not None:
            return Path(found.get_cache_path())
    return None


def execute(nb, isolation: Isolation, timeout: float, notebook_timeout: float, kernel: str) -> Execution:
    """Run a notebook in a fresh confined kernel; never raises for the student's code: a timeout or a dead
    kernel is returned as where and why it stopped.

    The kernel gets ``BPTTLAB_BATCH_GRADING=1``, so ``%%bptt exercise`` cells run without grading
    themselves (the grader does that, in its own process)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    current = {"index": None, "notebook_limit": False}
    deadline = time.monotonic() + notebook_timeout

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    def on_cell_executed(cell, cell_index, execute_reply):
        if km.cgroup is not None and km.cgroup.oom_kills():
            raise MemoryLimitHit()

    def cell_timeout(cell) -> float:
        left = deadline - time.monotonic()
        current["notebook_limit"] = left < timeout
        return max(0.1, min(timeout, left))

    with tempfile.TemporaryDirectory(prefix="bpttlab-kernel-") as run_dir, \
            tempfile.TemporaryDirectory(prefix="bpttlab-numba-") as numba_seed, \
            tempfile.TemporaryDirectory(prefix="bpttlab-sockets-") as links, \
            tempfile.TemporaryFile(prefix="bpttlab-kernel-log-") as log, isolation.cgroup() as cgroup:
        run_dir = os.path.realpath(run_dir)
        numba_seed = numba_cache_copy(os.path.realpath(numba_seed))
        _hand_over(run_dir, isolation)
        sockets = KERNEL_SOCKETS if holds_sockets(isolation) else os.path.join(run_dir, "kernel")
        km = ConfinedKernelManager(kernel_name=kernel, transport="ipc", ip=sockets,
                                   connection_file=os.path.join(run_dir, "kernel.json"))
        km.isolation, km.run_dir, km.links, km.readable = isolation, run_dir, links, (numba_seed,)
        km.cgroup = cgroup
        client = NotebookClient(nb, km=km, timeout_func=cell_timeout, allow_errors=True, startup_timeout=120,
                                shutdown_kernel="immediate", record_timing=False, on_cell_start=on_cell_start,
                                on_cell_executed=on_cell_executed,
                                on_notebook_start=lambda notebook: _hand_over(run_dir, isolation, back=True))
        home = isolation.home(run_dir)
        env = sandbox_environment(home, {BATCH_ENV: "1", "NUMBA_CACHE_DIR": f"{home}/.numba-cache",
                                         "BPTTLAB_NUMBA_CACHE_SEED": numba_seed})
        try:
            client.execute(env=env, cwd=run_dir, stdout=log, stderr=log)
        except (MemoryLimitHit, CellTimeoutError, DeadKernelError) as stop:
            i = current["index"]
            if cgroup is not None and cgroup.oom_kills():  # first: it may be why the kernel died or hung
                return _stopped(nb, i, "memory-limit", f"{memory_exceeded(isolation.limits, 'the notebook')} at "
                                                       f"cell {i + 1}", isolation)
            if isinstance(stop, DeadKernelError):
                return _stopped(nb, i, "kernel-died", f"the kernel died while running cell {i + 1} (os._exit, a "
                                                      "crash such as a segfault, or memory exhausted)", isolation)
            if current["notebook_limit"]:
                return _stopped(nb, i, "notebook-timeout", f"the notebook stopped at cell {i + 1}: all its cells "
                                f"together ran longer than the {notebook_timeout:g} s a notebook may take",
                                isolation)
            return _stopped(nb, i, "timeout", f"the notebook stopped at cell {i + 1}, which ran longer than "
                                              f"{timeout:g} s (an infinite loop?)", isolation)
        finally:
            if km.has_kernel:  # nbclient leaves a kernel manager it was given to its owner
                run_sync(km.shutdown_kernel)(now=True)
            km.release_sockets()
    return _stopped(nb, None, None, None, isolation)


def _stopped(nb, index, status, reason, isolation: Isolation) -> Execution:
    failed, hits = [], []
    for i, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.get("cell_type") != "code" or not errors:
            continue
        failed.append(i)
        for error in errors:
            words = limit_hit(f"{error.get('ename', '')}: {error.get('evalue', '')}", isolation.limits)
            if words:
                hits.append(f"cell {i + 1}: {words}")
                break
    return Execution(index, status, reason, tuple(failed), tuple(hits))
