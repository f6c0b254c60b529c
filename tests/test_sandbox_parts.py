"""The parts of the grading sandbox one at a time: what a sandboxed process sees and may do, its limits,
the refusal where no sandbox can be made, signed results, clean gradebook fields and student names.

The whole grader against hostile notebooks is in test_hostile_batch.py.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import bpttlab
from bpttlab import cli
from bpttlab.grading.gradebook import clean_field, clean_name, student_names
from bpttlab.grading.isolation import (FIRST_UID, SCRATCH, Bubblewrap, Limits, SandboxUnavailable, Unconfined,
                                       limit_hit, sandbox_environment)
from bpttlab.grading.signing import KEY_FILE, authentic, grader_key, signed
from bubblewrap_fixture import bubblewrap  # noqa: F401 - the fixture

PROBE = r"""
import json, os, resource, socket, sys
seen = {"uid": os.getuid(), "cwd": os.getcwd(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "limits": [resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE)],
        "env": sorted(os.environ), "visible": {p: os.path.exists(p) for p in sys.argv[1:]},
        "interfaces": sorted(name for _, name in socket.if_nameindex())}
try:
    open(os.path.join(os.path.dirname(json.__file__), "pwned.py"), "w")
    seen["wrote_stdlib"] = True
except OSError as exc:
    seen["wrote_stdlib"] = exc.strerror
with open("scratch.txt", "w") as f:
    seen["scratch"] = f.write("ok")
