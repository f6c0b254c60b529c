"""One Linux control group (cgroup) per sandbox: the memory limit of a submission as a whole.

``RLIMIT_AS`` (:mod:`~bpttlab.grading.confine`) bounds each process; a submission that starts N processes
could still use N times ``--memory``. A cgroup bounds the sum: every process of a sandbox is in it, and
when their resident memory together exceeds the limit the kernel's OOM killer stops one of them (cgroup
v2: all of them, ``memory.oom.group``) and counts it (``oom_kill`` in ``memory.events``, or in
``memory.oom_control`` for v1), which is how the grader learns that the limit was hit. Swap does not
stretch the limit (``memory.swap.max`` = 0, or ``memory.memsw.limit_in_bytes`` = the limit), and the
``pids`` controller, where there is one, bounds the number of processes and threads of the sandbox.

Where the cgroups are made (:func:`find_place`): beside the grader's own cgroup, i.e. as children of its
parent (of the root when the grader is in the root). Version 2 requires that: a cgroup that holds
processes (the grader's) cannot hand memory to children. It also means that later runs from the same
session look in the same folder. Version 2 is used when its hierarchy has the memory controller (the
unified layout of current distributions; as root, or as a user with a delegated subtree, e.g. the systemd
user session's); otherwise version 1's memory hierarchy (and pids', when writable). Nothing is used until
a trial (:func:`trial`) has made a cgroup, set its limit, moved a process into it and removed it.

A sandbox's first process enters its cgroup itself before it starts anything
(:func:`launcher`), so no process of the submission ever runs outside it.
Each cgroup is named ``bpttlab-PID-START-N`` after the process that made it (its pid and start time, so
a reused pid is not mistaken for it): one left behind by a grader that was killed is found by the next
run (:func:`sweep`), which kills what is still inside and removes it.

This module is Linux-only in effect: elsewhere :func:`enforcement` reports that no cgroup is available.
"""
from __future__ import annotations

import errno
import functools
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "bpttlab-"
_NAME = re.compile(rf"^{PREFIX}(\d+)-(\d+)-\d+$")
_serial = itertools.count(1)


class CgroupError(OSError):
    """A cgroup could not be made, filled or removed."""


# -- where: the grader's own cgroups, read from /proc ------------------------------------------------------


def mounts(mountinfo: str) -> tuple[tuple[str, str] | None, dict[str, tuple[str, str]]]:
    """The cgroup file systems of a ``/proc/self/mountinfo`` text: the version 2 mount as (root, mount
    point), or None, and each version 1 controller's (root, mount point)."""
    v2, v1 = None, {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        root, point = fields[3], fields[4].replace("\\040", " ")
        fstype, _, options = line.split(" - ", 1)[1].split(" ")[:3]
        if fstype == "cgroup2" and v2 is None:
            v2 = (root, point)
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in ("memory", "pids"):
                    v1.setdefault(option, (root, point))
    return v2, v1


def membership(proc_cgroup: str) -> tuple[str | None, dict[str, str]]:
    """A process's cgroups from its ``/proc/PID/cgroup`` text: its version 2 path (line ``0::PATH``), or
    None, and its path in each version 1 hierarchy by controller."""
    v2, v1 = None, {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        for controller in parts[1].split(","):
            if controller:
                v1[controller] = parts[2]
    return v2, v1


def _beside(mount: tuple[str, str], own: str) -> str | None:
    """The folder, under a mount of (root, mount point), of the parent of the cgroup ``own`` (the root
    itself when ``own`` is the root); None when ``own`` is not under the mount's root."""
    root, point = mount
    if root != "/" and not (own == root or own.startswith(root.rstrip("/") + "/")):
        return None
    relative = own[len(root.rstrip("/")):] if root != "/" else own
    parent = os.path.dirname(relative.rstrip("/")) if relative.strip("/") else "/"
    return os.path.join(point, parent.lstrip("/")).rstrip("/") or "/"


@dataclass(frozen=True)
class Place:
    """Where the sandboxes' cgroups are made.

    Attributes:
        version: 1 or 2.
        memory: the folder that receives each sandbox's memory cgroup.
        pids: the folder of its pids cgroup (the same as ``memory`` in version 2), or None: no process
            limit by cgroup.
    """

    version: int
    memory: str
    pids: str | None

    def folders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for f in (self.memory, self.pids) if f is not None))

    def make(self, memory: int, processes: int | None) -> Cgroup:
        """A new, empty cgroup with these limits: ``memory`` bytes for all its processes together,
        ``processes`` processes and threads (when the pids controller is here)."""
        name = f"{PREFIX}{os.getpid()}-{start_time(os.getpid())}-{next(_serial)}"
        group = Cgroup(self.version, tuple(os.path.join(f, name) for f in self.folders()))
        try:
            for folder in group.folders:
                os.mkdir(folder)
            mem = group.folders[0]
            if self.version == 2:
                _write(mem, "memory.max", memory)
                _write(mem, "memory.swap.max", 0, optional=True)
                _write(mem, "memory.oom.group", 1, optional=True)
            else:
                _write(mem, "memory.limit_in_bytes", memory)
                _write(mem, "memory.memsw.limit_in_bytes", memory, optional=True)  # needs swap accounting
            if self.pids is not None and processes is not None:
                _write(group.folders[-1], "pids.max", processes)
        except OSError as exc:
            group.remove()
            raise CgroupError(f"cannot make a cgroup in {self.memory}: {exc.strerror or exc}") from exc
        return group


