"""The ``%bptt`` line magic and ``%%bptt`` cell magic (``%load_ext bpttlab``; preloaded in the BPTT Lab
kernel).

Each subcommand is a method whose argument parser IPython's :mod:`~IPython.core.magic_arguments` builds
from its decorators, so ``%bptt?`` shows the help of all of them and ``%bptt SUBCOMMAND -h`` the help of
one::

    %bptt cells                                         registered plugins and where each comes from
    %bptt new net elman --in 1 --hidden 3 --out 1       a network, stored as ``net``
    %bptt derive elman --T 3 --wrt W --t 3              the symbolic derivation of dE_3/dW
    %bptt grad net xs ys --k2 4 --clip norm:5           gradients, split per time step
    %bptt check net xs ys                               SymPy vs engine, per t and parameter
    %bptt train net xs ys --k1 5 --k2 5 --lr 0.1 --epochs 200
    %bptt step net xs ys   /   %bptt flow net xs ys     the widgets
    %%bptt exercise ID                                  grades the cell's code

NET, XS and YS name variables of the notebook (or are Python expressions in it, such as ``xs[:5]``).
Every result is returned, so it is in ``_`` and can be assigned (``r = %bptt grad net xs ys``); ``--as
NAME`` also stores it in the notebook under NAME.

Errors: a bad argument (unknown subcommand, missing or unknown name, a malformed number, an input the
engine rejects) raises :class:`~IPython.core.error.UsageError` with a one-line message, which IPython
shows without a traceback. A failure of the computation itself raises :class:`BPTTError`, a real
exception (nbval and the grader see it) whose traceback is two lines: what failed and where.
"""
from __future__ import annotations

import argparse
import sysconfig
import traceback
from contextlib import contextmanager
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from . import validation
from .argtypes import clip as clip_spec
from .argtypes import identifier, positive_float, positive_int, sizes
from .argtypes import seed as seed_int
from .network import INITS, Network

#: subcommand -> one-line summary; ``exercise`` is the only cell-magic subcommand.
SUBCOMMANDS = {
    "cells": "list the registered cells, activations, losses and exercise packs",
    "new": "create a network and store it in the notebook",
    "derive": "derive dE_t/dθ symbolically: explicit and implicit terms",
    "grad": "BPTT gradients and their per-timestep contributions",
    "check": "the symbolic derivation vs the engine, per time step and parameter",
    "train": "train by TBPTT(k1, k2) and plot the loss curve",
    "step": "step through the forward and backward passes (widget)",
    "flow": "the gradient flowing back through time (widget)",
    "exercise": "grade the cell's code against an exercise (%%bptt exercise ID)",
}
CELL_SUBCOMMANDS = ("exercise",)
_PACKAGE = Path(__file__).resolve().parent
_LIBRARY_DIRS = tuple({Path(sysconfig.get_path(k)).resolve()
                       for k in ("stdlib", "platstdlib", "purelib", "platlib")})


class BPTTError(RuntimeError):
    """A ``%bptt`` computation failed; the original exception is ``__cause__``.

    IPython shows :meth:`_render_traceback_` instead of a traceback through NumPy, Numba or SymPy.
    """

    def __init__(self, subcommand: str, cause: BaseException):
        magic = "%%bptt" if subcommand in CELL_SUBCOMMANDS else "%bptt"
        super().__init__(f"{magic} {subcommand} failed: {type(cause).__name__}: {_first_line(cause)}")
        self.where = _origin(cause)

    def _render_traceback_(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self}"]
        if self.where:
            lines.append(f"  raised at {self.where} (the exception is sys.last_value.__cause__)")
        return lines


def _first_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return text if len(text) <= 300 else text[:297] + "..."


def _is_library(filename: str) -> bool:
    """Code the student did not write and bpttlab does not own (NumPy, Numba, SymPy, the stdlib...)."""
    path = Path(filename).resolve()
    return not path.is_relative_to(_PACKAGE) and any(path.is_relative_to(d) for d in _LIBRARY_DIRS)


def _origin(exc: BaseException) -> str:
    """file:line in function, of the innermost frame in bpttlab or in the student's own code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_library(f.filename)]
    if not frames:
        return ""
    f = frames[-1]
    path = Path(f.filename)
    shown = path.relative_to(_PACKAGE.parent) if path.is_relative_to(_PACKAGE) else path.name
    return f"{shown}:{f.lineno} in {f.name}"


def _raised_by_bpttlab(exc: BaseException) -> bool:
    """Whether bpttlab's own argument checks raised ``exc`` (its innermost frame is in the package)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def _prefixed(subcommand: str, message: str) -> str:
    """``%bptt SUB: message`` (``%%bptt`` for a cell subcommand), unless the message already says it."""
    magic = "%%bptt" if subcommand in CELL_SUBCOMMANDS else "%bptt"
    return message if message.startswith(("%bptt", "%%bptt")) else f"{magic} {subcommand}: {message}"


