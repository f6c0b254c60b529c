r"""The compiled tier a cell may add: whole-sequence kernels in *site form*.

Compiled (Numba) kernels make a cell fast; they are optional, and the engine (:mod:`bpttlab.engine.tiers`)
uses them only once they are compiled, with the cell's :meth:`~bpttlab.cells.base.Cell.step_vjp` as the
reference they are tested against (to 1e-12).

In site form every parameter :math:`\theta` enters the cell through one *site* (a pre-activation such as
:math:`a_t = W h_{t-1} + U x_t + b`) linearly, as :math:`\theta\, u_t` or as a bias. The kernels
back-propagate to the site cotangents :math:`\bar a_t = \partial E/\partial a_t`, and the gradient
reaching the copy-t parameter is assembled here, once for all cells:

.. math::

    \frac{\partial E}{\partial \theta_t} = \sum_b \bar a_{t,b}\, u_{t,b}^\top
    \quad (\text{bias: } \sum_b \bar a_{t,b}),

which is ``by_copy[t]``; summing over t gives the gradient, and for the cotangents of one loss E_t alone
it gives the per-timestep contributions C[t][k] of ARCHITECTURE.md.
"""
from __future__ import annotations

import importlib
import inspect
import math
from abc import ABC, abstractmethod
from typing import Mapping

import numpy as np

from ..activations import Activation


class Layout:
    """Named C-order float64 arrays laid out one after another in flat buffers (each starting on a
    64-byte boundary), so that a kernel takes a few flat buffers and their offsets instead of one argument
    per array: every argument a Numba call unboxes costs about as much as the arithmetic of a small pass.
    This is how a fused kernel (:meth:`SiteKernels.full_bptt`) hands over its arrays: ``dO`` ((T, B, O)
    dE_t/do_t, scaled for the reduction), ``E`` ((T, B) per-step, per-sequence losses, scaled like dO),
    ``losses`` ((T,) E summed over the batch), the trace arrays, and for every parameter ``grad NAME``
    (dE/dtheta), ``raw NAME`` (a copy of it) and ``param NAME`` (a copy of the parameter the pass ran with).

    Args:
        buffers: for each buffer, its arrays as (name, shape) pairs, in order.
        trace_names: trace key -> array name (the forward pass, as :meth:`SiteKernels.forward` returns it).
        param_names: the parameters, in order.
    """

    def __init__(self, buffers: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...],
                 trace_names: dict[str, str] | None = None, param_names: tuple[str, ...] = ()):
        self.where: dict[str, tuple[int, int, int, tuple[int, ...]]] = {}
        self.sizes: list[int] = []
        starts = []
        for i, arrays in enumerate(buffers):
            at = 0
            for name, shape in arrays:
                n = math.prod(shape)
                self.where[name] = (i, at, at + n, shape)
                starts.append(at)
                at += -(-n // 8) * 8
            self.sizes.append(at)
        #: the start of every array, in the order given (what the kernel reads)
        self.starts = np.array(starts, dtype=np.int64)
        self.trace_names, self.param_names = trace_names or {}, param_names
        self._groups = {prefix: tuple((p, self.where[f"{prefix} {p}"]) for p in param_names)
                        for prefix in ("grad", "raw", "param")} if param_names else {}

    def view(self, buffers: tuple[np.ndarray, ...], name: str) -> np.ndarray:
        """The array called ``name`` in ``buffers``."""
        i, start, stop, shape = self.where[name]
        return buffers[i][start:stop].reshape(shape)

    def per_param(self, buffers: tuple[np.ndarray, ...], prefix: str) -> dict[str, np.ndarray]:
        """The arrays ``prefix NAME`` (prefix grad, raw or param) of every parameter, by parameter name."""
        return {p: buffers[i][start:stop] if len(shape) == 1 else buffers[i][start:stop].reshape(shape)
                for p, (i, start, stop, shape) in self._groups[prefix]}


class SiteKernels(ABC):
    """A cell's compiled kernels (built-in activations only: they branch on ``Activation.code``)."""

    @abstractmethod
    def site_sizes(self, n_in: int, n_hidden: int, n_out: int) -> dict[str, int]:
        """Site name -> its size."""

    @abstractmethod
    def param_sites(self) -> dict[str, tuple[str, str | None]]:
        """Parameter -> (site, input), input the trace array it multiplies or None for a bias."""

    @abstractmethod
    def site_inputs(self, trace: Mapping[str, np.ndarray], xs: np.ndarray) -> dict[str, np.ndarray]:
        """Input name -> (T, B, n) array multiplied by the parameters at each site."""

    @abstractmethod
    def forward(self, params: Mapping[str, np.ndarray], xs: np.ndarray, s0: np.ndarray,
                act: Activation) -> dict[str, np.ndarray]:
        """Run T copies on xs (T, B, D) from s0 (B, S): a trace with at least ``states`` (T+1, B, S),
        ``outputs`` (T, B, O) and ``h`` (T+1, B, H), plus what the backward kernels need."""

    @abstractmethod
    def window(self, params, trace, dO: np.ndarray, act: Activation, cots: dict[str, np.ndarray],
               loss_lo: int, t_hi: int, k_lo: int, carry: np.ndarray, tau: float) -> np.ndarray:
        r"""Back-propagate through copies t_hi-1 down to k_lo (0-based), in place.

        The losses of copies ``loss_lo <= t < t_hi`` inject their ``dO[t]``; ``carry`` (B, S) is dE/ds_{t_hi}
        arriving from later copies. Site cotangents are *added* to ``cots[site][t]``. With ``tau > 0`` the
        state cotangent of each copy is rescaled per batch row to norm tau when larger.

        Returns:
            dE/ds at the window start (the state entering copy k_lo), shape (B, S).
        """

    def truncated(self, params, trace, dO, act, cots, k2: int, tau: float) -> None:
        """Site cotangents of :math:`\\sum_t E_t` when each E_t back-propagates through k2 copies."""
        B, S = trace["states"].shape[1:]
        for t in range(dO.shape[0]):
            self.window(params, trace, dO, act, cots, t, t + 1, max(0, t - k2 + 1), np.zeros((B, S)), tau)

    def chains(self, params, trace, dO, act, tables: dict[str, np.ndarray], t_lo: int, t_hi: int,
               k2: int, tau: float) -> None:
        """Site cotangents of each single loss E_t, t_lo <= t < t_hi, into ``tables[site][t - t_lo]``."""
        B, S = trace["states"].shape[1:]
        for t in range(t_lo, t_hi):
            row = {site: tab[t - t_lo] for site, tab in tables.items()}
            self.window(params, trace, dO, act, row, t, t + 1, max(0, t - k2 + 1), np.zeros((B, S)), tau)

    def full_bptt(self, params, xs: np.ndarray, y: np.ndarray, s0: np.ndarray, act: Activation,
                  scale: float) -> tuple[float, float, int, tuple[np.ndarray, ...], Layout] | None:
        """Optional fast path: full BPTT with a built-in loss in one kernel (forward pass, loss, backward
        pass, summed parameter gradients).

        Args:
            params, xs (T, B, D), s0 (B, S), act: as for :meth:`forward`, structurally valid (shapes,
                float64, C order) but not yet checked for NaN/inf.
            y: float (T, B, O) targets for mse, or int64 classes (T, B) for cross_entropy.
            scale: the reduction's factor (1 or 1/(T*B)) applied to every E_t and dE_t/do_t.

        Returns:
            (loss, squared gradient norm, first 0-based step with non-finite outputs or -1, buffers, their
            :class:`Layout`), or None where there is no fused kernel or it declines (an input is not
            finite, or does not fit, see :meth:`prepared_full_bptt`).
        """
        return None

    def prepared_full_bptt(self, params, T: int, B: int, act: Activation):
        """Optional: :meth:`full_bptt` made ready for repeated calls at this (T, B) with these parameter
        arrays (their contents may change between calls, not the arrays), as a function
        ``(xs, y, s0, scale)`` returning what :meth:`full_bptt` returns; the look-ups that depend only on
        the sizes are done here, once. The default just calls :meth:`full_bptt`.

        On a repeat call the engine has checked only that the parameters are the same arrays, still float64
        with the same number of dimensions: their shapes and strides can have changed in place
        (``a.shape = ...``), so the function must check those and decline (return None) where they no longer
        fit; the inputs, targets and s0 are checked as for :meth:`full_bptt`."""
        return lambda xs, y, s0, scale: self.full_bptt(params, xs, y, s0, act, scale)


class CompiledKernels:
    """``Cell.kernels`` for kernels kept in a module of their own, which is imported (with Numba) when the
    attribute is first read, not when the cell is: ``kernels = CompiledKernels("pkg.mod", "MyKernels")``.

    The engine reads it only to compile the cell (in the background) or once it is compiled, so
    ``import bpttlab`` and the per-copy tier never load Numba; :func:`has_kernels` says whether a cell
    has kernels without loading them. The first read checks the kernels' sites (:func:`validate_sites`)
    and replaces this descriptor on the cell's class by the kernels instance, so later reads are a plain
    attribute look-up.
    """

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, cell, owner: type) -> SiteKernels:
        kernels = getattr(importlib.import_module(self.module), self.name)()
        if cell is not None:
            validate_sites(cell.name, cell, kernels)
        setattr(owner, self.attribute, kernels)
        return kernels