def _write(folder: str, name: str, value: int | str, optional: bool = False) -> None:
    path = os.path.join(folder, name)
    if optional and not os.path.exists(path):
        return
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError:
        if not optional:
            raise


def _controllers(folder: str, file: str) -> set[str]:
    try:
        return set(Path(folder, file).read_text().split())
    except OSError:
        return set()


def find_place(mountinfo: str, proc_cgroup: str) -> Place | str:
    """Where this process would make cgroups (the module docstring says why there), or why it cannot: a
    clause such as "no cgroup memory controller is mounted". Reads the two texts and the folders they
    name, and in version 2 enables the memory and pids controllers for new cgroups of the folder where
    they are not yet (allowed when it holds no process); the trial that the folder works is :func:`trial`."""
    v2_mount, v1_mounts = mounts(mountinfo)
    v2_own, v1_own = membership(proc_cgroup)
    if v2_mount is not None and v2_own is not None:
        base = _beside(v2_mount, v2_own)
        if base is not None and "memory" in _controllers(base, "cgroup.controllers"):
            if not {"memory", "pids"} <= _controllers(base, "cgroup.subtree_control"):
                for controller in ("memory", "pids"):  # possible where the parent holds no process itself
                    try:
                        _write(base, "cgroup.subtree_control", f"+{controller}")
                    except OSError:
                        pass
            enabled = _controllers(base, "cgroup.subtree_control")
            if "memory" in enabled:
                return Place(2, base, base if "pids" in enabled else None)
            return f"the memory controller is not enabled for new cgroups in {base}"
    if "memory" in v1_mounts and "memory" in v1_own:
        base = _beside(v1_mounts["memory"], v1_own["memory"])
        if base is None:
            return "the grader's memory cgroup is outside the mounted hierarchy"
        pids = _beside(v1_mounts["pids"], v1_own["pids"]) if "pids" in v1_mounts and "pids" in v1_own else None
        if pids is not None and not os.access(pids, os.W_OK):
            pids = None
        return Place(1, base, pids)
    return "no cgroup memory controller is mounted"


def trial(place: Place) -> str | None:
    """Make a cgroup at ``place``, move a new process into it as a sandbox's first process moves itself,
    remove it; None when all of that worked, else why not (a clause)."""
    try:
        group = place.make(64 * 2 ** 20, 8)
    except CgroupError as exc:
        return str(exc)
    try:
        done = subprocess.run([*launcher(group), sys.executable, "-I", "-S", "-c",
                               "print(open('/proc/self/cgroup').read())"],
                              capture_output=True, text=True, timeout=60)
        name = os.path.basename(group.folders[0])
        if done.returncode != 0 or name not in done.stdout:
            said = " ".join(done.stderr.split()[-8:]) or f"exit status {done.returncode}"
            return f"cannot move a process into a cgroup in {place.memory} ({said})"
        return None
    finally:
        group.remove()