@contextmanager
def _computing(subcommand: str):
    """Bad inputs rejected by bpttlab -> UsageError; anything else that fails -> BPTTError."""
    try:
        yield
    except UsageError as exc:
        raise UsageError(_prefixed(subcommand, str(exc))) from None
    except (ValueError, TypeError) as exc:
        if _raised_by_bpttlab(exc):
            raise UsageError(_prefixed(subcommand, _first_line(exc))) from None
        raise BPTTError(subcommand, exc) from exc
    except Exception as exc:
        raise BPTTError(subcommand, exc) from exc


def _data_arguments(func):
    """NET XS YS and the loss options shared by grad, check, train, step and flow."""
    for deco in reversed([
        argument("net", metavar="NET", help="the network (a variable from %%bptt new or bl.make)"),
        argument("xs", metavar="XS", help="inputs (T, D) or (T, B, D): a variable or an expression"),
        argument("ys", metavar="YS", help="targets: (T, O) for mse, integer classes (T,) for cross_entropy"),
        argument("--loss", default="mse", help="a registered loss (default mse)"),
    ]):
        func = deco(func)
    return func


def _without_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` outside quotes, at the start or after a space),
    so that ``%bptt train net xs ys --epochs 50  # slow`` reads like Python."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def _store_argument(func):
    return argument("--as", dest="store_as", metavar="NAME", type=identifier,
                    help="also store the result in the notebook under NAME")(func)


@magics_class
class BPTTMagics(Magics):
    """``%bptt SUBCOMMAND ...`` and ``%%bptt exercise ID``."""

    @magic_arguments()
    @argument("subcommand", nargs="?", metavar="SUBCOMMAND", help=", ".join(SUBCOMMANDS))
    @argument("arguments", nargs=argparse.REMAINDER, metavar="...",
              help="the subcommand's arguments; %%bptt SUBCOMMAND -h shows them")
    @line_cell_magic
    def bptt(self, line: str, cell: str | None = None):
        """Backpropagation through time from a notebook cell: %bptt SUBCOMMAND [arguments]."""
        try:
            args = parse_argstring(self.bptt, _without_comment(line))
        except ValueError as exc:  # unbalanced quotes
            raise UsageError(f"%bptt: could not split the arguments: {exc}") from None
        sub = args.subcommand
        if sub is None or sub in ("-h", "--help", "help"):
            print(_overview())
            return None
        if sub not in SUBCOMMANDS:
            raise UsageError(f"%bptt: unknown subcommand {sub!r}; expected one of {', '.join(SUBCOMMANDS)}")
        if cell is None and sub in CELL_SUBCOMMANDS:
            raise UsageError(f"%bptt {sub} grades a whole cell: start the cell with %%bptt {sub} ID")
        if cell is not None and sub not in CELL_SUBCOMMANDS:
            raise UsageError(f"%%bptt {sub} is not a cell magic; use the line magic %bptt {sub} "
                             f"(cell magics: {', '.join(CELL_SUBCOMMANDS)})")
        method = getattr(self, f"_{sub}")
        if "-h" in args.arguments or "--help" in args.arguments:
            print(method.parser.format_help().replace("::\n\n  %", "usage: %", 1))
            return None
        try:
            parsed = method.parser.parse_args(args.arguments)
        except UsageError as exc:
            raise UsageError(_prefixed(sub, str(exc))) from None
        with _computing(sub):
            result = method(parsed) if cell is None else method(parsed, cell)
        if getattr(parsed, "store_as", None):
            self.shell.user_ns[parsed.store_as] = result
        return result

    # -- name lookup -----------------------------------------------------------------------------------

    def _value(self, expr: str, role: str):
        """The notebook variable (or expression) ``expr`` passed as ``role``."""
        ns = self.shell.user_ns
        if expr.isidentifier():
            if expr not in ns:
                raise UsageError(f"{role} {expr!r} is not defined in the notebook")
            return ns[expr]
        try:
            return eval(expr, self.shell.user_global_ns, ns)  # noqa: S307 - the student's own notebook
        except NameError as exc:
            raise UsageError(f"{role} {expr!r}: {exc} in the notebook") from None
        except Exception as exc:
            raise UsageError(f"{role} {expr!r} could not be evaluated: {type(exc).__name__}: {exc}") from None

    def _network(self, expr: str) -> Network:
        net = self._value(expr, "NET")
        if not isinstance(net, Network):
            raise UsageError(f"NET {expr!r} must be a bpttlab network (from %bptt new or bl.make), "
                             f"got {type(net).__name__}")
        return net

    def _data(self, args) -> tuple[Network, object, object]:
        return self._network(args.net), self._value(args.xs, "XS"), self._value(args.ys, "YS")

    # -- subcommands -------------------------------------------------------------------------------------

    @magic_arguments("bptt cells")
    def _cells(self, args):
        """List the registered cells, activations, losses and exercise packs, with where each comes from."""
        from .reports import plugin_list

        return plugin_list()

    @magic_arguments("bptt new")
    @argument("name", metavar="NAME", type=identifier, help="the variable to store the network in")
    @argument("cell", metavar="CELL", help="a registered cell: elman, jordan, ... (%%bptt cells)")
    @argument("--in", dest="n_in", metavar="D", type=positive_int, default=1, help="input size (default 1)")
    @argument("--hidden", metavar="H", type=positive_int, default=3, help="hidden size H (default 3)")
    @argument("--out", dest="n_out", metavar="O", type=positive_int, default=1, help="output size (default 1)")
    @argument("--act", default="tanh", help="a registered activation (default tanh)")
    @argument("--init", default="normal", choices=INITS, help="initialisation (default normal)")
    @argument("--seed", type=seed_int, default=0, help="seed of the initialisation (default 0)")
    def _new(self, args):
        """Create a network and store it in the notebook under NAME."""
        from .network import make

        net = make(args.cell, n_in=args.n_in, n_hidden=args.hidden, n_out=args.n_out, activation=args.act,
                   init=args.init, seed=args.seed)
        self.shell.user_ns[args.name] = net
        return net

    @magic_arguments("bptt derive")
    @argument("cell", metavar="CELL", help="a registered cell: elman, jordan, ...")
    @argument("--T", dest="T", type=positive_int, default=3, help="sequence length T (default 3)")
    @argument("--wrt", default="W", help="the parameter θ (default W)")
    @argument("--t", dest="t", type=positive_int, default=None, help="the loss E_t, 1 <= t <= T (default T)")
    @argument("--size", type=sizes, default=None, metavar="D,H,O",
              help="matrix sizes; default: scalar (every size 1)")
    @argument("--act", default="tanh", help="a registered activation (default tanh)")
    @argument("--loss", default="mse", help="a registered loss (default mse)")
    @argument("--k2", type=positive_int, default=None, help="truncation: keep the last k2 copies")
    @argument("--expanded", action="store_true",
              help="return dE_t/dθ as the written-out sum of its terms C[t][k] (a SymPy expression)")
    @_store_argument
    def _derive(self, args):
        """Derive dE_t/dθ with SymPy as an explicit term plus implicit terms through earlier states."""
        from .symbolic import derive

        d = derive(args.cell, T=args.T, wrt=args.wrt, t=args.T if args.t is None else args.t,
                   size="scalar" if args.size is None else args.size, activation=args.act, loss=args.loss,
                   k2=args.k2)
        return d.expanded if args.expanded else d

    @magic_arguments("bptt grad")
    @_data_arguments
    @argument("--reduction", default="sum", choices=validation.REDUCTIONS, help="sum (default) or mean")
    @argument("--k2", type=positive_int, default=None, help="truncation: each E_t keeps its last k2 copies")
    @argument("--clip", type=clip_spec, default=None, metavar="MODE:TAU", help="norm:5, value:1 or step:1")
    @argument("--wrt", default=None, help="the parameter split per time step (default the recurrent W)")
    @_store_argument
    def _grad(self, args):
        """Gradients of E by BPTT, with dE_t/dθ split into explicit and implicit parts per time step."""
        from .reports import gradient_report

        net, xs, ys = self._data(args)
        return gradient_report(net, xs, ys, loss=args.loss, reduction=args.reduction, k2=args.k2,
                               clip=args.clip, wrt=args.wrt)

    @magic_arguments("bptt check")
    @_data_arguments
    @argument("--k2", type=positive_int, default=None, help="truncation: each E_t keeps its last k2 copies")
    @argument("--reduction", default="sum", choices=validation.REDUCTIONS, help="sum (default) or mean")
    @argument("--rounded", action="store_true",
              help='show errors below the tolerance as "< tol", the same on every machine (for stored notebooks)')
    @_store_argument
    def _check(self, args):
        """Compare the SymPy derivation with the engine, term by term, at the network's values."""
        from .agreement import check

        net, xs, ys = self._data(args)
        report = check(net, xs, ys, loss=args.loss, reduction=args.reduction, k2=args.k2)
        return report.rounded() if args.rounded else report

    @magic_arguments("bptt train")
    @_data_arguments
    @argument("--k1", type=positive_int, default=None, help="forward steps between updates (default T)")
    @argument("--k2", type=positive_int, default=None, help="steps back-propagated, k2 >= k1 (default k1)")
    @argument("--lr", type=positive_float, default=0.1, help="learning rate (default 0.1)")
    @argument("--epochs", type=positive_int, default=1, help="passes over the sequence (default 1)")
    @argument("--reduction", default="sum", choices=validation.REDUCTIONS, help="sum (default) or mean")
    @argument("--clip", type=clip_spec, default=None, metavar="MODE:TAU", help="norm:5, value:1 or step:1")
    @argument("--no-plot", action="store_true", help="do not draw the loss curve")
    @_store_argument
    def _train(self, args):
        """Train NET in place by TBPTT(k1, k2) with SGD, with a progress bar, and plot the loss curve."""
        from .engine import train

        net, xs, ys = self._data(args)
        hist = train(net, xs, ys, k1=args.k1, k2=args.k2, lr=args.lr, clip=args.clip, epochs=args.epochs,
                     loss=args.loss, reduction=args.reduction, progress=True)
        if not args.no_plot:
            import matplotlib.pyplot as plt

            ax = hist.plot()
            display(ax.figure)
            plt.close(ax.figure)
        return hist

    @magic_arguments("bptt step")
    @_data_arguments
    @argument("--reduction", default="sum", choices=validation.REDUCTIONS, help="sum (default) or mean")
    @argument("--k2", type=positive_int, default=None, help="truncation: each E_t keeps its last k2 copies")
    @argument("--wrt", default=None, help="the parameter the backward pass follows (default the recurrent W)")
    @_store_argument
    def _step(self, args):
        """Step through the forward pass and then the backward pass, one copy of the cell at a time."""
        from .widgets import Stepper

        net, xs, ys = self._data(args)
        return Stepper(net, xs, ys, wrt=args.wrt, k2=args.k2, loss=args.loss, reduction=args.reduction)

    @magic_arguments("bptt flow")
    @_data_arguments
    @argument("--reduction", default="sum", choices=validation.REDUCTIONS, help="sum (default) or mean")
    @argument("--k2", type=positive_int, default=None, help="truncation: each E_t keeps its last k2 copies")
    @argument("--clip", type=clip_spec, default=None, metavar="MODE:TAU", help="norm:5, value:1 or step:1")
    @argument("--radius", type=positive_float, default=None,
              help="rescale the recurrent matrices to this spectral radius (default: as they are)")
    @argument("--measure", default="loss", choices=("loss", "state"),
              help="map |dE_t/dh_k| (loss, default) or |dh_t/dh_k| (state)")
    @_store_argument
    def _flow(self, args):
        """The T x T map of how much gradient flows back from each loss E_t to each earlier step k."""
        from .widgets import GradientFlow

        net, xs, ys = self._data(args)
        return GradientFlow(net, xs, ys, loss=args.loss, reduction=args.reduction, k2=args.k2, clip=args.clip,
                            radius=args.radius, measure=args.measure)

    @magic_arguments("bptt exercise")
    @argument("exercise_id", metavar="ID", help="the exercise, e.g. as listed by bl.registry.exercises")
    @_store_argument
    def _exercise(self, args, cell: str):
        """Run the cell, then grade what it defines against the exercise and show the feedback."""
        from .grading import run_exercise_cell

        return run_exercise_cell(self.shell, args.exercise_id, cell)


def _overview() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name.ljust(width)}  {summary}" for name, summary in SUBCOMMANDS.items()]
    return "\n".join(["%bptt SUBCOMMAND [arguments]   (%bptt SUBCOMMAND -h for one, %bptt? for all)", "",
                      *lines])


def _full_help() -> str:
    sections = [BPTTMagics.bptt.parser.format_help(), "Subcommands:", _overview()]
    sections += [getattr(BPTTMagics, f"_{name}").parser.format_help() for name in SUBCOMMANDS]
    return "\n\n".join(sections)


BPTTMagics.bptt.__doc__ = _full_help()
