"""Re-execute workbook chapters in place on the BPTT Lab kernel, so their stored outputs are fresh.

The chapters are stored executed because nbval compares a fresh run with the stored outputs. After
editing a chapter, run this (from the repository root or from workbooks/)::

    python workbooks/execute.py                 # every chapter
    python workbooks/execute.py 04-*.ipynb      # some of them
    python workbooks/execute.py --no-write      # only time each chapter; nothing is written
    python workbooks/execute.py --no-write --compile background 01-*.ipynb   # as a student's first run

Each notebook runs top to bottom in a fresh ``bpttlab`` kernel with the workbooks folder as its working
directory and ``BPTTLAB_COMPILE=eager`` (every engine call on the compiled tier, as in the notebook tests,
so that the stored numbers do not depend on when a background compilation finished); the kernelspec
metadata is set to BPTT Lab, and the run time of each chapter is printed. A chapter that raises is
reported and left unchanged on disk.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "bpttlab", "display_name": "BPTT Lab (Python 3)", "language": "python"}


def execute(path: Path, timeout: int, write: bool = True, compile_mode: str = "eager") -> float:
    """Execute the notebook at ``path`` (in place unless ``write`` is False) with the engine's compilation
    mode ``compile_mode`` and return its wall time in seconds, kernel start included."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    start = time.perf_counter()
    NotebookClient(nb, kernel_name="bpttlab", timeout=timeout, resources={"metadata": {"path": str(HERE)}}).execute(
        env={**os.environ, "BPTTLAB_COMPILE": compile_mode})
    elapsed = time.perf_counter() - start
    if write:
        nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="chapter files or globs relative to workbooks/ (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--no-write", dest="write", action="store_false",
                        help="execute and time the chapters without writing them back")
    parser.add_argument("--compile", default="eager", choices=("eager", "background", "off"),
                        help="the engine's compilation mode in the kernel (default eager, as the notebook tests; "
                             "background is what a student gets, for timing a first run)")
    args = parser.parse_args(argv)
    patterns = args.notebooks or ["[0-9][0-9]*-*.ipynb"]
    paths = sorted({p for pattern in patterns for p in HERE.glob(Path(pattern).name)})
    if not paths:
        parser.error(f"no notebook matches {patterns}")
    failed = 0
    for path in paths:
        try:
            print(f"{path.name}: {execute(path, args.timeout, args.write, args.compile):.1f} s", flush=True)
        except CellExecutionError as err:
            failed += 1
            print(f"{path.name}: FAILED, left unchanged\n{err}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