print(json.dumps(seen))
"""


def sandboxed(isolation, *visible: str, home: str = SCRATCH) -> dict:
    argv = isolation.command([sys.executable, "-I", "-c", PROBE, *visible])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=sandbox_environment(home),
                          cwd=isolation.home(home))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_sandboxed_process_sees_only_the_environment_and_its_scratch(bubblewrap, tmp_path):  # noqa: F811
    teacher = tmp_path / "seed.json"
    teacher.write_text("{}")
    limits = Limits(memory=1536 * 2 ** 20, processes=32, file_size=8 * 2 ** 20)
    seen = sandboxed(Bubblewrap(limits), str(teacher), str(tmp_path), str(Path(bpttlab.__file__)), "/root", "/home",
                     "/etc/shadow", "/var", "/work/main/.git")
    assert seen["visible"] == {str(teacher): False, str(tmp_path): False, str(Path(bpttlab.__file__)): True,
                               "/root": "/root" in sys.base_prefix, "/home": False, "/etc/shadow": False,
                               "/var": False, "/work/main/.git": False}
    assert seen["wrote_stdlib"] == "Read-only file system"
    assert seen["scratch"] == 2 and seen["cwd"] == SCRATCH
    assert seen["interfaces"] == ["lo"]  # no network but its own loopback
    assert seen["pids"][0] == 1 and len(seen["pids"]) <= 3  # its own PID namespace: bwrap, the probe
    assert seen["limits"] == [limits.memory, limits.processes, limits.file_size]
    if os.geteuid() == 0:
        assert seen["uid"] >= FIRST_UID


def test_the_sandbox_gets_none_of_the_graders_environment_variables(bubblewrap, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-pass")
    seen = sandboxed(Bubblewrap(Limits()))
    assert "AWS_SECRET_ACCESS_KEY" not in seen["env"]
    assert set(seen["env"]) <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "HOME", "TMPDIR",
                                "JUPYTER_RUNTIME_DIR", "MPLBACKEND", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "PWD"}


def test_without_the_sandbox_the_limits_still_apply(tmp_path):
    limits = Limits(memory=1536 * 2 ** 20, file_size=8 * 2 ** 20)
    seen = sandboxed(Unconfined(limits), home=str(tmp_path))
    assert seen["limits"][0] == limits.memory and seen["limits"][2] == limits.file_size
    assert (tmp_path / "scratch.txt").read_text() == "ok"


def test_a_connection_to_the_graders_machine_is_refused(bubblewrap):  # noqa: F811
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    code = f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\nexcept OSError as e:\n" \
           f"    print(type(e).__name__)"
    done = subprocess.run(Bubblewrap(Limits()).command([sys.executable, "-I", "-c", code]), capture_output=True,
                          text=True, timeout=60, env=sandbox_environment(SCRATCH))
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert done.stdout.strip() == "ConnectionRefusedError"


def test_where_no_sandbox_can_be_made_grade_stops_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap\), or pass --no-sandbox"):
        Bubblewrap(Limits()).probe()
    status = cli.main(["grade", str(Path(__file__).parent / "submissions" / "correct.ipynb"), "--out",
                       str(tmp_path / "out"), "--exercises", "grad-V", "--kernel", "python3"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("bpttlab grade: error: bubblewrap is not installed")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arg, value, message", [
    ("--memory", "12", "expected a size of at least 1M such as 512M or 2G, got '12'"),
    ("--memory", "lots", "expected a size of at least 1M"),
    ("--file-size", "0.5M", "expected a size of at least 1M"),
    ("--processes", "0", "expected a positive int, got '0'"),
    ("--notebook-timeout", "0", "expected a positive float, got '0'"),
])
def test_bad_limits_exit_2_with_the_reason(tmp_path, capsys, arg, value, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["grade", "x.ipynb", "--out", str(tmp_path), arg, value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("message, words", [
    ("MemoryError: Unable to allocate 16.0 GiB", "ran out of memory: each process may use at most 2 GiB"),
    ("BlockingIOError: [Errno 11] Resource temporarily unavailable", "at most 64 may run at once"),
    ("OSError: [Errno 27] File too large", "larger than the limit of 64 MiB"),
    ("OSError: [Errno 28] No space left on device", "holds at most 256 MiB"),
    ("ValueError: shapes (3,) and (4,) not aligned", None),
])
def test_a_limit_that_was_hit_is_named_in_words(message, words):
    said = limit_hit(message, Limits())
    assert (said is None) if words is None else (words in said)


# -- signed results -----------------------------------------------------------------------------------


def test_results_are_signed_with_a_key_only_the_grader_reads(tmp_path):
    key = grader_key(tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert grader_key(tmp_path) == key and len(key) == 32
    record = {"student": "ann", "score": 1.5, "exercises": [{"score": 1.5}]}
    good = signed(record, key)
    assert authentic(good, key)
    assert not authentic(record, key)  # no signature
    assert not authentic({**good, "score": 5.0}, key)
    assert not authentic({**good, "exercises": [{"score": 5.0}]}, key)
    assert not authentic(signed(record, b"k" * 32), key)  # another grader's key
    assert not authentic(["not", "a", "record"], key)
    (tmp_path / KEY_FILE).write_text("garbage\n")
    with pytest.raises(ValueError, match="is not a key made by bpttlab grade"):
        grader_key(tmp_path)


# -- gradebook fields and names -------------------------------------------------------------------------


@pytest.mark.parametrize("text, clean", [
    ("plain words", "plain words"),
    ("line one\nfakescore,grad-V,1,1,correct", "line one fakescore,grad-V,1,1,correct"),
    ("a\r\nb\x00c\x1bd\x7fe\u2028f\u2029g\x85h", "a  b c d e f g h"),
    ("=2+5+cmd|' /C calc'!A0", "'=2+5+cmd|' /C calc'!A0"),
    ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "' =1"), ("\r=1", "' =1"),
    ("a = b", "a = b"),
])
def test_gradebook_fields_hold_no_control_characters_or_formulas(text, clean):
    assert clean_field(text) == clean


def test_student_names_are_safe_and_unique():
    paths = [Path("a/=2+5+cmd|' -c calc'!A0.ipynb"), Path("b/ann smith.ipynb"), Path("c/ann_smith.ipynb"),
             Path("d/..hidden.ipynb"), Path("e/Zoë.ipynb"), Path("f/-rf.ipynb")]
    names = student_names(paths)
    assert list(names.values()) == ["_2_5_cmd___-c_calc__A0", "ann_smith", "ann_smith-2", "hidden", "Zoë", "rf"]
    assert clean_name("x" * 300 + ".ipynb") == "x" * 100
    with pytest.raises(ValueError, match="two submissions belong to student 'ann_smith'"):
        student_names([Path("a/ann_smith.ipynb"), Path("b/ann_smith.ipynb")])


def test_a_crash_in_the_sandboxed_function_child_is_named_by_its_signal(bubblewrap):  # noqa: F811
    from bpttlab.grading.sandbox import Job, Sandbox

    calls = [{"x": 1.0}]
    jobs = [Job("segfaults", "import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n", "f", calls),
            Job("exits", "import os\ndef f(x):\n    os._exit(3)\n", "f", calls),
            Job("fine", "def f(x):\n    return 2 * x\n", "f", calls)]
    runs = Sandbox(10.0, Bubblewrap(Limits())).run(jobs)
    assert "killed by SIGSEGV" in runs["segfaults"].reason
    assert "exited with status 3" in runs["exits"].reason
    assert runs["fine"].outcomes[0]["value"] == 2.0
