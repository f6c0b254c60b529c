"""The first program a sandbox runs: ``python -I -S confine.py LIMITS -- COMMAND...``.

It applies the limits of one submission to itself and then becomes COMMAND (``exec``), so that every
process of the submission inherits them:

* ``as``: the address space of each process (``RLIMIT_AS``), the memory limit: an allocation beyond it
  fails with ``MemoryError`` instead of exhausting the machine;
* ``nproc``: processes and threads of the sandbox's user (``RLIMIT_NPROC``), which stops a fork bomb;
* ``fsize``: the largest file a process may write (``RLIMIT_FSIZE``); ``SIGXFSZ`` is ignored, so a write
  past it fails with ``OSError: File too large`` instead of killing the kernel without a word;
* no core dumps.

``uid`` (when this program starts as root inside a sandbox without a user namespace) is the unprivileged
user to become first. Finally ``PR_SET_NO_NEW_PRIVS``: nothing COMMAND executes can gain privileges
(set-user-id programs, file capabilities); and COMMAND is killed when the process that started it dies.
When the environment names ``BPTTLAB_NUMBA_CACHE_SEED`` (a folder of compiled Numba kernels), it is copied
to ``NUMBA_CACHE_DIR`` first.

The limits are set here, inside the sandbox, and not by the grader before it starts bubblewrap: Linux
counts ``RLIMIT_NPROC`` per user namespace, and a limit that is in force when the namespace is created
also caps the grader's own user outside it. This file imports only the standard library.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


def confine(limits: dict) -> None:
    """Apply ``limits`` (keys ``as``, ``nproc``, ``fsize``, ``uid``; a missing key is no limit)."""
    uid = limits.get("uid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    for key, which in (("as", resource.RLIMIT_AS), ("nproc", resource.RLIMIT_NPROC),
                       ("fsize", resource.RLIMIT_FSIZE)):
        if limits.get(key) is not None:
            resource.setrlimit(which, (limits[key], limits[key]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an ignored signal stays ignored across exec
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    die_with_parent()  # after the change of user, which clears it


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: confine.py LIMITS_JSON -- COMMAND...")
    confine(json.loads(argv[0]))
    # A Jupyter kernel polls the pid it is given here and stops when it sees another parent: in a PID
    # namespace it sees none it knows. It dies with the grader all the same (PR_SET_PDEATHSIG, bwrap).
    os.environ.pop("JPY_PARENT_PID", None)
    seed = os.environ.pop("BPTTLAB_NUMBA_CACHE_SEED", None)
    if seed and os.environ.get("NUMBA_CACHE_DIR"):  # compiled kernels, into a cache this process may write
        shutil.copytree(seed, os.environ["NUMBA_CACHE_DIR"], dirs_exist_ok=True)
    os.execv(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
