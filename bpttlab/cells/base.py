r"""The cell plugin interface and the parts every cell shares.

A cell is one copy of the recurrent step, :math:`(s_t, o_t) = \text{step}_\theta(s_{t-1}, x_t)`, where
:math:`s` is the recurrent state (h for Elman, GRU; o for Jordan; [h, c] for LSTM). A plugin supplies

* the sizes and shapes (:meth:`Cell.param_shapes`, :meth:`Cell.state_size`, :meth:`Cell.site_sizes`);
* the numeric forward pass and one backward kernel in *window form* (:meth:`Cell.forward`,
  :meth:`Cell.window`), normally Numba kernels;
* its symbolic step (:meth:`Cell.symbolic_step`), from which :mod:`bpttlab.symbolic` derives every term.

Parameter gradients are assembled here, once for all cells. Every parameter :math:`\theta` enters the
cell through one *site* (a pre-activation such as :math:`a_t = W h_{t-1} + U x_t + b`) linearly, as
:math:`\theta\, u_t` or as a bias. If :math:`\bar a_t = \partial E / \partial a_t` is the site cotangent
of copy t, the gradient reaching the copy-t parameter is

.. math::

    \frac{\partial E}{\partial \theta_t} = \sum_b \bar a_{t,b}\, u_{t,b}^\top
    \quad (\text{bias: } \sum_b \bar a_{t,b}),

which is ``by_copy[t]``; summing over t gives the gradient, and for the cotangents of one loss E_t alone
it gives the per-timestep contributions C[t][k] of ARCHITECTURE.md.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping, NamedTuple

import numpy as np

from ..activations import Activation


class FullPass(NamedTuple):
    """What a cell's fused full-BPTT kernel (:meth:`Cell.full_bptt`) hands the engine.

    Attributes:
        trace: the forward pass, as :meth:`Cell.forward` returns it.
        dO: (T, B, O) dE_t/do_t, scaled for the reduction.
        E: (T, B) per-step, per-sequence losses, scaled for the reduction.
        losses: (T,) E summed over the batch.
        loss: the total loss.
        grads: parameter name -> dE/dtheta.
        norm2: the squared global L2 norm of ``grads``.
        first_bad: first 0-based step with non-finite outputs, or -1.
    """

    trace: dict
    dO: np.ndarray
    E: np.ndarray
    losses: np.ndarray
    loss: float
    grads: dict
    norm2: float
    first_bad: int


class Cell(ABC):
    """One copy of a recurrent cell; subclasses are registered under ``bpttlab.cells``.

    Class attributes:
        name: registry name.
        description: one line for listings.
        state_symbol: what the recurrent state is called in formulas ("h", "o", ...).
        recurrent: names of the parameters that multiply the previous state (for initialisation).
    """

    name: str = ""
    description: str = ""
    state_symbol: str = "h"
    recurrent: tuple[str, ...] = ("W",)

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

    @abstractmethod
    def site_sizes(self, n_in: int, n_hidden: int, n_out: int) -> dict[str, int]:
        """Site name -> its size."""

    @abstractmethod
    def param_sites(self) -> dict[str, tuple[str, str | None]]:
        """Parameter -> (site, input), input the trace array it multiplies or None for a bias."""

    # -- numerics ------------------------------------------------------------------------------------
    @abstractmethod
    def forward(self, params: Mapping[str, np.ndarray], xs: np.ndarray, s0: np.ndarray,
                act: Activation) -> dict[str, np.ndarray]:
        """Run T copies on xs (T, B, D) from s0 (B, S).

        Returns a trace: at least ``states`` (T+1, B, S), ``outputs`` (T, B, O) and ``h`` (T+1, B, H),
        the hidden activity shown to students, plus whatever :meth:`window` and :meth:`site_inputs` need.
        """

    @abstractmethod
    def window(self, params: Mapping[str, np.ndarray], trace: Mapping[str, np.ndarray], dO: np.ndarray,
               act: Activation, cots: dict[str, np.ndarray], loss_lo: int, t_hi: int, k_lo: int,
               carry: np.ndarray, tau: float) -> np.ndarray:
        r"""Back-propagate through copies t_hi-1 down to k_lo (0-based), in place.

        The losses of copies ``loss_lo <= t < t_hi`` inject their ``dO[t]`` (dE_t/do_t, already scaled for
        the reduction); ``carry`` (B, S) is dE/ds_{t_hi} arriving from copies after the window. Site
        cotangents are *added* to ``cots[site][t]``. With ``tau > 0`` the state cotangent of each copy
        is rescaled per batch element to norm tau when it is larger ("step" clipping).

        Returns:
            dE/ds at the window start (the state entering copy k_lo), shape (B, S).
        """

    def truncated(self, params, trace, dO, act, cots, k2: int, tau: float) -> None:
        """Site cotangents of :math:`\\sum_t E_t` when each E_t back-propagates through k2 copies.

        The default calls :meth:`window` once per loss; cells may override it with a single kernel.
        """
        T, B = dO.shape[:2]
        S = trace["states"].shape[2]
        for t in range(T):
            self.window(params, trace, dO, act, cots, t, t + 1, max(0, t - k2 + 1), np.zeros((B, S)), tau)

    def chains(self, params, trace, dO, act, tables: dict[str, np.ndarray], t_lo: int, t_hi: int,
               k2: int, tau: float) -> None:
        """Site cotangents of each single loss E_t, t_lo <= t < t_hi, into ``tables[site][t - t_lo]``."""
        B = dO.shape[1]
        S = trace["states"].shape[2]
        for t in range(t_lo, t_hi):
            row = {site: tab[t - t_lo] for site, tab in tables.items()}
            self.window(params, trace, dO, act, row, t, t + 1, max(0, t - k2 + 1), np.zeros((B, S)), tau)

    def output_vjp(self, params, trace, dO: np.ndarray) -> np.ndarray:
        r"""What each loss puts on its own copy's state: :math:`\partial E_t/\partial s_t` through
        :math:`o_t` alone, (T, B, S) from ``dO`` = dE_t/do_t (T, B, O).

        This is the vector :meth:`window` adds to the state cotangent of copy t for the loss E_t. The
        default is for the shared output layer :math:`o_t = V h_t + c` with :math:`h_t` the leading
        ``n_hidden`` entries of :math:`s_t` (Elman, GRU, LSTM):

        .. math::

            \frac{\partial E_t}{\partial s_t} = \Bigl[\,V^\top \frac{\partial E_t}{\partial o_t},\; 0\,\Bigr].

        A cell whose state is something else (Jordan: :math:`s_t = o_t`) overrides it.
        """
        S = trace["states"].shape[2]
        H = params["V"].shape[1]
        out = np.zeros(dO.shape[:2] + (S,))
        out[..., :H] = dO @ params["V"]
        return out

    def full_bptt(self, params, xs: np.ndarray, y: np.ndarray, s0: np.ndarray, act: Activation,
                  scale: float) -> FullPass | None:
        """Optional fast path: full BPTT with a built-in loss in one kernel (forward pass, loss, backward
        pass, summed parameter gradients), for ``bl.bptt`` without truncation or step clipping.

        Args:
            params, xs (T, B, D), s0 (B, S), act: as for :meth:`forward`, structurally valid (shapes,
                float64, C order) but not yet checked for NaN/inf.
            y: float (T, B, O) targets for mse, or int64 classes (T, B) for cross_entropy.
            scale: the reduction's factor (1 or 1/(T*B)) applied to every E_t and dE_t/do_t.

        Returns:
            a :class:`FullPass`, or None where the cell has no fused kernel or an input is not finite
            (the engine then validates in full and uses :meth:`forward`, :meth:`window` and
            :func:`assemble`, which any cell provides).
        """
        return None

    @abstractmethod
    def site_inputs(self, trace: Mapping[str, np.ndarray], xs: np.ndarray) -> dict[str, np.ndarray]:
        """Input name -> (T, B, n) array multiplied by the parameters at each site."""

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


def validate_cell(name: str, obj: object) -> None:
    """Check a cell plugin's structure: type, name, and that every parameter has a site of matching
    shape. Whether its kernels agree with its equations is what :func:`bpttlab.check` proves."""
    if not isinstance(obj, Cell):
        raise TypeError(f"a cell plugin must be an instance of bpttlab.cells.base.Cell, got {type(obj).__name__}")
    if obj.name != name:
        raise ValueError(f"cell registered as {name!r} calls itself {obj.name!r}")
    shapes = obj.param_shapes(2, 3, 4)
    sizes = obj.site_sizes(2, 3, 4)
    sites = obj.param_sites()
    if set(sites) != set(shapes):
        raise ValueError(f"cell {name!r}: param_sites() covers {sorted(sites)} but the parameters are "
                         f"{sorted(shapes)}")
    for p, (site, _) in sites.items():
        if site not in sizes or shapes[p][0] != sizes[site]:
            raise ValueError(f"cell {name!r}: parameter {p} {shapes[p]} does not fit its site {site!r}")


def assemble(cell: Cell, trace, xs, cots: dict[str, np.ndarray], per_copy: bool = False
             ) -> dict[str, np.ndarray]:
    """Parameter gradients from site cotangents (T, B, n): summed over copies, or per copy (T, *shape)."""
    inputs = cell.site_inputs(trace, xs)
    out = {}
    for p, (site, inp) in cell.param_sites().items():
        c = cots[site]
        if inp is None:
            out[p] = c.sum(axis=1) if per_copy else c.sum(axis=(0, 1))
        elif per_copy:
            out[p] = np.einsum("tbi,tbj->tij", c, inputs[inp], optimize=True)
        else:
            T, B, n = c.shape
            u = inputs[inp]
            out[p] = c.reshape(T * B, n).T @ u.reshape(T * B, u.shape[2])
    return out


def assemble_table(cell: Cell, trace, xs, tables: dict[str, np.ndarray], wrt: str) -> np.ndarray:
    """C[t][k] for one parameter from per-loss cotangent tables (n_losses, T, B, n)."""
    site, inp = cell.param_sites()[wrt]
    c = tables[site]
    if inp is None:
        return c.sum(axis=2)
    return np.einsum("ukbi,kbj->ukij", c, cell.site_inputs(trace, xs)[inp], optimize=True)
