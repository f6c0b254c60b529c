"""``--memory`` holds for a submission as a whole: all processes of its sandbox together (issue 13).

The parsing of the grader's cgroups (:mod:`bpttlab.grading.cgroups`) is tested against fake cgroup trees
in temporary folders. Everything about enforcement runs against the real kernel: submissions start
several processes, each allocating and touching less than ``--memory``, together more, and must be
stopped with the memory reason while an honest submission in the same run gets exactly its oracle grade
(test_batch_grader's); afterwards no cgroup of the run is left, a grader killed mid-run leaves a cgroup
that the next run removes, and grading.json records the enforcement that the kernel's mounts call for.

Where no cgroup can be made the enforcement tests skip with the reason, except in CI (``CI`` set), where
they fail: CI runs as root on a machine with a writable memory controller.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from bpttlab.grading import cgroups
from bpttlab.grading.batch import feedback_page, record_settings
from bpttlab.grading.isolation import Bubblewrap, Limits, Unconfined, memory_exceeded
from bpttlab.grading.sandbox import Job, Sandbox
from bubblewrap_fixture import bubblewrap  # noqa: F401 - the fixture
from test_batch_grader import EXERCISES, SUBMISSIONS, command, expected_gradebook

MiB = 2 ** 20
MEMORY = 1024 * MiB  # the --memory of these tests: the kernel fits in it, four hogs together do not
HOG = 300 * MiB      # what each hog allocates and touches: less than MEMORY
SEED = 424_242

#: Python code that starts four processes that each allocate and touch HOG bytes and hold them a second.
HOGS = f"""\
import subprocess, sys
hog = "import time; b = bytearray({HOG}); time.sleep(1.5)"
hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(4)]
codes = [p.wait() for p in hogs]"""


# -- the parsing, on fake cgroup trees -----------------------------------------------------------------------


def tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_a_unified_v2_tree_gives_the_parent_of_the_graders_cgroup(tmp_path):
    user = "user.slice/user-1000.slice/user@1000.service/app.slice"
    tree(tmp_path, {f"{user}/cgroup.controllers": "cpu memory pids\n",
                    f"{user}/cgroup.subtree_control": "memory pids\n", f"{user}/term.scope/cgroup.procs": "123\n"})
    mountinfo = f"29 23 0:26 / {tmp_path} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    place = cgroups.find_place(mountinfo, f"0::/{user}/term.scope\n")
    assert place == cgroups.Place(2, str(tmp_path / user), str(tmp_path / user))


def test_v2_without_memory_for_new_cgroups_says_so(tmp_path):
    tree(tmp_path, {"a/cgroup.controllers": "memory pids\n"})
    (tmp_path / "a" / "cgroup.subtree_control").mkdir()  # a parent whose controllers cannot be changed
    mountinfo = f"29 23 0:26 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    assert cgroups.find_place(mountinfo, "0::/a/b\n") == \
        f"the memory controller is not enabled for new cgroups in {tmp_path / 'a'}"


def test_a_hybrid_tree_without_memory_in_v2_uses_v1_memory_and_pids(tmp_path):
    tree(tmp_path, {"unified/cgroup.controllers": "\n", "memory/batch/cgroup.procs": "", "pids/cgroup.procs": ""})
    mountinfo = (f"31 23 0:28 / {tmp_path} rw - tmpfs tmpfs rw\n"
                 f"35 31 0:32 / {tmp_path}/memory rw,relatime - cgroup cgroup rw,memory\n"
                 f"39 31 0:36 / {tmp_path}/pids rw,relatime - cgroup cgroup rw,pids\n"
                 f"41 31 0:38 / {tmp_path}/unified rw,relatime - cgroup2 cgroup2 rw\n")
    membership = "8:pids:/\n4:memory:/batch/job-7\n0::/\n"
    place = cgroups.find_place(mountinfo, membership)
    assert place == cgroups.Place(1, str(tmp_path / "memory" / "batch"), str(tmp_path / "pids"))
    assert place.folders() == (str(tmp_path / "memory" / "batch"), str(tmp_path / "pids"))


def test_a_mount_of_another_subtree_and_no_memory_controller_are_reasons(tmp_path):
    mountinfo = f"35 31 0:32 /docker/abc {tmp_path} rw - cgroup cgroup rw,memory\n"
    assert cgroups.find_place(mountinfo, "4:memory:/elsewhere\n") == \
        "the grader's memory cgroup is outside the mounted hierarchy"
    assert cgroups.find_place(mountinfo.replace("memory", "cpu"), "4:cpu:/\n") == \
        "no cgroup memory controller is mounted"
    inside = cgroups.find_place(mountinfo, "4:memory:/docker/abc/job\n")
    assert inside == cgroups.Place(1, str(tmp_path), None)


def test_the_enforcement_is_named_for_grading_json_and_feedback_pages(tmp_path):
    assert str(cgroups.Enforcement(cgroups.Place(2, "/x", "/x"))) == "per submission (cgroup v2)"
    assert str(cgroups.Enforcement(None, "no cgroup memory controller is mounted")) == \
        "per process only: no cgroup available here (no cgroup memory controller is mounted)"
    assert memory_exceeded(Limits(memory=MEMORY), "the notebook") == \
        "the notebook used more than 1 GiB of memory in total (all its processes together) and was stopped"


def test_without_a_cgroup_grading_json_and_the_feedback_pages_say_per_process(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "enforcement", lambda: cgroups.Enforcement(None, "not root"))
    record_settings(tmp_path, Unconfined(Limits()))
    said = "per process only: no cgroup available here (not root)"
    assert json.loads((tmp_path / "grading.json").read_text())["memory_enforcement"] == said
    page = feedback_page({"student": "ann", "score": 0, "max_score": 1, "notes": [], "exercises": [],
                          "memory_limit": Unconfined(Limits()).memory_enforcement})
    assert f"Memory limit: {said}" in page


# -- the real kernel ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def place() -> cgroups.Place:
    """Where this machine's cgroups are made; skip without one, fail in CI."""
    found = cgroups.enforcement()
    if found.place is None:
        if os.environ.get("CI"):
            pytest.fail(f"the memory limit per submission must work in CI, but: {found}", pytrace=False)
        pytest.skip(f"no cgroup here: {found}")
    return found.place


