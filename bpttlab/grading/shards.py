"""Grading a course on many machines: ``bpttlab grade --shard I/N`` and ``bpttlab grade --merge DIR...``.

A shard is a stable share of the submissions: student ``s`` belongs to shard
:math:`1 + (\\mathrm{sha256}(s) \\bmod N)`, whatever machine, order or Python process looks at it, so N
jobs of a scheduler (a Slurm job array, a Kubernetes Indexed Job) can each be handed every submission and
grade only their own, each into its own folder. Every shard must use the same hidden seed (``--seed``
is required with ``--shard``) and the same settings; each shard folder records them in
``DIR/shard.json``.

``--merge`` joins the shard folders into one: it refuses folders that are not shards, shards of
different runs (another seed, other exercises, time limit, kernel or bpttlab version, another N), a
shard given twice or missing, results filed in the wrong shard, and results that are not their shard's
grader's own (their signature, :mod:`~bpttlab.grading.signing`, does not check with the shard's key);
then it signs each student's result with the merged folder's own key, copies the feedback pages and
writes the gradebook of them all, the same gradebook one run over every submission writes.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

from . import batch
from .files import write_atomic
from .gradebook import student_names, write_gradebook
from .signing import grader_key, signed

#: The file in a shard's output folder that says which shard of which run it is.
SHARD_FILE = "shard.json"

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), with 1 <= I <= N.

    Raises:
        ValueError: not of that form, naming ``--shard``.
    """
    match = _SPEC.match(text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard expects I/N with 1 <= I <= N (e.g. 2/8), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_of(student: str, count: int) -> int:
    """The shard (1..count) a student's submission belongs to: a hash of the name, the same everywhere."""
    digest = hashlib.sha256(student.encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


def select(submissions: list[str], shard: tuple[int, int]) -> list[str]:
    """The submissions of one shard, in the given order."""
    index, count = shard
    names = student_names(Path(s) for s in submissions)
    return [s for s in submissions if shard_of(names[Path(s)], count) == index]


def describe(settings: batch.Settings) -> dict:
    """What every shard of one run must share: the settings and the bpttlab version."""
    from .. import __version__

    return {**asdict(settings), "exercises": list(settings.exercises), "bpttlab": __version__}


def record_shard(out: Path, shard: tuple[int, int], settings: batch.Settings) -> None:
    """Write ``out/shard.json``; refuse a folder that holds another shard, or this shard of another run."""
    path = out / SHARD_FILE
    entry = {"shard": list(shard), "run": describe(settings)}
    if path.exists():
        old = _read_shard(out)
        if old["shard"] != entry["shard"]:
            raise ValueError(f"{out} already holds shard {old['shard'][0]}/{old['shard'][1]}; use another --out")
        if old["run"] != entry["run"]:
            raise ValueError(f"{out} holds this shard graded with other settings "
                             f"({_difference(old['run'], entry['run'])}); use another --out")
    write_atomic(path, json.dumps(entry, indent=1) + "\n")


def _read_shard(folder: Path) -> dict:
    try:
        entry = json.loads((folder / SHARD_FILE).read_text(encoding="utf-8"))
        index, count = entry["shard"]
        if not (isinstance(entry["run"], dict) and 1 <= int(index) <= int(count)):
            raise ValueError
        return entry
    except FileNotFoundError:
        raise ValueError(f"{folder} is not a shard's folder (no {SHARD_FILE}; was it graded with --shard?)") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{folder / SHARD_FILE} is not a shard description") from None


def _difference(a: dict, b: dict) -> str:
    return ", ".join(f"{key} {a.get(key)!r} vs {b.get(key)!r}" for key in sorted(set(a) | set(b))
                     if a.get(key) != b.get(key))


def merge(folders: list[Path], out: Path, log=print) -> int:
    """Join shard folders into ``out``: results, feedback pages, the seed and one gradebook.

    Returns:
        the number of students in the merged gradebook.

    Raises:
        ValueError: a folder is not a shard, the shards come from different runs or do not make up one
            whole run, or a result is in the wrong shard.
    """
    entries = [(folder, _read_shard(folder)) for folder in folders]
    first_folder, first = entries[0]
    count = first["shard"][1]
    seen: dict[int, Path] = {}
    for folder, entry in entries:
        if entry["run"] != first["run"] or entry["shard"][1] != count:
            raise ValueError(f"{folder} was graded differently from {first_folder}: "
                             f"{_difference(entry['run'], first['run']) or 'another number of shards'}")
        index = entry["shard"][0]
        if index in seen:
            raise ValueError(f"shard {index}/{count} is given twice: {seen[index]} and {folder}")
        seen[index] = folder
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise ValueError(f"shards {', '.join(f'{i}/{count}' for i in missing)} are missing; merge all {count}")
    if out.resolve() in {f.resolve() for f in folders}:
        raise ValueError(f"--out {out} is one of the shards; choose another folder")
    records = {}
    for folder, entry in entries:
        results, rejected = batch.load_results(folder, grader_key(folder))
        if rejected:
            raise ValueError(f"{folder} holds results that are not its grader's own (changed, or written by "
                             f"someone else): {', '.join(rejected)}; grade that shard again")
        for student, record in results.items():
            if shard_of(student, count) != entry["shard"][0]:
                raise ValueError(f"{folder} holds a result of {student!r}, who belongs to shard "
                                 f"{shard_of(student, count)}/{count}, not {entry['shard'][0]}/{count}")
            records[student] = (folder, record)
    out.mkdir(parents=True, exist_ok=True)
    key = grader_key(out)
    for student, (folder, record) in records.items():
        write_atomic(out / "results" / f"{student}.json", json.dumps(signed(record, key), indent=1) + "\n")
        page = folder / "feedback" / f"{student}.html"
        if page.exists():
            (out / "feedback").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, out / "feedback" / f"{student}.html")
    run = json.loads((first_folder / "grading.json").read_text(encoding="utf-8"))
    write_atomic(out / "grading.json", json.dumps({**run, "seed": first["run"]["seed"]}) + "\n")
    write_gradebook(out, [record for _, record in records.values()])
    log(f"merged {count} shard(s), {len(records)} student(s); gradebook: {out / 'gradebook.csv'}")
    return len(records)
