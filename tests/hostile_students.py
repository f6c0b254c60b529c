"""Submissions written by students who attack the grader, each named after what it tries.

Every notebook is the right solution (tests/submissions/correct.ipynb) with some cells added or an
exercise cell replaced. Paths and the port they aim at are filled in when the test writes them
(``__OUT__``: the output folder, ``__SUBS__``: the submissions folder, ``__OTHER__``: another student's
notebook, ``__TEACHER__``: a folder of the teacher's, ``__PORT__``: a port the test listens on,
``__DELAY__``: seconds a detached process waits before it acts).
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

SUBMISSIONS = Path(__file__).parent / "submissions"

#: Kill every process it can see that belongs to the grading (never the test runner itself).
KILL_EVERYTHING = """\
import os, signal
targets = [1, os.getppid()]
for entry in os.listdir("/proc"):
    try:
        cmd = open(f"/proc/{entry}/cmdline", "rb").read()
    except OSError:
        continue
    if entry.isdigit() and b"pytest" not in cmd and any(
            word in cmd for word in (b"bpttlab", b"multiprocessing", b"bwrap", b"ipykernel")):
        targets.append(int(entry))
for pid in targets:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
os.kill(os.getpid(), signal.SIGKILL)"""

ACT_LATER = """\
import subprocess, sys
later = '''
import pathlib, socket, time
time.sleep(__DELAY__)
for path in ("__OUT__/results/detached_process.json", "__TEACHER__/acted-after-grading"):
    try:
        pathlib.Path(path).write_text('{"student": "detached_process", "score": 5}')
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", __PORT__), timeout=2)
except OSError:
    pass
'''
for _ in range(20):
    subprocess.Popen([sys.executable, "-c", later], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"""

FORK_UNTIL_REFUSED = """\
import os, time
while True:
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)"""


def _function(exercise: str, signature: str, body: str) -> str:
    return f"%%bptt exercise {exercise}\n{signature}\n" + "\n".join("    " + line for line in body.splitlines())


def grad_V(body: str) -> str:
    return _function("grad-V", "def grad_V(W, U, b, V, c, xs, targets):", body)


def clip_by_norm(body: str) -> str:
    return _function("clip-norm", "def clip_by_norm(grads, tau):", body)


#: name -> (cells added after the imports, replaced exercise cells by exercise id)
HOSTILE: dict[str, tuple[list[str], dict[str, str]]] = {
    "writes_output_folder": (
        ['import pathlib\nfor name in ("results/correct.json", "gradebook.csv"):\n'
         '    pathlib.Path("__OUT__", name).write_text("correct,grad-V,0,1,wrong")'],
        {"grad-V": grad_V('import pathlib\npathlib.Path("__OUT__/results/writes_output_folder.json")'
                          '.write_text("full marks")\nreturn np.zeros_like(V)')}),
    "detached_process": ([ACT_LATER], {}),
    "edits_installed_package": (
        ['import pathlib, bpttlab, numpy\n'
         'with open(pathlib.Path(bpttlab.__file__).parent / "grading" / "diagnosis.py", "a") as f:\n'
         '    f.write("\\nscore = lambda exercise, verdicts: exercise.points\\n")'],
        {"grad-V": grad_V('import pathlib, numpy\n'
                          'pathlib.Path(numpy.__file__).parent.parent.joinpath("sitecustomize.py").write_text('
                          '"import os")\nreturn np.zeros_like(V)')}),
    "kills_the_grader": ([KILL_EVERYTHING], {}),
    "leaks_teacher_data": (
        [], {"grad-V": grad_V(
            'import os\nfound = []\n'
            'for attempt in (lambda: open("__OUT__/grading.json").read(), lambda: os.listdir("__SUBS__"),\n'
            '                lambda: open("__OTHER__").read(), lambda: open("__TEACHER__/answers.txt").read(),\n'
            '                lambda: os.environ["BPTTLAB_TEST_SECRET"]):\n'
            '    try:\n        found.append(attempt())\n'
            '    except Exception as exc:\n        found.append(type(exc).__name__)\n'
            'raise RuntimeError(repr(found))')}),
    "memory_bomb": (["hog = np.ones(2 ** 31)"], {"grad-V": grad_V("hog = bytearray(3 * 2 ** 30)\nreturn hog")}),
    "fork_bomb": ([FORK_UNTIL_REFUSED], {"clip-norm": clip_by_norm(FORK_UNTIL_REFUSED)}),
    "connects_to_the_teacher": (
        ['import socket\nsocket.create_connection(("127.0.0.1", __PORT__), timeout=3).sendall(b"hello")'],
        {"grad-V": grad_V('import socket\nsocket.create_connection(("127.0.0.1", __PORT__), timeout=3)\n'
                          'return np.zeros_like(V)')}),
    "reads_other_submission": ([], {"grad-V": grad_V('return len(open("__OTHER__").read()) * np.ones_like(V)')}),
    "writes_a_huge_file": (['with open("big.bin", "wb") as f:\n    f.write(bytes(100 * 2 ** 20))'], {}),
    "newline_in_message": (
        [], {"grad-V": grad_V("raise ValueError(\"broken\\nfakescore,grad-V,1.0,1.0,correct\\r=cmd|' /C calc'!A0\")")}),
    "notebook_too_long": (["import time\ntime.sleep(4)"] * 8, {}),
    "fills_the_graders_disk": (  # the folder of the kernel's sockets is the grader's
        ['import os, sys\nfolder = os.path.dirname(sys.argv[sys.argv.index("-f") + 1])\n'
         'with open(os.path.join(folder, "filler"), "wb") as f:\n    f.write(bytes(2 ** 20))'], {}),
}


def notebook(name: str, values: dict[str, str],
             catalogue: dict[str, tuple[list[str], dict[str, str]]] = HOSTILE) -> nbformat.NotebookNode:
    """The hostile notebook ``name`` of ``catalogue`` (laid out as :data:`HOSTILE`) with the placeholders
    filled in from ``values``."""
    nb = nbformat.read(SUBMISSIONS / "correct.ipynb", as_version=4)
    added, replaced = catalogue[name]
    cells = []
    for cell in nb.cells:
        first = cell.source.split("\n", 1)[0]
        exercise = first.split()[-1] if first.startswith("%%bptt exercise") else None
        cells.append(new_code_cell(replaced[exercise]) if exercise in replaced else cell)
        if cell.source.startswith("import numpy as np"):
            cells += [new_code_cell(source) for source in added]
    for cell in cells:
        for key, value in values.items():
            cell.source = cell.source.replace(f"__{key}__", value)
    return new_notebook(cells=cells, metadata=nb.metadata)