def stale(place: cgroups.Place) -> set[str]:
    """bpttlab's cgroups at ``place`` whose maker no longer runs."""
    found = set()
    for base in place.folders():
        for name in os.listdir(base):
            parts = name.split("-")
            if name.startswith(cgroups.PREFIX) and cgroups.start_time(int(parts[1])) != int(parts[2]):
                found.add(os.path.join(base, name))
    return found


def parent_of(pid: int) -> int | None:
    """The parent of process ``pid`` (the grader, for the cgroups its workers make), or None."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def expected_version() -> int:
    """The cgroup version whose memory controller this machine has, read from its mounts (not from the
    module under test): 2 where the cgroup2 file system offers it, else 1."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype = line.split()[:3]
        if fstype == "cgroup2" and "memory" in Path(point, "cgroup.controllers").read_text().split():
            return 2
    return 1


@pytest.mark.parametrize("backend", ["bubblewrap", "none"])
def test_graded_functions_that_use_too_much_memory_together_are_stopped(place, bubblewrap, backend):  # noqa: F811
    limits = Limits(memory=MEMORY)
    isolation = Bubblewrap(limits) if backend == "bubblewrap" else Unconfined(limits)
    hogs = "def f(x):\n" + "".join(f"    {line}\n" for line in HOGS.splitlines()) + "    return x\n"
    light = hogs.replace(f"bytearray({HOG})", f"bytearray({HOG // 4})")  # four times 75 MiB: within the limit
    calls = [{"x": 1.0}]
    runs = Sandbox(60.0, isolation).run([Job("hogs", hogs, "f", calls), Job("light", light, "f", calls),
                                         Job("honest", "def f(x):\n    return 2 * x\n", "f", calls)])
    assert (runs["hogs"].failure, runs["hogs"].reason) == ("memory-limit", memory_exceeded(limits))
    assert runs["light"].outcomes == [{"value": 1.0}]
    assert runs["honest"].outcomes == [{"value": 2.0}]


