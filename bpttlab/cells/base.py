r"""The cell contract: what a recurrent cell must say about itself, and nothing more.

A cell is one copy of the recurrent step. Written with the recurrent state :math:`s` (h for Elman and
GRU; o for Jordan; [h; c] for the LSTM):

.. math::

    s_t = \text{step}_\theta(s_{t-1}, x_t), \qquad o_t = \text{readout}_\theta(s_t).

A cell supplies

* its sizes: :meth:`Cell.param_shapes` and :meth:`Cell.state_size`;
* one forward step, :meth:`Cell.step`, on a batch (B rows), and that step's vector-Jacobian product,
  :meth:`Cell.step_vjp`: given :math:`\bar s_t = \partial E/\partial s_t` it returns
  :math:`\bar s_{t-1} = \bar s_t\, \partial s_t/\partial s_{t-1}` and the gradient reaching *this copy*
  of each parameter, :math:`\bar s_t\, \partial^+ s_t/\partial\theta` (summed over the batch);
* its symbolic step (:meth:`Cell.symbolic_step`, SymPy), from which :mod:`bpttlab.symbolic` derives every
  term, and which :func:`bpttlab.check` compares with the numbers;
* the readout :math:`o_t` and its vjp only if they differ from the shared output layer
  :math:`o_t = V h_t + c` on the leading H entries of :math:`s_t` (the defaults).

Everything across time is the engine's (:mod:`bpttlab.engine`), once for every cell: the time loop, the
losses, truncation k2, every clipping mode, the per-loss chains of the decomposition C[t][k], TBPTT and
checkpointing. A cell may add compiled kernels (:attr:`Cell.kernels`, see :mod:`bpttlab.cells.sites`) to
go faster; the engine uses them when they are compiled and gives the same numbers without them.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, Mapping

import numpy as np

from ..activations import Activation


class Cell(ABC):
    """One copy of a recurrent cell; instances are registered under ``bpttlab.cells``.

    Class attributes:
        name: registry name.
        description: one line for listings.
        state_symbol: what the recurrent state is called in formulas ("h", "o", ...).
        recurrent: names of the parameters that multiply the previous state (for initialisation).
        kernels: optional compiled acceleration (a :class:`bpttlab.cells.sites.SiteKernels`), or None.
    """

    name: str = ""
    description: str = ""
    state_symbol: str = "h"
    recurrent: tuple[str, ...] = ("W",)
    kernels = None

    # -- sizes ---------------------------------------------------------------------------------------
    @abstractmethod
    def param_shapes(self, n_in: int, n_hidden: int, n_out: int) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in display order."""

    @abstractmethod
    def state_size(self, n_hidden: int, n_out: int) -> int:
        """Size S of the recurrent state s_t."""

    def check_activation(self, act: Activation) -> None:
        """Raise ValueError if this cell cannot use the activation ``act`` (called by ``bl.make``).

        Any activation fits by default; a cell whose nonlinearities are fixed (GRU, LSTM) says so here.
        """

    # -- one step ------------------------------------------------------------------------------------
    @abstractmethod
    def step(self, params: Mapping[str, np.ndarray], s_prev: np.ndarray, x: np.ndarray,
             act: Activation) -> tuple[np.ndarray, Any]:
        """One copy on a batch: s_prev (B, S), x (B, D) -> (s (B, S), cache), the cache holding whatever
        :meth:`step_vjp` and :meth:`hidden` need (the engine only keeps it)."""

    @abstractmethod
    def step_vjp(self, params: Mapping[str, np.ndarray], cache: Any, ds: np.ndarray,
                 act: Activation) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r"""The step's vector-Jacobian product for ds = dE/ds_t (B, S).

        Returns:
            (dE/ds_{t-1} (B, S), {parameter: dE/dtheta of this copy, summed over the batch}); parameters
            the step does not use (the readout's V, c) may be left out.
        """

    def readout(self, params: Mapping[str, np.ndarray], s: np.ndarray) -> np.ndarray:
        """The output o_t (B, O) of the state s_t (B, S): the shared layer V h_t + c, h_t = s_t[:, :H]."""
        V = params["V"]
        return s[:, :V.shape[1]] @ V.T + params["c"]

    def readout_vjp(self, params: Mapping[str, np.ndarray], s: np.ndarray,
                    do: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r"""What a loss puts on its own copy: :math:`\partial E_t/\partial s_t` through :math:`o_t` alone,
        and the readout's parameter gradients, from do = dE_t/do_t (B, O).

        .. math::

            \frac{\partial E_t}{\partial s_t} = \Bigl[\,V^\top \bar o_t,\; 0\,\Bigr], \qquad
            \frac{\partial E_t}{\partial V} = \bar o_t^\top h_t, \qquad \frac{\partial E_t}{\partial c} = \textstyle\sum_b \bar o_{t,b}.
        """
        V = params["V"]
        h = s[:, :V.shape[1]]
        ds = np.zeros_like(s)
        ds[:, :V.shape[1]] = do @ V
        return ds, {"V": do.T @ h, "c": do.sum(axis=0)}

    def trace_arrays(self, cache: Any) -> dict[str, np.ndarray]:
        """Named intermediate values of one step (each (B, n)) that the trace exposes, stacked over time,
        as ``Trace.arrays[name]`` (T, B, n): the pre-activation ``a`` of Elman and Jordan, the ``gates``
        of GRU and LSTM. None by default."""
        return {}

    def state_parts(self, states: np.ndarray) -> dict[str, np.ndarray]:
        """Named parts of the states (T+1, B, S) that the trace exposes after ``h`` (the LSTM's cell
        state ``c``). None by default."""
        return {}

    def hidden(self, params: Mapping[str, np.ndarray], s: np.ndarray, cache: Any) -> np.ndarray:
        """The hidden activity h_t (B, H) shown to students (cache is None for the initial state)."""
        return s[:, :params["V"].shape[1]]

    # -- symbolic ------------------------------------------------------------------------------------
    @abstractmethod
    def symbolic_step(self, P: Mapping, s_prev, x, f):
        """One copy in SymPy: P maps parameter names to Matrices, s_prev (S x 1) and x (D x 1) are
        Matrices, f is the activation applied elementwise to a scalar. Returns (s, o) as Matrices."""

    # -- initialisation ------------------------------------------------------------------------------
    def init_params(self, n_in: int, n_hidden: int, n_out: int, init: str,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
        r"""Initial parameters: biases 0; matrices :math:`\mathcal N(0, 1/\text{fan\_in})`.

        ``init`` changes the recurrent matrices only: "orthogonal" draws a (semi-)orthogonal matrix
        (QR of a Gaussian), "identity" sets them to I (the IRNN of Le, Jaitly and Hinton 2015, for relu).
        """
        params = {}
        for name, shape in self.param_shapes(n_in, n_hidden, n_out).items():
            if len(shape) == 1:
                params[name] = np.zeros(shape)
            elif name in self.recurrent and init == "orthogonal":
                q, r = np.linalg.qr(rng.normal(size=(max(shape), min(shape))))
                q = q * np.sign(np.diag(r))
                params[name] = np.ascontiguousarray(q if shape[0] >= shape[1] else q.T)
            elif name in self.recurrent and init == "identity":
                params[name] = np.eye(*shape)
            else:
                params[name] = rng.normal(size=shape) / np.sqrt(shape[1])
        return params


def dense_grads(da: np.ndarray, **inputs: np.ndarray | None) -> dict[str, np.ndarray]:
    r"""Gradients of the parameters of one affine site :math:`a = \sum_\theta \theta\, u_\theta (+ b)` from
    its cotangent da (B, n): :math:`\bar a^\top u` for each named input u (B, m), :math:`\sum_b \bar a_b`
    for a bias (input None)."""
    return {name: da.sum(axis=0) if u is None else da.T @ u for name, u in inputs.items()}


def validate_cell(name: str, obj: object) -> None:
    """Check a cell plugin's structure: type, name, the shapes one step and its vjp return on a tiny
    batch, and its compiled kernels' sites if it has any. Whether its step, vjp and symbolic step agree
    is what :func:`bpttlab.check` proves."""
    if not isinstance(obj, Cell):
        raise TypeError(f"a cell plugin must be an instance of bpttlab.cells.base.Cell, got {type(obj).__name__}")
    if obj.name != name:
        raise ValueError(f"cell registered as {name!r} calls itself {obj.name!r}")
    _probe(name, obj)
    from .sites import CompiledKernels, validate_sites

    kernels = inspect.getattr_static(obj, "kernels", None)
    if kernels is not None and not isinstance(kernels, CompiledKernels):  # checked when first read
        validate_sites(name, obj, obj.kernels)


def _probe(name: str, cell: Cell) -> None:
    """One step, its vjp and the readout on a batch of 2 (D=2, H=3, O=4, tanh): the shapes they return
    and the names of the vjp's gradients must fit the cell's parameters."""
    from ..activations import TANH

    rng = np.random.default_rng(0)
    B, D, H, O = 2, 2, 3, 4
    params = cell.init_params(D, H, O, "normal", rng)
    S = cell.state_size(H, O)

    def expect(what: str, value, shape: tuple[int, ...]) -> None:
        if np.shape(value) != shape:
            raise ValueError(f"cell {name!r}: {what} has shape {np.shape(value)}, expected {shape} "
                             f"(B={B}, D={D}, H={H}, O={O}, S={S})")

    s, cache = cell.step(params, 0.1 * rng.normal(size=(B, S)), rng.normal(size=(B, D)), TANH)
    expect("the state step() returns", s, (B, S))
    expect("the output readout() returns", cell.readout(params, s), (B, O))
    ds_prev, grads = cell.step_vjp(params, cache, np.ones((B, S)), TANH)
    expect("the state cotangent step_vjp() returns", ds_prev, (B, S))
    for p, g in grads.items():
        if p not in params:
            raise ValueError(f"cell {name!r}: step_vjp returned a gradient for {p!r}, which is not a parameter "
                             f"({', '.join(params)})")
        expect(f"the gradient of {p} step_vjp() returns", g, params[p].shape)
