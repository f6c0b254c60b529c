"""``bpttlab grade --shard I/N`` and ``--merge``: three shards merge to the gradebook of one run.

The grading runs are real (python3 kernels) on five sample submissions of tests/submissions, which the
hash spreads over all three shards. The refusals use notebooks that start no kernel.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bpttlab import cli
from bpttlab.grading import shards

SUBMISSIONS = Path(__file__).parent / "submissions"
STUDENTS = ("correct", "wrong_answers", "deleted_exercise_cell", "duplicated_exercise_cell", "malformed_json")
EXERCISES = "grad-V,grad-W,clip-norm"
SEED = 31337


def grade(capsys, *args: str) -> tuple[int, str]:
    try:
        status = cli.main(["grade", *args])
    except SystemExit as exc:  # argparse's errors
        status = exc.code
    out = capsys.readouterr()
    return status, out.out + out.err


def subs(*names: str) -> list[str]:
    return [str(SUBMISSIONS / f"{n}.ipynb") for n in names]


def common(out: Path, seed: int = SEED, exercises: str = EXERCISES) -> list[str]:
    return ["--out", str(out), "--seed", str(seed), "--kernel", "python3", "--exercises", exercises, "--timeout", "20"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")

    def run(*args):
        return cli.main(["grade", *args])

    assert run(*subs(*STUDENTS), *common(root / "whole")) == 0
    for i in (1, 2, 3):
        assert run(*subs(*STUDENTS), *common(root / f"shard{i}"), "--shard", f"{i}/3") == 0
    assert run("--merge", *(str(root / f"shard{i}") for i in (3, 1, 2)), "--out", str(root / "merged")) == 0
    return root


@pytest.mark.kernel
@pytest.mark.slow
def test_three_shards_merge_to_the_gradebook_of_one_run(graded):
    whole, merged = graded / "whole", graded / "merged"
    assert (merged / "gradebook.csv").read_bytes() == (whole / "gradebook.csv").read_bytes()
    assert json.loads((merged / "gradebook.json").read_text()) == json.loads((whole / "gradebook.json").read_text())
    assert {p.name for p in (merged / "feedback").iterdir()} == {f"{s}.html" for s in STUDENTS}
    assert json.loads((merged / "grading.json").read_text())["seed"] == SEED


@pytest.mark.kernel
@pytest.mark.slow
def test_each_student_is_graded_by_exactly_one_shard(graded):
    owners = {}
    for i in (1, 2, 3):
        for path in (graded / f"shard{i}" / "results").glob("*.json"):
            assert path.stem not in owners
            owners[path.stem] = i
    assert owners == {s: shards.shard_of(s, 3) for s in STUDENTS}
    assert set(owners.values()) == {1, 2, 3}  # this sample reaches every shard


@pytest.mark.kernel
@pytest.mark.slow
def test_merged_results_let_a_rerun_skip_every_submission(graded, tmp_path, capsys):
    out = tmp_path / "merged"
    shutil.copytree(graded / "merged", out)
    status, text = grade(capsys, *subs(*STUDENTS), "--out", str(out), "--kernel", "python3", "--exercises", EXERCISES,
                         "--timeout", "20")
    assert status == 0 and text.count("already graded") == len(STUDENTS)


def test_shard_of_is_stable_and_spreads_students():
    assert shards.shard_of("ada", 4) == shards.shard_of("ada", 4)
    counts = [0] * 4
    for k in range(4000):
        counts[shards.shard_of(f"student{k}", 4) - 1] += 1
    assert all(900 < c < 1100 for c in counts), counts
    assert shards.select(["a/x.ipynb", "b/y.ipynb"], (1, 1)) == ["a/x.ipynb", "b/y.ipynb"]


@pytest.mark.parametrize("spec, message", [
    ("0/3", "1 <= I <= N"), ("4/3", "1 <= I <= N"), ("1-3", "expects I/N"), ("a/b", "expects I/N")])
def test_bad_shard_specs_exit_2(tmp_path, capsys, spec, message):
    status, text = grade(capsys, *subs("malformed_json"), *common(tmp_path / "o"), "--shard", spec)
    assert status == 2 and message in text


def test_shard_needs_a_seed(tmp_path, capsys):
    status, text = grade(capsys, *subs("malformed_json"), "--out", str(tmp_path / "o"), "--exercises", EXERCISES,
                         "--shard", "1/2")
    assert status == 2 and "--shard needs --seed" in text


def _quick_shards(root: Path, capsys, count: int, seed: int = SEED, exercises: str = EXERCISES,
                  only: tuple[int, ...] | None = None) -> list[Path]:
    """Shard folders graded on notebooks that start no kernel (a malformed one, missing ones)."""
    names = subs("malformed_json", "missing_a", "missing_b", "missing_c", "missing_d")
    folders = []
    for i in only or range(1, count + 1):
        folder = root / f"s{seed}-{exercises}-{i}of{count}"
        status, text = grade(capsys, *names, *common(folder, seed, exercises), "--shard", f"{i}/{count}")
        assert status == 0, text
        folders.append(folder)
    return folders


@pytest.mark.parametrize("case, message", [
    ("other seed", f"seed {SEED + 1!r} vs {SEED!r}"),
    ("other exercises", "exercises"),
    ("twice", "shard 2/2 is given twice"),
    ("missing", "shards 2/2 are missing"),
    ("other count", "another number of shards"),
    ("not a shard", "is not a shard's folder"),
    ("wrong shard", "who belongs to shard"),
    ("foreign result", "not its grader's own"),
])
def test_merge_refuses_shards_that_do_not_make_one_run(tmp_path, capsys, case, message):
    one, two = _quick_shards(tmp_path, capsys, 2)
    folders = {
        "other seed": lambda: [one, *_quick_shards(tmp_path, capsys, 2, seed=SEED + 1, only=(2,))],
        "other exercises": lambda: [one, *_quick_shards(tmp_path, capsys, 2, exercises="grad-V", only=(2,))],
        "twice": lambda: [one, two, two],
        "missing": lambda: [one],
        "other count": lambda: [one, two, *_quick_shards(tmp_path, capsys, 3, only=(3,))],
        "not a shard": lambda: [one, two, tmp_path],
        "wrong shard": lambda: [one, _misfiled(one, two, sign=True)],
        "foreign result": lambda: [one, _misfiled(one, two, sign=False)],
    }[case]()
    status, text = grade(capsys, "--merge", *map(str, folders), "--out", str(tmp_path / "merged"))
    assert status == 2 and message in text, text
    assert not (tmp_path / "merged" / "gradebook.csv").exists()


def _misfiled(source: Path, dest: Path, sign: bool) -> Path:
    """Shard ``dest`` with a result copied in from another shard: as it was (signed with the other shard's
    key, so not ``dest``'s own), or signed with ``dest``'s key as if its grader had graded that student."""
    from bpttlab.grading.signing import grader_key, signed

    result = next((source / "results").glob("*.json"))
    record = json.loads(result.read_text())
    if sign:
        record = signed(record, grader_key(dest))
    (dest / "results" / result.name).write_text(json.dumps(record))
    return dest


def test_a_folder_keeps_its_shard(tmp_path, capsys):
    (folder,) = _quick_shards(tmp_path, capsys, 2, only=(1,))
    status, text = grade(capsys, *subs("malformed_json"), *common(folder), "--shard", "2/2")
    assert status == 2 and "already holds shard 1/2" in text


def test_grade_without_submissions_or_merge_exits_2(tmp_path, capsys):
    status, text = grade(capsys, "--out", str(tmp_path / "o"), "--exercises", EXERCISES)
    assert status == 2 and "give the submissions to grade (or --merge" in text