def hog_notebooks(folder: Path) -> None:
    """Two hostile submissions: a cell that starts the hogs after grad-V's cell, and a grad_V function
    that starts them (once) before it answers."""
    in_cell = nbformat.read(SUBMISSIONS / "correct.ipynb", as_version=4)
    in_cell.cells.insert(4, new_code_cell(HOGS))
    nbformat.write(in_cell, folder / "hogs_in_a_cell.ipynb")
    nb = nbformat.read(SUBMISSIONS / "correct.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.source.startswith("%%bptt exercise grad-V"))
    head, body = nb.cells[index].source.split("\n", 2)[:2], nb.cells[index].source.split("\n", 2)[2]
    once = "if not hasattr(grad_V, 'hogged'):\n    grad_V.hogged = True\n" + "".join(
        f"    {line}\n" for line in HOGS.splitlines())
    nb.cells[index].source = "\n".join(head) + "\n" + "".join(f"    {line}\n" for line in once.splitlines()) + body
    nbformat.write(nb, folder / "hogs_in_a_function.ipynb")


def grade(subs: list[Path], out: Path, *extra: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    argv = [*command(), "grade", *map(str, subs), "--out", str(out), "--memory", f"{MEMORY // MiB}M",
            "--seed", str(SEED), "--kernel", "python3", "--exercises", ",".join(EXERCISES), *extra]
    if popen:
        return subprocess.Popen(argv, **popen)
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def hog_run(place, bubblewrap, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("memory")
    subs = root / "subs"
    subs.mkdir()
    hog_notebooks(subs)
    shutil.copy(SUBMISSIONS / "correct.ipynb", subs / "correct.ipynb")
    before = stale(place)
    proc = grade(sorted(subs.glob("*.ipynb")), root / "out", "--jobs", "2", "--timeout", "60")
    return {"proc": proc, "out": root / "out", "left": stale(place) - before}


def results(out: Path) -> dict[tuple[str, str], tuple[float, str, str]]:
    return {(r["student"], r["exercise"]): (r["score"], r["diagnosis"], r["detail"])
            for r in json.loads((out / "gradebook.json").read_text())}


def test_a_notebook_whose_processes_together_exceed_the_limit_is_stopped_with_the_reason(hog_run):
    assert hog_run["proc"].returncode == 0, hog_run["proc"].stdout + hog_run["proc"].stderr
    got, oracle = results(hog_run["out"]), expected_gradebook(SEED)
    assert got["hogs_in_a_cell", "grad-V"][:2] == oracle["correct", "grad-V"]  # before the cell
    for ex in ("grad-W", "clip-norm"):
        score, diagnosis, detail = got["hogs_in_a_cell", ex]
        assert (score, diagnosis) == (0.0, "memory-limit")
        assert detail == ("Not graded: the notebook used more than 1 GiB of memory in total (all its processes "
                          "together) and was stopped at cell 5, before this exercise's cell")
    notes = json.loads((hog_run["out"] / "results" / "hogs_in_a_cell.json").read_text())["notes"]
    assert any(n.startswith("the notebook used more than 1 GiB") for n in notes)


def test_a_function_whose_processes_together_exceed_the_limit_is_stopped_and_the_others_graded(hog_run):
    got, oracle = results(hog_run["out"]), expected_gradebook(SEED)
    assert got["hogs_in_a_function", "grad-V"] == (0.0, "memory-limit",
                                                   f"Not graded: {memory_exceeded(Limits(memory=MEMORY))}")
    for ex in ("grad-W", "clip-norm"):
        assert got["hogs_in_a_function", ex][:2] == oracle["correct", ex]


def test_an_honest_submission_in_the_same_run_gets_its_oracle_grade(hog_run):
    got, oracle = results(hog_run["out"]), expected_gradebook(SEED)
    assert {ex: got["correct", ex][:2] for ex in EXERCISES} == {ex: oracle["correct", ex] for ex in EXERCISES}


def test_the_enforcement_is_recorded_and_no_cgroup_of_the_run_is_left(hog_run):
    said = f"per submission (cgroup v{expected_version()})"
    assert json.loads((hog_run["out"] / "grading.json").read_text())["memory_enforcement"] == said
    assert f"memory limit: {said}" in hog_run["proc"].stdout
    for page in (hog_run["out"] / "feedback").glob("*.html"):
        assert f"Memory limit: {said}" in page.read_text()
    assert hog_run["left"] == set()


def test_a_sweep_kills_what_a_dead_makers_cgroup_holds_and_removes_it_and_leaves_live_ones(place):
    name = f"{cgroups.PREFIX}999999999-1-1"  # no process has that pid
    dead = cgroups.Cgroup(place.version, tuple(os.path.join(f, name) for f in place.folders()))
    for folder in dead.folders:
        os.mkdir(folder)
    orphan = subprocess.Popen([*cgroups.launcher(dead), "sleep", "600"])
    live = place.make(MEMORY, 8)
    try:
        deadline = time.monotonic() + 10
        while orphan.pid not in dead.processes() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert orphan.pid in dead.processes()
        removed = cgroups.sweep(place)
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert set(dead.folders) <= set(removed) and not any(os.path.exists(f) for f in dead.folders)
        assert all(os.path.isdir(f) for f in live.folders)
    finally:
        orphan.kill()
        dead.remove()
        assert live.remove() and not any(os.path.exists(f) for f in live.folders)


def test_a_cgroup_left_by_a_killed_grader_is_removed_by_the_next_run(place, bubblewrap, tmp_path):  # noqa: F811
    nb = nbformat.read(SUBMISSIONS / "correct.ipynb", as_version=4)
    nb.cells.insert(2, new_code_cell("import time\ntime.sleep(300)"))
    nbformat.write(nb, tmp_path / "sleeps.ipynb")
    before = set().union(*(os.listdir(base) for base in place.folders()))
    proc = grade([tmp_path / "sleeps.ipynb"], tmp_path / "out", "--timeout", "300", stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    made: set[str] = set()
    deadline = time.monotonic() + 300
    while not made and time.monotonic() < deadline:  # until the kernel's cgroup holds processes
        time.sleep(0.2)
        made = {os.path.join(base, n) for base in place.folders() for n in set(os.listdir(base)) - before
                if n.startswith(cgroups.PREFIX) and parent_of(int(n.split("-")[1])) == proc.pid
                and cgroups.Cgroup(1, (os.path.join(base, n),)).processes()}
    assert made, "the grader made no cgroup"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while not made <= stale(place) and time.monotonic() < deadline:  # its worker dies with it
        time.sleep(0.2)
    assert made <= stale(place)  # left behind by the killed grader
    rerun = grade([tmp_path / "missing.ipynb"], tmp_path / "out2")
    assert rerun.returncode == 0, rerun.stderr
    assert not any(os.path.exists(folder) for folder in made)


def test_an_unprivileged_user_without_delegation_falls_back_to_per_process(place):
    """Run the module as user nobody: on a machine where only root may make cgroups (this kind, CI's) it
    reports the per-process fallback and why, and makes nothing."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become another user")
    probe = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("cgroups", {cgroups.__file__!r})
module = importlib.util.module_from_spec(spec)
sys.modules["cgroups"] = module
spec.loader.exec_module(module)
print(module.enforcement())
"""
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-I", "-c",
                           probe], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    if all(os.stat(base).st_uid == 0 and not os.stat(base).st_mode & 0o002 for base in place.folders()):
        assert done.stdout.startswith("per process only: no cgroup available here (cannot make a cgroup in")
        assert "Permission denied" in done.stdout and "delegated cgroup v2 subtree" in done.stdout