#: A shell that moves itself into each folder named before ``--`` and then becomes the command after it
#: (``exec`` keeps its pid): a few milliseconds, where a Python launcher takes a hundred under load.
_ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"'


def launcher(group: Cgroup | None) -> list[str]:
    """The command prefix that puts the process it starts into ``group`` before that process runs
    anything (it then becomes the rest of the command line); none for no group."""
    return [] if group is None else ["/bin/sh", "-c", _ENTER, "bpttlab-enter-cgroup", *group.folders, "--"]


# -- one sandbox's cgroup ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cgroup:
    """A sandbox's cgroup: one folder (version 2) or one per hierarchy (version 1: memory first, then pids).

    Used as a context manager, it is removed (after killing what is left in it) at the end."""

    version: int
    folders: tuple[str, ...]

    def oom_kills(self) -> int:
        """How many processes the OOM killer has stopped in it because its memory limit was reached."""
        file = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = Path(self.folders[0], file).read_text()
        except OSError:
            return 0
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", 0))

    def processes(self) -> set[int]:
        """The ids of the processes in it."""
        found = set()
        for folder in self.folders:
            try:
                found.update(int(p) for p in Path(folder, "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in it, until none is left (or ``timeout`` seconds have passed, or a
        process is not this user's to kill)."""
        if self.version == 2:
            _write(self.folders[0], "cgroup.kill", 1, optional=True)
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    return
            time.sleep(0.02)

    def remove(self, timeout: float = 10.0) -> bool:
        """Kill what is left in it and remove it; True when it is gone. A cgroup is busy until its last
        process has been reaped, which takes a moment after the kill."""
        self.kill(timeout)
        deadline = time.monotonic() + timeout
        for folder in reversed(self.folders):
            while True:
                try:
                    os.rmdir(folder)
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        return False
                    time.sleep(0.05)
                else:
                    break
        return True

    def __enter__(self) -> Cgroup:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


# -- the process's choice and the leftovers of killed graders ----------------------------------------------


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, field 22 of /proc/PID/stat), or None when
    there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def sweep(place: Place) -> list[str]:
    """Remove the cgroups at ``place`` made by bpttlab processes that no longer run (a grader or a worker
    that was killed), killing what is left in them first; returns the folders removed."""
    removed = []
    for base in place.folders():
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            match = _NAME.match(name)
            if match and start_time(int(match[1])) != int(match[2]):
                group = Cgroup(place.version if base == place.memory else 1, (os.path.join(base, name),))
                if group.remove(timeout=5.0):
                    removed.append(group.folders[0])
    return removed


@dataclass(frozen=True)
class Enforcement:
    """How ``--memory`` is enforced in this process: per submission at ``place``, or per process only
    (``place`` is None) for the reason ``why``."""

    place: Place | None
    why: str = ""

    def __str__(self) -> str:
        if self.place is not None:
            return f"per submission (cgroup v{self.place.version})"
        return f"per process only: no cgroup available here ({self.why})"


@functools.cache
def enforcement() -> Enforcement:
    """How this process enforces the memory limit (decided once): a cgroup beside its own when one can be
    made and entered, after removing those left by killed graders; else per process only, and why."""
    if not sys.platform.startswith("linux"):
        return Enforcement(None, f"cgroups are Linux's, this is {sys.platform}")
    try:
        found = find_place(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        return Enforcement(None, f"cannot read /proc: {exc.strerror}")
    if isinstance(found, str):
        return Enforcement(None, found)
    sweep(found)
    failed = trial(found)
    if failed is not None:
        return Enforcement(None, f"{failed}; grade as root, or where your user has a delegated cgroup v2 subtree")
    return Enforcement(found)
