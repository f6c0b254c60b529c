"""Where students' code runs: an OS sandbox (bubblewrap) with limits, or, if the teacher opts out, none.

Every process the batch grader starts for a submission (the notebook's kernel, the child that calls its
graded functions) is started through an :class:`Isolation`: ``isolation.command(argv)`` is the command
line that runs ``argv`` confined. Two backends:

* :class:`Bubblewrap` (the default; Debian package ``bubblewrap``): the process sees a short explicit list
  of directories: the system's programs and libraries and the Python environment (read-only), a private
  ``/tmp`` (a size-limited tmpfs, its HOME and working directory, thrown away at the end), its own
  ``/proc`` and a minimal ``/dev``, and at most one folder the grader shares with it (a root grader's
  kernel sockets; a non-root grader only lets it read the connection file's folder and holds the sockets
  itself, see :mod:`~bpttlab.grading.notebook_run`). It cannot see the output folder, the hidden seed, other submissions or the teacher's files;
  it has no network (its own network namespace holds only a loopback device), its own PID namespace (it
  can signal nothing outside), and it is killed with everything it started when its parent dies. When
  the grader runs as root, the code runs as an unprivileged user (:func:`sandbox_uid`) with no
  capabilities.
* :class:`Unconfined` (``--no-sandbox``): the same limits, nothing else.

Another backend (podman, docker) implements :meth:`Isolation.command` and :meth:`Isolation.probe`.
Limits are applied inside, by :mod:`bpttlab.grading.confine`, per process (``RLIMIT_AS``, ...). The
memory limit also holds for all processes of a sandbox together when a cgroup can be made here
(:mod:`bpttlab.grading.cgroups`; with either backend): each sandbox is started in its own
(:meth:`Isolation.cgroup`), and the grader reads from it whether the limit stopped the submission. The
per-process limit stays as a second line: a single huge allocation then fails with a ``MemoryError`` the
student can read, in a kernel that goes on, rather than with the kernel stopped.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import cgroups

#: The private scratch folder inside a sandbox (HOME and working directory).
SCRATCH = "/tmp"
#: Sandboxed code run by a root grader gets a user id from FIRST_UID up, made of the pid of the process
#: starting it (see :func:`sandbox_uid`): concurrent sandboxes never share a user, so that the process
#: limit of one is not used up by another.
FIRST_UID = 1_900_000_000
MiB = 2 ** 20

_CONFINE = str(Path(__file__).with_name("confine.py"))
_SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf")
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH")


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made here; the message is one line that names the fix."""


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    Attributes:
        memory: bytes of memory all processes of a sandbox may use together (where a cgroup can be made:
            beyond it they are stopped), and bytes of address space of each process (an allocation beyond
            fails with MemoryError).
        processes: processes and threads the submission may have at once.
        file_size: bytes of the largest file it may write.
        scratch: bytes of its private /tmp.
    """

    memory: int = 2 * 1024 * MiB
    processes: int = 64
    file_size: int = 64 * MiB
    scratch: int = 256 * MiB


def sandbox_uid(shares_folder: bool) -> int:
    """The unprivileged user id that a sandbox started by this process runs as (when it is root): one for
    a kernel (the sandbox that shares a folder with the grader), another for a graded function's child,
    so that what is left of a kernel being torn down never counts against the child's process limit."""
    return FIRST_UID + 2 * os.getpid() + (0 if shares_folder else 1)


