r"""The symbols of an unrolled network and their LaTeX names.

Time and components are 1-based, as in the lecture notes (arrays stay 0-based):

* scalar mode (D = H = O = 1): :math:`W, U, b, V, c`, :math:`x_t, h_t, a_t, o_t, y_t`;
* vector mode: entries :math:`W_{i,j}` and components :math:`h_{t,i}` (component i of :math:`h_t`),
  :math:`x_{t,i}, a_{t,i}, o_{t,i}, y_{t,i}`; a size-1 vector keeps the plain name.

A symbol's plain name (``h_3[2]``, ``W[1,2]``) is what ``str`` shows; :attr:`Names.latex` maps each
symbol to its LaTeX (``h_{3,2}``, ``W_{1,2}``) for :func:`sympy.latex` (``symbol_names=``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


@dataclass(frozen=True)
class Sizes:
    """D, H, O of a derivation; ``scalar`` when all three are 1."""

    D: int
    H: int
    O: int

    @property
    def scalar(self) -> bool:
        return self.D == self.H == self.O == 1

    def __str__(self) -> str:
        return "scalar" if self.scalar else f"({self.D}, {self.H}, {self.O})"


def parse_size(size) -> Sizes:
    """``"scalar"`` or a tuple (D, H, O) of positive ints.

    Raises:
        ValueError: anything else.
    """
    if isinstance(size, str):
        if size != "scalar":
            raise ValueError(f"size must be 'scalar' or a tuple (D, H, O) of positive ints, got {size!r}")
        return Sizes(1, 1, 1)
    if (not isinstance(size, (tuple, list)) or len(size) != 3
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size)):
        raise ValueError(f"size must be 'scalar' or a tuple (D, H, O) of positive ints, got {size!r}")
    return Sizes(*size)


def _base_latex(name: str) -> str:
    return sp.latex(sp.Symbol(name))


@dataclass
class Names:
    """Creates (and remembers) the symbols of one unrolled network.

    Attributes:
        state: the letter of the recurrent state (``cell.state_symbol``, "h" for Elman, "o" for Jordan).
        S: the state size; D, O the input and output sizes; ``scalar`` selects plain parameter names.
        latex: symbol -> LaTeX name, for ``sympy.latex(..., symbol_names=latex)``.
    """

    state: str
    S: int
    D: int
    O: int
    scalar: bool
    latex: dict = field(default_factory=dict)
    _made: dict = field(default_factory=dict)

    def _symbol(self, plain: str, tex: str) -> sp.Symbol:
        sym = self._made.get(plain)
        if sym is None:
            sym = self._made[plain] = sp.Symbol(plain, real=True)
            self.latex[sym] = tex
        return sym

    def parameter(self, name: str, shape: tuple[int, ...]) -> sp.Matrix:
        """The parameter as a Matrix of symbols: (m, n) for a matrix, a column (n, 1) for a vector."""
        base = _base_latex(name)
        wrapped = rf"\left({base}\right)" if "_" in base else base
        if self.scalar:
            return sp.Matrix(*((shape[0], 1) if len(shape) == 1 else shape),
                             lambda i, j: self._symbol(name, base))
        if len(shape) == 1:
            return sp.Matrix(shape[0], 1, lambda i, j: self._symbol(f"{name}[{i + 1}]", f"{wrapped}_{{{i + 1}}}"))
        return sp.Matrix(*shape, lambda i, j: self._symbol(f"{name}[{i + 1},{j + 1}]",
                                                            f"{wrapped}_{{{i + 1},{j + 1}}}"))

    def timed(self, letter: str, t: int, n: int) -> list[sp.Symbol]:
        """Components 1..n of the quantity ``letter`` at time t: ``h_3`` (n = 1) or ``h_3[i]``."""
        if n == 1:
            return [self._symbol(f"{letter}_{t}", f"{letter}_{{{t}}}")]
        return [self._symbol(f"{letter}_{t}[{i + 1}]", f"{letter}_{{{t},{i + 1}}}") for i in range(n)]

    def states(self, k: int) -> list[sp.Symbol]:
        """s_k (h_k for Elman, o_k for Jordan)."""
        return self.timed(self.state, k, self.S)

    def inputs(self, k: int) -> list[sp.Symbol]:
        return self.timed("x", k, self.D)

    def targets(self, t: int) -> list[sp.Symbol]:
        return self.timed("y", t, self.O)

    def preactivations(self, k: int, m: int) -> list[sp.Symbol]:
        """The m arguments of f at step k: a_k, or a_{k,1..m}."""
        return self.timed("a", k, m)

    def outputs(self, t: int) -> list[sp.Symbol]:
        return self.timed("o", t, self.O)

    def loss_gradient(self, t: int) -> list[sp.Symbol]:
        r"""Stand-ins for :math:`\partial E_t / \partial o_t`, one per output component."""
        if self.O == 1:
            return [self._symbol(f"dE_{t}/do_{t}", rf"\frac{{\partial E_{{{t}}}}}{{\partial o_{{{t}}}}}")]
        return [self._symbol(f"dE_{t}/do_{t}[{i + 1}]",
                             rf"\frac{{\partial E_{{{t}}}}}{{\partial o_{{{t},{i + 1}}}}}") for i in range(self.O)]
