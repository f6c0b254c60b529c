"""A recurrent network: a cell plugin, an activation and a dict of parameters.

``bl.make("elman", n_in=1, n_hidden=3, n_out=1, activation="tanh", init="normal", seed=0)`` builds one.
``net.params`` is a plain dict of float64 arrays that the engine reads on every call, so a student can
edit a weight in place and see the effect at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import registry
from .activations import Activation
from .cells.base import Cell

INITS = ("normal", "orthogonal", "identity")

#: The attribute where the engine keeps its record of a network's checked parameters
#: (:class:`bpttlab.engine.core.CheckedParams`); any assignment to the network drops it.
CHECKED = "_checked_params"


@dataclass
class Network:
    """A recurrent network.

    Attributes:
        cell: the cell plugin (one copy of the step).
        activation: the activation f.
        params: parameter name -> float64 array (shapes from ``cell.param_shapes``).
        n_in, n_hidden, n_out: D, H, O.
    """

    cell: Cell
    activation: Activation
    n_in: int
    n_hidden: int
    n_out: int
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def __setattr__(self, name: str, value) -> None:
        # a new cell, activation, size or params dict voids what the engine found out about the parameters
        self.__dict__.pop(CHECKED, None)
        object.__setattr__(self, name, value)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self.cell.param_shapes(self.n_in, self.n_hidden, self.n_out)

    @property
    def state_size(self) -> int:
        return self.cell.state_size(self.n_hidden, self.n_out)

    def copy(self) -> "Network":
        """A network with the same cell and copies of the parameters."""
        return Network(self.cell, self.activation, self.n_in, self.n_hidden, self.n_out,
                       {k: v.copy() for k, v in self.params.items()})

    def spectral_radius(self, name: str = "W") -> float:
        """Largest |eigenvalue| of a square recurrent matrix (largest singular value if not square)."""
        M = self.params[name]
        if M.shape[0] == M.shape[1]:
            return float(np.max(np.abs(np.linalg.eigvals(M))))
        return float(np.linalg.norm(M, 2))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return (f"Network({self.cell.name}, D={self.n_in}, H={self.n_hidden}, O={self.n_out}, "
                f"activation={self.activation.name}; {shapes})")


def _size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def make(cell: str | Cell = "elman", n_in: int = 1, n_hidden: int = 3, n_out: int = 1,
         activation: str = "tanh", init: str = "normal", seed: int | None = 0) -> Network:
    """Build a network with freshly initialised parameters.

    Args:
        cell: a registered cell name ("elman", "jordan", ...) or a Cell instance.
        n_in, n_hidden, n_out: D, H, O.
        activation: a registered activation name.
        init: "normal" (N(0, 1/fan_in)), "orthogonal" or "identity" (recurrent matrices only).
        seed: seed of the NumPy generator used for the draw.

    Example:
        >>> net = make("elman", n_in=1, n_hidden=2, n_out=1, seed=0)
        >>> sorted(net.params)
        ['U', 'V', 'W', 'b', 'c']
    """
    cell_obj = cell if isinstance(cell, Cell) else registry.cells.get(cell, "cell")
    act = registry.activations.get(activation, "activation")
    cell_obj.check_activation(act)
    D, H, O = _size(n_in, "n_in"), _size(n_hidden, "n_hidden"), _size(n_out, "n_out")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    rng = np.random.default_rng(seed)
    params = cell_obj.init_params(D, H, O, init, rng)
    return Network(cell_obj, act, D, H, O, params)
