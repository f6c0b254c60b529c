"""The batch grader run by an unprivileged user, end to end (issue 13): the path a teacher's laptop takes.

A grader that is not root sandboxes each submission in an unprivileged user namespace (bubblewrap's
``--unshare-user``) instead of switching to a sandbox user of its own. Here the real ``bpttlab grade``
CLI runs that way: as the test's own user when the test is not root, else as a fresh user id in a
private mount namespace that makes the interpreter reachable (tests/unprivileged.py). One run,
``--jobs 2``, grades honest students, a probe that reports where it runs, and hostile students; a
second run finds a result changed outside the grader and regrades it. Checked independently of what
the grader says about itself: the honest grades are test_batch_grader's oracle; the kernel and the
graded function ran in a user namespace of their own that maps one user id, and saw neither the
teacher's home, the key, the seed nor the output folder; a notebook that kills everything it can see
only kills itself; a fork bomb is held by the process limit while another submission is graded beside
it; nothing connected to the port the test listens on; the results are signed with a key only the
grader's user can read; no process of that user is left, even after the detached processes' delay;
the exit status is 0.

Where the unprivileged run cannot be made (no unshare/setpriv, user namespaces disabled) the tests are
skipped with the reason, and fail in CI (the environment variable ``CI`` is set).
"""
from __future__ import annotations

import ast
import json
import os
import select
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import hostile_students as H
import unprivileged
from bpttlab.grading.signing import KEY_FILE, authentic
from bubblewrap_fixture import bubblewrap  # noqa: F401 - the fixture
from test_batch_grader import EXERCISES, SUBMISSIONS, command, expected_gradebook
from test_hostile_batch import record, rows
from unprivileged import User, unprivileged_user, why_not

SEED = 1_357_924_680
HONEST = ("correct", "wrong_answers")
ATTACKS = ("kills_the_grader", "fork_bomb", "connects_to_the_teacher", "detached_process",
           "fills_the_graders_disk")
PROBE = "reports_where_it_runs"
DELAY = 2  # seconds the detached processes wait before they act
#: /proc/self/uid_map of a process in the machine's own user namespace.
IDENTITY_MAP = "0 0 4294967295"
#: The probe: cell 3 fails outside a user namespace, cell 4 fails inside one that maps a single user id
#: (as it must), cell 5 fails to write into the one folder it shares with the grader (the connection
#: file's; as the folder's owner, it first tries to make it writable again); its graded function reports
#: what it sees of the grader's files, and tries to write one.
PROBES = {PROBE: (
    ['uid_map = " ".join(open("/proc/self/uid_map").read().split())\n'
     f'assert uid_map != "{IDENTITY_MAP}", "the kernel runs in the machine\'s own user namespace"',
     'assert not uid_map.endswith(" 1"), "the kernel runs in a user namespace that maps one user id"',
     'import os, sys\nfolder = os.path.dirname(sys.argv[sys.argv.index("-f") + 1])  # the connection file\'s\n'
     'os.chmod(folder, 0o700)\nopen(os.path.join(folder, "filler"), "wb").write(bytes(2 ** 20))'],
    {"grad-V": H.grad_V(
        'import os\nfound = {"map": " ".join(open("/proc/self/uid_map").read().split())}\n'
        'for name, path in (("home", "__HOME__"), ("key", "__OUT__/.grader-key"), ("seed", "__OUT__/grading.json")):\n'
        '    try:\n        os.stat(path)\n        found[name] = "seen"\n'
        '    except OSError as exc:\n        found[name] = type(exc).__name__\n'
        'try:\n    open("__OUT__/results/correct.json", "w").write("{}")\n    found["write"] = "done"\n'
        'except OSError as exc:\n    found["write"] = type(exc).__name__\n'
        'raise RuntimeError(repr(found))')})}


#: Run as the user, in a folder of the test's: compile one kernel, then lay out the sandbox's Numba cache
#: as the grader does.
SEED_SCRIPT = """\
import json, tempfile
from pathlib import Path
from bpttlab.cells import kernels
from bpttlab.grading.notebook_run import numba_cache_copy, numba_cache_of
kernels.tanh(0.5)
cache = Path(kernels.tanh._cache._cache_path)
seed = Path(numba_cache_copy(tempfile.mkdtemp(dir=Path.cwd())))  # in the test's folder
print(json.dumps({"cache": str(cache), "found": str(numba_cache_of(Path(kernels.__file__).parent)),
                  "cached": sorted(p.name for p in cache.glob("kernels.tanh-*")),
                  "seeded": sorted(p.name for p in seed.rglob("kernels.tanh-*"))}))
"""


def refusal(reason: str):
    """Skip with ``reason``, or fail in CI, where the unprivileged grader must be tested."""
    if os.environ.get("CI"):
        pytest.fail(f"the grader must be tested as an unprivileged user in CI, but {reason}", pytrace=False)
    pytest.skip(reason)


