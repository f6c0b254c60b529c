"""Hostile students graded in one run with honest ones (issue 13): nothing they try reaches the grader.

One ``bpttlab grade --jobs 2`` run, in the bubblewrap sandbox, grades the honest students of
tests/submissions (right and wrong answers, a crashing kernel), a right answer filed under a spreadsheet
formula as its name, and every attack of tests/hostile_students.py. Then, independently of what the
grader says about itself: the honest grades are exactly those of test_batch_grader's oracle; every
attack is recorded with its reason; the exit status is 0; the installed package, NumPy's folder, the
submissions and the teacher's folder are byte for byte unchanged; no process of the run is left, even
after the detached processes' delay; nothing connected to the port the test listens on.

A second, ``--no-sandbox`` run shows what that flag means: a notebook that kills its worker breaks the
pool, the pool is replaced, the culprit is found and recorded and the others are graded; every feedback
page says that there was no sandbox.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import nbformat
import numpy
import pytest

import bpttlab
import hostile_students as H
from bpttlab.grading.isolation import FIRST_UID
from bubblewrap_fixture import bubblewrap  # noqa: F401 - the fixture
from test_batch_grader import EXERCISES, SUBMISSIONS, command, expected_gradebook

SEED = 987_654_321_987
SECRET = "teacher-secret-6b1f0c"
TEACHER_ANSWER = "the teacher's model answer 41c9"
HONEST = ("correct", "wrong_answers", "kernel_crash_segfault")
FORMULA = "=2+5+cmd|' -c calc'!A0"
DELAY = 4  # seconds the detached processes wait before they act


def checksums(*folders: Path) -> dict[str, str]:
    """sha256 of every file under the folders (byte for byte, by path)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def leftovers(token: str) -> list[str]:
    """Processes of the run still alive: a sandbox's user, or the token in their environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            state = next(line for line in status.splitlines() if line.startswith("State:"))
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration):
            continue
        if "zombie" not in state and (uid >= FIRST_UID or token.encode() in environ):
            found.append(f"{entry.name} (uid {uid}): {cmdline[:120]}")
    return found


def grade(subs: list[Path], out: Path, token: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BPTTLAB_TEST_SECRET=SECRET, BPTTLAB_TEST_TOKEN=token)
    return subprocess.run([*command(), "grade", *map(str, subs), "--out", str(out), "--jobs", "2", "--timeout", "8",
                           "--notebook-timeout", "20", "--seed", str(SEED), "--kernel", "python3",
                           "--exercises", ",".join(EXERCISES), *extra],
                          capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, bubblewrap):  # noqa: F811 - the fixture
    root = tmp_path_factory.mktemp("hostile")
    subs, out, teacher = root / "submissions", root / "out", root / "teacher"
    subs.mkdir()
    teacher.mkdir()
    (teacher / "answers.txt").write_text(TEACHER_ANSWER)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    values = {"OUT": str(out), "SUBS": str(subs), "OTHER": str(subs / "correct.ipynb"), "TEACHER": str(teacher),
              "PORT": str(listener.getsockname()[1]), "DELAY": str(DELAY)}
    for name in HONEST:
        shutil.copy(SUBMISSIONS / f"{name}.ipynb", subs / f"{name}.ipynb")
    shutil.copy(SUBMISSIONS / "correct.ipynb", subs / f"{FORMULA}.ipynb")
    for name in H.HOSTILE:
        nbformat.write(H.notebook(name, values), subs / f"{name}.ipynb")
    watched = (Path(bpttlab.__file__).parent, Path(numpy.__file__).parent, subs, teacher)
    before = checksums(*watched)
    token = f"bpttlab-hostile-{os.getpid()}-{time.monotonic_ns()}"
    started = time.monotonic()
    proc = grade(sorted(subs.glob("*.ipynb")), out, token)
    seconds = time.monotonic() - started
    time.sleep(DELAY + 3)  # give the detached processes their chance to act
    connected = bool(select.select([listener], [], [], 0)[0])
    listener.close()
    return {"proc": proc, "out": out, "root": root, "subs": subs, "before": before, "after": checksums(*watched),
            "connected": connected, "left": leftovers(token), "seconds": seconds,
            "new_site_files": [p for p in Path(numpy.__file__).parent.parent.glob("sitecustomize*")]}


def rows(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["student"], r["exercise"]): r for r in json.loads((out / "gradebook.json").read_text())}


def record(out: Path, student: str) -> dict:
    return json.loads((out / "results" / f"{student}.json").read_text())


def test_the_run_ends_normally_in_reasonable_time(hostile):
    assert hostile["proc"].returncode == 0, hostile["proc"].stdout + hostile["proc"].stderr
    assert "sandbox: bubblewrap" in hostile["proc"].stdout
    assert hostile["seconds"] < 600


def test_honest_students_get_exactly_the_expected_grades(hostile):
    got = {key: (r["score"], r["diagnosis"]) for key, r in rows(hostile["out"]).items()}
    expected = expected_gradebook(SEED)
    for student in HONEST:
        for ex in EXERCISES:
            assert got[student, ex] == expected[student, ex], (student, ex)
    clean = "_2_5_cmd___-c_calc__A0"  # the formula, as a file-safe name
    assert all(got[clean, ex] == expected["correct", ex] for ex in EXERCISES)


def test_nothing_outside_the_output_folder_changed_and_nothing_is_left(hostile):
    assert hostile["after"] == hostile["before"]
    assert hostile["new_site_files"] == []
    assert not (hostile["root"] / "teacher" / "acted-after-grading").exists()
    assert hostile["left"] == []
    assert not hostile["connected"]
    for student in ("correct", "detached_process"):  # the grader's own results, still authentic
        assert record(hostile["out"], student)["score"] == {"correct": 5, "detached_process": 5}[student]


def test_every_attack_is_recorded_with_its_reason(hostile):
    r = rows(hostile["out"])

    def detail(student, ex):
        return r[student, ex]["diagnosis"], r[student, ex]["detail"]

    def notes(student):
        return " | ".join(record(hostile["out"], student)["notes"])

    assert detail("writes_output_folder", "grad-V")[0] == "raised"
    assert "No such file or directory" in detail("writes_output_folder", "grad-V")[1]
    assert "cells that raised an error: 3" in notes("writes_output_folder")
    assert detail("edits_installed_package", "grad-V")[0] == "raised"
    assert "Read-only file system" in detail("edits_installed_package", "grad-V")[1]
    assert "cells that raised an error: 3" in notes("edits_installed_package")
    for ex in EXERCISES:  # it killed everything it could see, then itself, before the exercise cells
        assert detail("kills_the_grader", ex)[0] == "kernel-died"
        assert "the kernel died while running cell 3" in detail("kills_the_grader", ex)[1]
    assert "the code ran out of memory: each process may use at most 2 GiB" in detail("memory_bomb", "grad-V")[1]
    assert "cell 3: the code ran out of memory" in notes("memory_bomb")
    assert "started too many processes or threads: at most 64" in detail("fork_bomb", "clip-norm")[1]
    assert "cell 3: the code started too many processes" in notes("fork_bomb")
    assert [detail("fork_bomb", ex)[0] for ex in ("grad-V", "grad-W")] == ["correct", "correct"]
    assert "ConnectionRefusedError" in detail("connects_to_the_teacher", "grad-V")[1]
    assert "FileNotFoundError" in detail("reads_other_submission", "grad-V")[1]
    assert "cell 3: the code wrote a file larger than the limit of 64 MiB" in notes("writes_a_huge_file")
    assert "cells that raised an error: 3" in notes("fills_the_graders_disk")
    for ex in EXERCISES:
        assert detail("notebook_too_long", ex)[0] == "notebook-timeout"
        assert "all its cells together ran longer than the 20 s a notebook may take" in detail("notebook_too_long", ex)[1]
        assert detail("detached_process", ex)[0] == "correct"
    assert detail("kernel_crash_segfault", "grad-W")[0] == "kernel-died"


def test_no_teacher_data_reaches_the_gradebook(hostile):
    diagnosis, text = rows(hostile["out"])["leaks_teacher_data", "grad-V"]["diagnosis"], \
        rows(hostile["out"])["leaks_teacher_data", "grad-V"]["detail"]
    assert diagnosis == "raised" and "FileNotFoundError" in text
    gradebook = (hostile["out"] / "gradebook.csv").read_text() + (hostile["out"] / "gradebook.json").read_text()
    other_code = "np.outer(V @ h + c - y, h)"
    for secret in (str(SEED), SECRET, TEACHER_ANSWER, other_code, "wrong_answers.ipynb"):
        assert secret not in gradebook


def test_the_gradebook_has_one_line_per_row_and_no_formula(hostile):
    text = (hostile["out"] / "gradebook.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    with open(hostile["out"] / "gradebook.csv", newline="", encoding="utf-8") as f:
        parsed = list(csv.reader(f))
    assert len(lines) == len(parsed) == 1 + len(rows(hostile["out"]))
    assert not any(line.startswith("fakescore") for line in lines)
    for row in parsed[1:]:
        assert all(not field.startswith(("=", "+", "-", "@", "\t", "\r")) for field in row), row
    message = rows(hostile["out"])["newline_in_message", "grad-V"]["detail"]
    assert "broken fakescore,grad-V,1.0,1.0,correct =cmd" in message


def test_a_changed_or_foreign_result_is_regraded_and_noted(hostile, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(hostile["out"], out)
    forged = record(out, "wrong_answers")
    forged["score"] = 5.0
    (out / "results" / "wrong_answers.json").write_text(json.dumps(forged))
    (out / "results" / "intruder.json").write_text(json.dumps({**forged, "student": "intruder"}))
    token = f"bpttlab-rerun-{os.getpid()}"
    subs = [hostile["subs"] / "wrong_answers.ipynb", hostile["subs"] / "correct.ipynb"]
    proc = grade(subs, out, token)
    assert proc.returncode == 0, proc.stderr
    assert "correct: already graded" in proc.stdout
    assert "wrong_answers: the stored result is not this grader's own" in proc.stdout and "it is regraded" in proc.stdout
    assert "intruder: the stored result is not this grader's own" in proc.stdout
    regraded = record(out, "wrong_answers")
    assert regraded["score"] == record(hostile["out"], "wrong_answers")["score"] < 5
    assert any("changed outside the grader" in n for n in regraded["notes"])
    students = {s for s, _ in rows(out)}
    assert "intruder" not in students and "wrong_answers" in students


def test_without_the_sandbox_a_killed_worker_is_replaced_and_the_run_is_marked(bubblewrap, tmp_path):  # noqa: F811
    subs = tmp_path / "subs"
    subs.mkdir()
    killer = H.notebook("kills_the_grader", {})
    killer.cells[2].source = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"  # its worker, no further
    nbformat.write(killer, subs / "kills_its_worker.ipynb")
    shutil.copy(SUBMISSIONS / "correct.ipynb", subs / "correct.ipynb")
    token = f"bpttlab-nosandbox-{os.getpid()}"
    out = tmp_path / "out"
    proc = grade(sorted(subs.glob("*.ipynb")), out, token, "--no-sandbox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = rows(out)
    assert all(r["correct", ex]["diagnosis"] == "correct" for ex in EXERCISES)
    assert all(r["kills_its_worker", ex]["diagnosis"] == "grader-killed" for ex in EXERCISES)
    assert json.loads((out / "grading.json").read_text())["isolated"] is False
    for page in (out / "feedback").glob("*.html"):
        assert "graded without a sandbox (the teacher passed --no-sandbox)" in page.read_text()
    assert leftovers(token) == []


def test_a_grader_killed_midway_leaves_no_process(bubblewrap, tmp_path):  # noqa: F811
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(H.notebook("detached_process", {"OUT": str(tmp_path), "TEACHER": str(tmp_path), "PORT": "9",
                                                   "DELAY": "60"}), subs / "detached_process.ipynb")
    nbformat.write(H.notebook("notebook_too_long", {}), subs / "notebook_too_long.ipynb")
    token = f"bpttlab-killed-{os.getpid()}"
    env = dict(os.environ, BPTTLAB_TEST_TOKEN=token)
    proc = subprocess.Popen([*command(), "grade", *map(str, sorted(subs.glob("*.ipynb"))), "--out", str(tmp_path / "o"),
                             "--jobs", "2", "--kernel", "python3", "--exercises", ",".join(EXERCISES)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len([p for p in leftovers(token) if "uid 19" in p]) < 10 and time.monotonic() < deadline:
        time.sleep(0.2)  # until the detached processes run
    assert len([p for p in leftovers(token) if "uid 19" in p]) >= 10
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while leftovers(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(token) == []
