"""The ``bpttlab`` console command.

::

    bpttlab check --cell elman --hidden 3 --T 6 --seed 0    engine vs finite differences vs SymPy
    bpttlab bench [...]                                     the engine benchmark (bpttlab.benchmark)
    bpttlab kernel install [--user | --sys-prefix | --prefix P]
    bpttlab warm [CELL ...]                                 compile the engine's kernels into the Numba cache
    bpttlab grade ... / bpttlab release ...                 the teacher's batch grading

``bpttlab COMMAND --help`` documents each. ``check`` exits with 0 only when every parameter agrees.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from .argtypes import positive_float, positive_int
from .argtypes import seed as seed_int
from .reports import text_table

def _add_check(sub) -> None:
    p = sub.add_parser("check", help="check the engine's gradients against finite differences and SymPy",
                       description="Build a network and a random sequence, compute the full-BPTT gradient with "
                                   "the engine, and compare it per parameter with central finite differences "
                                   "and with the SymPy derivation. Exit status 0 only when all agree.")
    p.add_argument("--cell", default="elman", help="a registered cell (default elman)")
    p.add_argument("--in", dest="n_in", metavar="D", type=positive_int, default=1, help="input size")
    p.add_argument("--hidden", metavar="H", type=positive_int, default=3, help="hidden size (default 3)")
    p.add_argument("--out", dest="n_out", metavar="O", type=positive_int, default=1, help="output size")
    p.add_argument("--T", dest="T", type=positive_int, default=6, help="sequence length (default 6)")
    p.add_argument("--act", default="tanh", help="a registered activation (default tanh)")
    p.add_argument("--loss", default="mse", help="a registered loss (default mse)")
    p.add_argument("--reduction", default="sum", choices=("sum", "mean"), help="sum (default) or mean")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the weights and the data (default 0)")
    p.add_argument("--tol", type=positive_float, default=1e-6,
                   help="largest relative error that agrees (default 1e-6)")
    p.add_argument("--no-sympy", action="store_true", help="skip the SymPy comparison (it is the slow one)")
    p.set_defaults(run=_run_check)


def _check_data(args):
    """The network and a random sequence (targets drawn for the loss: values for mse, classes otherwise)."""
    from . import registry
    from .network import make

    net = make(args.cell, n_in=args.n_in, n_hidden=args.hidden, n_out=args.n_out, activation=args.act,
               seed=args.seed)
    rng = np.random.default_rng(args.seed)
    xs = rng.normal(size=(args.T, args.n_in))
    if registry.losses.get(args.loss, "loss").integer_targets:
        ys = rng.integers(args.n_out, size=args.T)
    else:
        ys = rng.normal(size=(args.T, args.n_out))
    return net, xs, ys


def _run_check(args) -> int:
    from .engine import gradcheck

    try:
        net, xs, ys = _check_data(args)
        fd = gradcheck(net, xs, ys, loss=args.loss, reduction=args.reduction, tol=args.tol)
        symbolic = None if args.no_sympy else _symbolic_errors(net, xs, ys, args)
    except (ValueError, TypeError) as exc:
        print(f"bpttlab check: error: {exc}", file=sys.stderr)
        return 2
    header = ["parameter", "shape", "engine vs finite differences"]
    if symbolic is not None:
        header.append("engine vs SymPy")
    header.append("agree")
    rows, agree = [], True
    for name, err in fd.rel_error.items():
        errors = [err] + ([symbolic[name]] if symbolic is not None else [])
        ok = all(e < args.tol for e in errors)
        agree &= ok
        rows.append([name, str(net.shapes[name]), *(f"{e:.2e}" for e in errors), "yes" if ok else "NO"])
    print(f"bpttlab check: {net.cell.name} {net.activation.name}, D={net.n_in} H={net.n_hidden} O={net.n_out}, "
          f"T={args.T}, loss {args.loss} ({args.reduction}), seed {args.seed}")
    print(text_table(header, rows))
    print(f"{'all parameters agree' if agree else 'DISAGREEMENT'} (relative error tolerance {args.tol:g})")
    return 0 if agree else 1


def _symbolic_errors(net, xs, ys, args) -> dict[str, float]:
    """Largest relative error per parameter between the SymPy derivation and the engine (bl.check)."""
    from .agreement import check

    try:
        report = check(net, xs, ys, loss=args.loss, reduction=args.reduction, fd=False)
    except ValueError as exc:
        raise ValueError(f"{exc}; or pass --no-sympy to compare with finite differences only") from exc
    return report.max_rel_error_by_parameter()


def _add_kernel(sub) -> None:
    p = sub.add_parser("kernel", help="the BPTT Lab Jupyter kernel",
                       description="Manage the 'BPTT Lab (Python 3)' Jupyter kernel.")
    ksub = p.add_subparsers(dest="kernel_command", required=True, metavar="ACTION")
    inst = ksub.add_parser("install", help="install the kernelspec 'bpttlab'",
                           description="Install the kernelspec 'bpttlab' so that Jupyter lists the BPTT Lab "
                                       "kernel. `pip install .` already installs it into the environment; use "
                                       "this where that is not picked up. Without an option: --sys-prefix "
                                       "inside a virtual environment, --user otherwise.")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data directory")
    where.add_argument("--sys-prefix", action="store_true", help="into this Python environment (sys.prefix)")
    where.add_argument("--prefix", metavar="P", help="into P/share/jupyter/kernels")
    inst.set_defaults(run=_run_kernel_install)


def _run_kernel_install(args) -> int:
    from .kernel.install import install

    user, sys_prefix = args.user, args.sys_prefix
    if not (user or sys_prefix or args.prefix):
        sys_prefix = sys.prefix != sys.base_prefix
        user = not sys_prefix
    path = install(user=user, sys_prefix=sys_prefix, prefix=args.prefix)
    print(f"Installed the BPTT Lab kernelspec 'bpttlab' in {path}")
    return 0


def _add_warm(sub) -> None:
    p = sub.add_parser("warm", help="compile the engine's Numba kernels into the on-disk cache",
                       description="Compile the compiled tier of the built-in cells (or of the named cells) "
                                   "and store it in the Numba cache, so that later processes only load it. "
                                   "For image builds (Binder/repo2docker postBuild, a JupyterHub image, CI): "
                                   "the engine never waits for compilation, but it runs the slower per-copy "
                                   "tier until the kernels are ready.")
    p.add_argument("cells", nargs="*", metavar="CELL", help="registered cells (default: every built-in cell)")
    p.set_defaults(run=_run_warm)


def _run_warm(args) -> int:
    import time

    from .kernel.warmup import warm_up

    start = time.perf_counter()
    try:
        seconds = warm_up(args.cells or None)
    except ValueError as err:  # an unknown cell, named with the known ones
        print(f"bpttlab warm: {err}", file=sys.stderr)
        return 2
    rows = [[name, f"{s:.2f}"] for name, s in seconds.items()]
    print(text_table(["cell", "seconds"], rows + [["total", f"{time.perf_counter() - start:.2f}"]]))
    return 0


def _add_grade(sub) -> None:
    from .grading import commands

    p = sub.add_parser("grade", help=_SUMMARIES["grade"],
                       description="Run each submitted notebook in a fresh kernel and grade its exercises.")
    commands.add_grade_arguments(p)
    p.set_defaults(run=commands.run_grade)


def _add_release(sub) -> None:
    from .grading import commands

    p = sub.add_parser("release", help=_SUMMARIES["release"],
                       description="Prepare the student version of a workbook.")
    commands.add_release_arguments(p)
    p.set_defaults(run=commands.run_release)


#: Commands whose modules are imported only when the command runs (the others are listed by summary).
_SUMMARIES = {
    "bench": "the engine benchmark: full-BPTT gradient times (bpttlab bench --help)",
    "grade": "grade a folder of submitted notebooks",
    "release": "release a workbook to students (solutions stripped)",
}
_BUILDERS = {"grade": _add_grade, "release": _add_release}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``bpttlab`` argument parser.

    Args:
        command: the command about to run; the grading commands' arguments (which import
            :mod:`bpttlab.grading`) are added only for it. The others are listed by their summary.
    """
    from . import __version__

    parser = argparse.ArgumentParser(prog="bpttlab", description="BPTT Lab: a teaching kit for "
                                     "backpropagation through time. `bpttlab COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"bpttlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check(sub)
    _add_kernel(sub)
    _add_warm(sub)
    for name, summary in _SUMMARIES.items():
        if name == command and name in _BUILDERS:
            _BUILDERS[name](sub)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``bpttlab ARGV`` and return its exit status (``bpttlab bench`` parses its own arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "bench":
        from .benchmark import main as bench

        return bench(argv[1:])
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