def has_kernels(cell) -> bool:
    """Whether ``cell`` has compiled kernels, without importing them (see :class:`CompiledKernels`)."""
    return inspect.getattr_static(cell, "kernels", None) is not None


def validate_sites(name: str, cell, kernels: object) -> None:
    """Check compiled kernels' structure: every parameter has a site of matching shape."""
    if not isinstance(kernels, SiteKernels):
        raise TypeError(f"cell {name!r}: kernels must be a bpttlab.cells.sites.SiteKernels, "
                        f"got {type(kernels).__name__}")
    shapes = cell.param_shapes(2, 3, 4)
    sizes = kernels.site_sizes(2, 3, 4)
    sites = kernels.param_sites()
    if set(sites) != set(shapes):
        raise ValueError(f"cell {name!r}: param_sites() covers {sorted(sites)} but the parameters are "
                         f"{sorted(shapes)}")
    for p, (site, _) in sites.items():
        if site not in sizes or shapes[p][0] != sizes[site]:
            raise ValueError(f"cell {name!r}: parameter {p} {shapes[p]} does not fit its site {site!r}")


def assemble(kernels: SiteKernels, trace, xs, cots: dict[str, np.ndarray], per_copy: bool = False
             ) -> dict[str, np.ndarray]:
    """Parameter gradients from site cotangents (T, B, n): summed over copies, or per copy (T, *shape)."""
    inputs = kernels.site_inputs(trace, xs)
    out = {}
    for p, (site, inp) in kernels.param_sites().items():
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


def assemble_table(kernels: SiteKernels, trace, xs, tables: dict[str, np.ndarray], wrt: str) -> np.ndarray:
    """C[t][k] for one parameter from per-loss cotangent tables (n_losses, T, B, n)."""
    site, inp = kernels.param_sites()[wrt]
    c = tables[site]
    if inp is None:
        return c.sum(axis=2)
    return np.einsum("ukbi,kbj->ukij", c, kernels.site_inputs(trace, xs)[inp], optimize=True)