def sandbox_environment(home: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of sandboxed code: a few of the grader's variables (no secrets a teacher may keep
    in theirs), a private HOME, one thread per numeric library."""
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(HOME=home, TMPDIR=home, JUPYTER_RUNTIME_DIR=f"{home}/.jupyter-runtime", MPLBACKEND="Agg",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env.update(extra or {})
    return env


class Isolation(ABC):
    """How the grader runs untrusted code (the backend interface).

    Attributes:
        name: how the run is recorded (grading.json, feedback pages).
        isolated: whether the code is kept from the grader's files, network and processes.
        own_processes: processes of the backend's own in each sandbox, which its cgroup's process limit
            allows on top of the submission's.
    """

    name: str
    isolated: bool
    own_processes: int = 0

    def __init__(self, limits: Limits):
        self.limits = limits

    @abstractmethod
    def command(self, argv: list[str], shared: str | None = None, readable: tuple[str, ...] = (),
                cgroup: cgroups.Cgroup | None = None) -> list[str]:
        """The command line that runs ``argv`` confined; ``shared`` is a folder it may read and write, and
        ``readable`` folders it may read, each at the same path (the grader makes them and removes them);
        every process it starts is in ``cgroup`` (from :meth:`cgroup`), when one is given."""

    @abstractmethod
    def probe(self) -> None:
        """Raise :class:`SandboxUnavailable` unless :meth:`command` works here."""

    def home(self, workdir: str) -> str:
        """The HOME and working directory of the confined code (``workdir``: a private folder the grader
        made, used where the backend has no scratch of its own)."""
        return SCRATCH

    @property
    def memory_enforcement(self) -> str:
        """How the memory limit is enforced here: "per submission (cgroup v1)", "per process only: ..."."""
        return str(cgroups.enforcement())

    @contextmanager
    def cgroup(self) -> Iterator[cgroups.Cgroup | None]:
        """A new cgroup for one sandbox, with this run's memory and process limits, killed and removed at
        the end; None where no cgroup can be made (the per-process limits then stand alone)."""
        place = cgroups.enforcement().place
        if place is None:
            yield None
            return
        with place.make(self.limits.memory, self.limits.processes + self.own_processes) as group:
            yield group

    def _confine(self, argv: list[str], limits: dict) -> list[str]:
        return [sys.executable, "-I", "-S", _CONFINE, json.dumps(limits), "--", *argv]


class Unconfined(Isolation):
    """``--no-sandbox``: the limits on memory and file size, and nothing else (student code runs with
    the grader's rights)."""

    name = "none (--no-sandbox)"
    isolated = False

    def command(self, argv: list[str], shared: str | None = None, readable: tuple[str, ...] = (),
                cgroup: cgroups.Cgroup | None = None) -> list[str]:
        return [*cgroups.launcher(cgroup), *self._confine(argv, {"as": self.limits.memory,
                                                                  "fsize": self.limits.file_size})]

    def probe(self) -> None:
        return None

    def home(self, workdir: str) -> str:
        return workdir


class Bubblewrap(Isolation):
    """The bubblewrap sandbox described in the module docstring."""

    name = "bubblewrap"
    isolated = True
    own_processes = 2  # bwrap outside the sandbox, and bwrap as its process 1

    def command(self, argv: list[str], shared: str | None = None, readable: tuple[str, ...] = (),
                cgroup: cgroups.Cgroup | None = None) -> list[str]:
        root = os.geteuid() == 0
        args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if root:  # no user namespace: the kernel then counts the process limit for a real, unprivileged user
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user", "--disable-userns"]
        for name in _SYSTEM:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in _ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(self.limits.scratch), "--tmpfs", SCRATCH]
        binds = [(p, "--ro-bind") for p in (*_environment_dirs(), *readable)]
        if shared is not None:
            binds.append((shared, "--bind"))
        args += _mounts(binds)
        args += ["--chdir", SCRATCH, "--"]
        limits = {"as": self.limits.memory, "nproc": self.limits.processes, "fsize": self.limits.file_size}
        if root:
            limits["uid"] = sandbox_uid(shared is not None)
        return [*cgroups.launcher(cgroup), *args, *self._confine(argv, limits)]

    def probe(self) -> None:
        if not sys.platform.startswith("linux"):
            raise SandboxUnavailable(f"no sandbox on {sys.platform}: bubblewrap needs Linux; grade on Linux, or "
                                     "pass --no-sandbox to run students' code unconfined with your rights")
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable("bubblewrap is not installed: install it (Debian/Ubuntu: sudo apt-get install "
                                     "bubblewrap), or pass --no-sandbox to run students' code unconfined")
        try:
            done = subprocess.run(self.command([sys.executable, "-I", "-S", "-c", "pass"]), capture_output=True,
                                  text=True, timeout=60, env=sandbox_environment(SCRATCH))
        except subprocess.TimeoutExpired:
            raise SandboxUnavailable("bubblewrap did not start a test sandbox within 60 s") from None
        if done.returncode != 0:
            said = " ".join(done.stderr.split())[:200] or f"exit status {done.returncode}"
            raise SandboxUnavailable(f"bubblewrap cannot make a sandbox here ({said}): enable unprivileged user "
                                     "namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
                                     "kernel.apparmor_restrict_unprivileged_userns=0) or grade as root, or pass "
                                     "--no-sandbox to run students' code unconfined")


def isolation(sandbox: bool, limits: Limits) -> Isolation:
    """The backend a run uses: bubblewrap, or none when ``sandbox`` is False."""
    return Bubblewrap(limits) if sandbox else Unconfined(limits)


def _environment_dirs() -> list[str]:
    """The Python environment, read-only: the interpreter's prefixes and bpttlab's own package folder
    (at the path it is imported from, so that an editable install or PYTHONPATH finds the same code)."""
    from .. import __file__ as package_init

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(os.path.abspath(package_init))}
    return sorted(d for d in dirs if not any(_under(d, f"/{s}") for s in _SYSTEM))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _mounts(binds: list[tuple[str, str]]) -> list[str]:
    """bwrap arguments that mount each (path, option) at its own path, creating the folders above it
    world-readable (bwrap would make them private to root); a path inside another is mounted after it."""
    args, made = [], set()
    targets = {p for p, _ in binds}
    for path, option in sorted(binds, key=lambda b: b[0].count("/")):
        if any(_under(path, other) and path != other for other in targets):
            if option == "--ro-bind":
                continue  # already visible through the folder that holds it
        parents = []
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in made and not any(_under(parent, t) for t in targets):
            parents.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(parents):
            if folder != SCRATCH:
                args += ["--perms", "0755", "--dir", folder]
            made.add(folder)
        args += [option, path, path]
    return args


def _size(n: int) -> str:
    return f"{n / 1024 / MiB:g} GiB" if n >= 1024 * MiB else f"{n / MiB:g} MiB"


def memory_exceeded(limits: Limits, who: str = "the code") -> str:
    """A sentence for the student when the OOM killer stopped the sandbox (or a process of it) of ``who``:
    the memory of all its processes together reached the limit (see :meth:`Isolation.cgroup`)."""
    return (f"{who} used more than {_size(limits.memory)} of memory in total (all its processes together) and "
            "was stopped")


def limit_hit(message: str, limits: Limits) -> str | None:
    """A sentence for the student when an error ``message`` ("MemoryError: ...", "BlockingIOError: [Errno
    11] Resource temporarily unavailable", ...) shows that a limit of :class:`Limits` was hit, else None."""
    if message.startswith("MemoryError") or "Cannot allocate memory" in message:
        return f"the code ran out of memory: each process may use at most {_size(limits.memory)}"
    if "Resource temporarily unavailable" in message and ("fork" in message or "BlockingIOError" in message
                                                          or "thread" in message):
        return (f"the code started too many processes or threads: at most {limits.processes} may run at "
                "once")
    if "File too large" in message:
        return f"the code wrote a file larger than the limit of {_size(limits.file_size)}"
    if "No space left on device" in message:
        return f"the code filled its scratch folder, which holds at most {_size(limits.scratch)}"
    return None