def environment(user: User, home: Path, token: str) -> dict[str, str]:
    """The grader's environment: the test's own, or for a fresh user a teacher's (PATH, locale, a HOME
    of its own). ``token`` ends PYTHONPATH (a folder that does not exist), which the grader passes on to
    every sandbox, so that every process of the run can be told by its environment. The grader's engine
    runs uncompiled (``BPTTLAB_COMPILE=off``): compiling its kernels for a fresh user costs a third of the
    run's time and is not what is tested here (the sandbox's Numba cache is, below)."""
    base = dict(os.environ) if not user.switch else {
        k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    if user.switch:
        base.update(HOME=str(home), USER="teacher", LOGNAME="teacher")
    base["BPTTLAB_COMPILE"] = "off"
    base["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), f"/{token}") if p)
    return base


def hand_over(user: User, folder: Path) -> None:
    """Give ``folder`` and everything in it to ``user`` (a fresh user only; the test's own owns it)."""
    if not user.switch:
        return
    for path in (folder, *folder.rglob("*")):
        os.chown(path, user.uid, user.gid, follow_symlinks=False)


def grade(user: User, work: Path, subs: list[Path], out: Path, token: str) -> subprocess.CompletedProcess:
    argv = [*command(), "grade", *map(str, subs), "--out", str(out), "--jobs", "2", "--timeout", "8",
            "--notebook-timeout", "30", "--seed", str(SEED), "--kernel", "python3", "--exercises", ",".join(EXERCISES)]
    return subprocess.run(user.command(argv, writable=(work,)), capture_output=True, text=True, timeout=600,
                          env=environment(user, work / "home", token), cwd=work)


def processes_of(uid: int | None, token: str) -> list[str]:
    """Live processes of user ``uid`` (None: any), or with ``token`` in their environment."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            owner = int(status["Uid"].split()[0])
            mine = owner == uid or token.encode() in (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, KeyError, ValueError):
            continue
        if mine and "zombie" not in status["State"]:
            found.append(f"{entry.name} (uid {owner}): {cmdline[:120]}")
    return found


@pytest.fixture(scope="module")
def user(bubblewrap, tmp_path_factory):  # noqa: F811 - the fixture
    """The unprivileged user the grader runs as; its bubblewrap sandbox must work."""
    who = unprivileged_user()
    why = why_not(who)
    if why is None:
        home = tmp_path_factory.mktemp("as_user_home")
        hand_over(who, home)
        probe = [sys.executable, "-c", "from bpttlab.grading.isolation import Bubblewrap, Limits\n"
                                       "Bubblewrap(Limits()).probe()"]
        done = subprocess.run(who.command(probe, writable=(home,)), capture_output=True, text=True, timeout=120,
                              env=environment(who, home, "probe"))
        if done.returncode != 0:
            why = (f"bubblewrap cannot make a sandbox as uid {who.uid}: "
                   + " ".join(done.stderr.split()[-60:]))
    if why is not None:
        refusal(why)
    return who


@pytest.fixture(scope="module")
def graded(tmp_path_factory, user):
    work = tmp_path_factory.mktemp("as_user")
    subs, out, home = work / "submissions", work / "out", work / "home"
    subs.mkdir()
    home.mkdir()
    (home / "notes.txt").write_text("the teacher's own file")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    values = {"OUT": str(out), "HOME": str(home), "TEACHER": str(home), "PORT": str(listener.getsockname()[1]),
              "DELAY": str(DELAY)}
    for name in HONEST:
        shutil.copy(SUBMISSIONS / f"{name}.ipynb", subs / f"{name}.ipynb")
    for name in ATTACKS:
        nbformat.write(H.notebook(name, values), subs / f"{name}.ipynb")
    nbformat.write(H.notebook(PROBE, values, PROBES), subs / f"{PROBE}.ipynb")
    hand_over(user, work)
    work.chmod(0o700)
    token = f"bpttlab-as-user-{os.getpid()}-{time.monotonic_ns()}"
    started = time.monotonic()
    proc = grade(user, work, sorted(subs.glob("*.ipynb")), out, token)
    seconds = time.monotonic() - started
    time.sleep(DELAY + 2)  # give the detached processes their chance to act
    connected = bool(select.select([listener], [], [], 0)[0])
    listener.close()
    return {"proc": proc, "work": work, "subs": subs, "out": out, "home": home, "seconds": seconds,
            "connected": connected, "left": processes_of(user.uid if user.switch else None, token)}


def test_the_run_ends_normally_with_the_sandbox(graded):
    assert graded["proc"].returncode == 0, graded["proc"].stdout + graded["proc"].stderr
    assert "sandbox: bubblewrap" in graded["proc"].stdout


def test_honest_students_get_exactly_the_expected_grades(graded):
    got = {key: (r["score"], r["diagnosis"]) for key, r in rows(graded["out"]).items()}
    expected = expected_gradebook(SEED)
    assert {(s, ex): got[s, ex] for s in HONEST for ex in EXERCISES} == {
        (s, ex): expected[s, ex] for s in HONEST for ex in EXERCISES}
    for ex in EXERCISES:  # the detached processes did nothing to their own submission's grading
        assert got["detached_process", ex] == expected["correct", ex]


def test_the_sandboxes_ran_in_a_user_namespace_that_sees_nothing_of_the_grader(graded, user):
    # the kernel: not in the machine's user namespace (cell 3 ran through), in one that maps one id (cell 4),
    # and it could not write into the connection file's folder (cell 5)
    assert "cells that raised an error: 4, 5" in record(graded["out"], PROBE)["notes"]
    detail = rows(graded["out"])[PROBE, "grad-V"]["detail"]
    found = ast.literal_eval(detail.split("RuntimeError: ", 1)[1].rsplit(" (line", 1)[0])
    assert found.pop("map").split()[::2] == [str(user.uid), "1"]  # the graded function: one id mapped
    assert found == {"home": "FileNotFoundError", "key": "FileNotFoundError", "seed": "FileNotFoundError",
                     "write": "FileNotFoundError"}


def test_hostile_submissions_are_held(graded):
    r = rows(graded["out"])
    for ex in EXERCISES:  # it killed everything it could see: only its own sandbox
        assert r["kills_the_grader", ex]["diagnosis"] == "kernel-died"
        assert "the kernel died while running cell 3" in r["kills_the_grader", ex]["detail"]
    assert "started too many processes or threads: at most 64" in r["fork_bomb", "clip-norm"]["detail"]
    assert "cell 3: the code started too many processes" in " | ".join(record(graded["out"], "fork_bomb")["notes"])
    assert [r["fork_bomb", ex]["diagnosis"] for ex in ("grad-V", "grad-W")] == ["correct", "correct"]
    assert "ConnectionRefusedError" in r["connects_to_the_teacher", "grad-V"]["detail"]
    assert not graded["connected"]
    assert record(graded["out"], "correct")["score"] == 5  # not the probe's "{}"
    assert not (graded["home"] / "acted-after-grading").exists()
    assert (graded["home"] / "notes.txt").read_text() == "the teacher's own file"
    assert "cells that raised an error: 3" in " | ".join(record(graded["out"], "fills_the_graders_disk")["notes"])


def test_results_are_signed_with_a_key_only_the_grader_can_read(graded, user):
    key_file = graded["out"] / KEY_FILE
    info = key_file.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.uid, 0o600)
    key = bytes.fromhex(key_file.read_text())
    results = sorted((graded["out"] / "results").glob("*.json"))
    assert len(results) == len(HONEST) + len(ATTACKS) + 1
    for path in results:
        assert path.stat().st_uid == user.uid
        assert authentic(json.loads(path.read_text()), key), path.name


def test_no_process_of_the_run_is_left(graded):
    assert graded["left"] == []


def test_a_changed_result_is_regraded(graded, user):
    out = graded["work"] / "out-again"
    shutil.copytree(graded["out"], out)
    hand_over(user, out)
    forged = record(out, "wrong_answers")
    forged["score"] = 5.0
    (out / "results" / "wrong_answers.json").write_text(json.dumps(forged))
    token = f"bpttlab-as-user-rerun-{os.getpid()}"
    subs = [graded["subs"] / "wrong_answers.ipynb", graded["subs"] / "correct.ipynb"]
    proc = grade(user, graded["work"], subs, out, token)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "correct: already graded" in proc.stdout
    assert "wrong_answers: the stored result is not this grader's own" in proc.stdout
    regraded = record(out, "wrong_answers")
    assert regraded["score"] == record(graded["out"], "wrong_answers")["score"] < 5
    assert any("changed outside the grader" in n for n in regraded["notes"])
    assert processes_of(user.uid if user.switch else None, token) == []


def test_the_sandbox_gets_the_kernels_that_the_graders_numba_compiled(user, tmp_path_factory):
    """The sandbox's Numba cache is seeded from where the grader's own Numba keeps it: for a user who may
    not write the package, that is the user's cache folder, not the package's __pycache__."""
    home = tmp_path_factory.mktemp("as_user_numba")
    hand_over(user, home)
    done = subprocess.run(user.command([sys.executable, "-c", SEED_SCRIPT], writable=(home,)), capture_output=True,
                          text=True, timeout=300, env=environment(user, home, "numba"), cwd=home)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["found"] == seen["cache"]
    if user.switch:  # a fresh user may not write the package's folder
        assert Path(seen["cache"]).is_relative_to(home)
    assert seen["cached"] and seen["seeded"] == seen["cached"]


def test_without_the_tools_to_drop_root_the_reason_says_which(monkeypatch):
    monkeypatch.setattr(unprivileged.shutil, "which", lambda tool: None if tool == "setpriv" else f"/usr/bin/{tool}")
    why = why_not(User(unprivileged.FIRST_TEST_UID, unprivileged.FIRST_TEST_UID, switch=True))
    assert why.startswith("the test runs as root and needs util-linux's setpriv to run the grader as an "
                          "unprivileged user")


def test_in_ci_a_run_that_cannot_be_made_fails_instead_of_skipping(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must be tested as an unprivileged user in CI, but no setpriv"):
        refusal("no setpriv")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no setpriv"):
        refusal("no setpriv")
