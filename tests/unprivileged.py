"""Running a command as an unprivileged user, so that a test run by root can try what a teacher's
account does (the batch grader without root: tests/test_grading_as_user.py).

Not root: the command runs as it is, as the test's own user. Root: the command runs as a fresh user id
(:func:`unprivileged_user`, far above any account of the machine), without capabilities,
in a private mount namespace (``unshare --mount --propagation private``) in which everything the
command needs is reachable by that user: the Python interpreter and every folder of ``sys.path``, the
repository, and the folders the test hands over. The rule: a needed path one of whose folders others
may not enter (``/root``, mode 0700, holding pyenv's Python; pytest's ``/tmp/pytest-of-root``) is hidden
under an empty tmpfs mounted over the highest such folder, and each needed path under it is mounted back
at its own place (read-only, or writable for the test's work folder). Nothing else of the hidden folder
is visible, and nothing outside the namespace changes. The mounts are made by this file run as a
program (root, inside the new namespace), which then becomes the user with util-linux's ``setpriv``
(``--reuid --regid --clear-groups --inh-caps=-all --bounding-set=-all``) and executes the command.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Fresh user ids start here: above any real account, below the grader's own sandbox users
#: (bpttlab.grading.isolation.FIRST_UID), so that neither is mistaken for the other.
FIRST_TEST_UID = 1_600_000_000
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class User:
    """Who runs the command: ``uid``/``gid``; ``switch`` when the test is root and must drop to them."""

    uid: int
    gid: int
    switch: bool

    def command(self, argv: list[str], writable: tuple[Path, ...] = ()) -> list[str]:
        """The command line that runs ``argv`` as this user, with ``writable`` folders (which the test
        gave to the user) reachable and writable."""
        if not self.switch:
            return list(argv)
        hidden, shown = reachable_layout([*needed_paths(), *writable])
        spec = {"uid": self.uid, "gid": self.gid, "hidden": hidden,
                "shown": [[path, any(_under(path, os.path.realpath(w)) for w in writable)] for path in shown]}
        return ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-I", "-S", __file__,
                json.dumps(spec), "--", *argv]


def unprivileged_user() -> User:
    """The test's own user when it is not root; else a fresh user id (and group id) for this process."""
    if os.geteuid() != 0:
        return User(os.getuid(), os.getgid(), switch=False)
    uid = FIRST_TEST_UID + os.getpid()
    return User(uid, uid, switch=True)


def why_not(user: User) -> str | None:
    """Why ``user`` cannot be made here (a sentence), or None."""
    if not user.switch:
        return None
    if not sys.platform.startswith("linux"):
        return f"switching to an unprivileged user needs Linux namespaces, not {sys.platform}"
    missing = [tool for tool in ("unshare", "setpriv", "mount") if shutil.which(tool) is None]
    if missing:
        return (f"the test runs as root and needs util-linux's {', '.join(missing)} to run the grader as an "
                "unprivileged user (Debian: apt-get install util-linux mount)")
    for path in needed_paths():
        if not _others_may_read(path):
            return (f"{path} is needed by the grader but other users may not read it (mode "
                    f"{stat.filemode(os.stat(path).st_mode)}); make it world-readable or run the test as a "
                    "normal user")
    done = subprocess.run(user.command(["id", "-u"]), capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or done.stdout.strip() != str(user.uid):
        said = " ".join((done.stdout + done.stderr).split())[:300]
        return f"running a command as uid {user.uid} in a private mount namespace failed: {said}"
    return None


def needed_paths() -> list[str]:
    """What the grader needs to read: the interpreter (through its links), its prefixes, every folder of
    ``sys.path`` and ``PYTHONPATH``, and the repository (the package and the test's submissions)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(REPO),
             os.path.dirname(os.path.abspath(sys.executable)), os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p)
    paths.update(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    return sorted(os.path.realpath(p) for p in paths if os.path.exists(p))


def reachable_layout(paths: list[str]) -> tuple[list[str], list[str]]:
    """(folders to hide under a tmpfs, paths to mount back in them) that make ``paths`` reachable by
    any user: for each path with a folder above it that others may not enter, the highest such folder
    is hidden and the path shown again."""
    hidden, shown = set(), set()
    for path in (os.path.realpath(p) for p in paths):
        blocked = [a for a in _ancestors(path) if not os.stat(a).st_mode & stat.S_IXOTH]
        if blocked:
            hidden.add(blocked[0])
            shown.add(path)
    hidden = {h for h in hidden if not any(_under(h, o) and h != o for o in hidden)}
    shown = {p for p in shown if not any(_under(p, o) and p != o for o in shown)}
    return sorted(hidden), sorted(shown, key=lambda p: p.count("/"))


def _ancestors(path: str) -> list[str]:
    """The folders above ``path``, from the top down ("/" excluded)."""
    parts = Path(path).parts[1:-1]
    return [os.path.join("/", *parts[:i + 1]) for i in range(len(parts))]


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _others_may_read(path: str) -> bool:
    mode = os.stat(path).st_mode
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def _mount_and_switch(spec: dict, argv: list[str]) -> None:
    """Inside the new mount namespace, as root: hide, show, become the user, execute ``argv``."""
    handles = {path: os.open(path, os.O_PATH) for path, _ in spec["shown"]}  # before anything is hidden
    for folder in spec["hidden"]:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", folder], check=True)
    for path, writable in spec["shown"]:
        if os.path.isdir(f"/proc/self/fd/{handles[path]}"):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            Path(path).touch()
        subprocess.run(["mount", "--no-canonicalize", "--bind", *([] if writable else ["-o", "ro"]),
                        f"/proc/{os.getpid()}/fd/{handles[path]}", path], check=True)
    for handle in handles.values():
        os.close(handle)
    os.execvp("setpriv", ["setpriv", f"--reuid={spec['uid']}", f"--regid={spec['gid']}", "--clear-groups",
                          "--inh-caps=-all", "--bounding-set=-all", "--", *argv])


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        raise SystemExit("usage: unprivileged.py SPEC_JSON -- COMMAND...")
    _mount_and_switch(json.loads(sys.argv[1]), sys.argv[3:])
