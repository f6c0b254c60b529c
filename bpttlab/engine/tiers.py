r"""The two tiers that run a cell across time, behind one interface.

Every engine operation is one of four, over copies of a cell with parameters ``params`` (a parameter
version: TBPTT runs older copies with older versions):

* :meth:`forward`: the trace of T copies from s_0;
* :meth:`backward`: one backward window. The losses of copies ``loss_lo <= t < t_hi`` inject
  :math:`\partial E_t/\partial o_t`, the carry :math:`\bar s_{t_{hi}}` enters from later copies, and the
  state cotangent goes back down to copy ``k_lo``:

  .. math::

      \bar s_t = \operatorname{clip}_\tau\Bigl(\bar s_{t+1}\frac{\partial s_{t+1}}{\partial s_t}
                 + [t \ge \text{loss\_lo}]\, \bar o_t \frac{\partial o_t}{\partial s_t}\Bigr), \qquad
      \frac{\partial E}{\partial \theta_t} = \bar s_t \frac{\partial^+ s_t}{\partial \theta}
                 + [t \ge \text{loss\_lo}]\, \bar o_t \frac{\partial^+ o_t}{\partial \theta};

* :meth:`truncated`: :math:`\sum_t E_t` with each loss back-propagated through its last k2 copies;
* :meth:`chains`: each loss alone, copy by copy: the rows C[t][k] of the decomposition.

:class:`PerCopy` does this for any cell from its one-step contract (:meth:`Cell.step`,
:meth:`Cell.step_vjp`, the readout) in NumPy: it is the definition. :class:`Compiled` runs a cell's
optional Numba kernels (:mod:`bpttlab.cells.sites`) and must agree with it (tests hold it to 1e-12).
:func:`tier` picks the compiled tier only once its kernels are compiled (:mod:`.compilation`), so a
result never waits for a compiler.
"""
from __future__ import annotations

import numpy as np

from ..activations import Activation
from ..cells.base import Cell
from ..cells.sites import Layout, SiteKernels, assemble, assemble_table, has_kernels
from . import compilation


def clip_rows(g: np.ndarray, tau: float) -> np.ndarray:
    """Rescale each row of g (B, S) to norm tau where it is larger ("step" clipping); tau = 0: as is."""
    if tau <= 0.0:
        return g
    n = np.sqrt(np.sum(g * g, axis=-1, keepdims=True))
    return np.where(n > tau, g * (tau / np.where(n > tau, n, 1.0)), g)


def _gradient_arrays(shapes: dict[str, tuple[int, ...]], lead: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {name: np.zeros(lead + shape) for name, shape in shapes.items()}


class PerCopy:
    """Any cell, one copy at a time, from its step and vjp (NumPy)."""

    compiled = False

    def __init__(self, cell: Cell, act: Activation):
        self.cell, self.act = cell, act

    def forward(self, params, xs: np.ndarray, s0: np.ndarray) -> dict:
        """The trace: ``states`` (T+1, B, S), ``h`` (T+1, B, H), the cell's named parts and step arrays,
        ``outputs`` (T, B, O), and ``caches`` (the steps' caches, which :class:`Trace` does not show)."""
        cell, act = self.cell, self.act
        T = xs.shape[0]
        s = np.asarray(s0, dtype=np.float64)
        states, hs, outputs, caches, named = [s], [cell.hidden(params, s, None)], [], [], {}
        for t in range(T):
            s, cache = cell.step(params, s, xs[t], act)
            states.append(s)
            caches.append(cache)
            hs.append(cell.hidden(params, s, cache))
            outputs.append(cell.readout(params, s))
            for name, value in cell.trace_arrays(cache).items():
                named.setdefault(name, []).append(value)
        stacked = np.stack(states)
        # the same arrays, in the same order, as the compiled kernels' traces (Trace.arrays shows them)
        return ({"states": stacked, "h": np.stack(hs)} | cell.state_parts(stacked)
                | {name: np.stack(values) for name, values in named.items()}
                | {"outputs": np.stack(outputs), "caches": caches})

    def walk(self, params, trace, dO, loss_lo: int, t_hi: int, k_lo: int, carry: np.ndarray, tau: float,
             visit) -> np.ndarray:
        """Go back from copy t_hi-1 to k_lo, calling ``visit(t, {parameter: dE/dtheta_t})`` at each copy;
        returns the carry dE/ds_{k_lo}."""
        cell, act = self.cell, self.act
        ds_next = np.array(carry, dtype=np.float64)
        for t in range(t_hi - 1, k_lo - 1, -1):
            ds, grads = ds_next, {}
            if t >= loss_lo:
                ds_out, grads = cell.readout_vjp(params, trace["states"][t + 1], dO[t])
                ds = ds + ds_out
            ds_next, g = cell.step_vjp(params, trace["caches"][t], clip_rows(ds, tau), act)
            for name, v in g.items():
                grads[name] = grads[name] + v if name in grads else v
            visit(t, grads)
        return ds_next

    def backward(self, params, trace, xs, dO, loss_lo: int, t_hi: int, k_lo: int, carry: np.ndarray,
                 tau: float, per_copy: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One backward window: (dE/ds_{k_lo}, gradients summed, or per copy (T, *shape))."""
        out = _gradient_arrays(_shapes(params), (xs.shape[0],) if per_copy else ())

        def add(t, grads):
            for name, g in grads.items():
                if per_copy:
                    out[name][t] += g
                else:
                    out[name] += g

        return self.walk(params, trace, dO, loss_lo, t_hi, k_lo, carry, tau, add), out

    def truncated(self, params, trace, xs, dO, k2: int, tau: float, per_copy: bool = False):
        """Gradients of sum_t E_t, each E_t back-propagated through copies t-k2+1..t on its own."""
        T, B = dO.shape[:2]
        S = trace["states"].shape[2]
        out = _gradient_arrays(_shapes(params), (T,) if per_copy else ())
        for t in range(T):
            _, g = self.backward(params, trace, xs, dO, t, t + 1, max(0, t - k2 + 1), np.zeros((B, S)), tau,
                                 per_copy)
            for name in out:
                out[name] += g[name]
        return out

    def chains(self, params, trace, xs, dO, t_lo: int, t_hi: int, k2: int, tau: float, wrt) -> dict:
        """C[t][k] for the losses t_lo <= t < t_hi: {name: (t_hi - t_lo, T, *shape)}."""
        T, B = dO.shape[:2]
        S = trace["states"].shape[2]
        shapes = _shapes(params)
        out = _gradient_arrays({name: shapes[name] for name in wrt}, (t_hi - t_lo, T))
        for t in range(t_lo, t_hi):
            row = {name: table[t - t_lo] for name, table in out.items()}

            def keep(k, grads, row=row):
                for name, table in row.items():
                    if name in grads:
                        table[k] = grads[name]

            self.walk(params, trace, dO, t, t + 1, max(0, t - k2 + 1), np.zeros((B, S)), tau, keep)
        return out

    def numbers_per_loss(self, net, T: int, B: int) -> int:
        """Numbers one loss's chain table holds (to size chunks of by_loss)."""
        return T * sum(int(np.prod(s)) for s in net.shapes.values())

    def full_bptt(self, params, xs, y, s0, scale) -> tuple[float, float, int, tuple, Layout] | None:
        return None


class Compiled:
    """A cell's compiled kernels (site form), behind the same interface as :class:`PerCopy`."""

    compiled = True

    def __init__(self, cell: Cell, kernels: SiteKernels, act: Activation):
        self.cell, self.kernels, self.act = cell, kernels, act

    def forward(self, params, xs, s0) -> dict:
        return self.kernels.forward(params, xs, s0, self.act)

    def _cotangents(self, trace, xs, lead=()) -> dict[str, np.ndarray]:
        T, B, O = trace["outputs"].shape
        sizes = self.kernels.site_sizes(xs.shape[2], trace["h"].shape[2], O)
        return {site: np.zeros(lead + (T, B, n)) for site, n in sizes.items()}

    def backward(self, params, trace, xs, dO, loss_lo, t_hi, k_lo, carry, tau, per_copy=False):
        cots = self._cotangents(trace, xs)
        carry = self.kernels.window(params, trace, dO, self.act, cots, loss_lo, t_hi, k_lo, carry, tau)
        return carry, assemble(self.kernels, trace, xs, cots, per_copy)

    def truncated(self, params, trace, xs, dO, k2, tau, per_copy=False):
        cots = self._cotangents(trace, xs)
        self.kernels.truncated(params, trace, dO, self.act, cots, k2, tau)
        return assemble(self.kernels, trace, xs, cots, per_copy)

    def chains(self, params, trace, xs, dO, t_lo, t_hi, k2, tau, wrt) -> dict:
        tables = self._cotangents(trace, xs, (t_hi - t_lo,))
        self.kernels.chains(params, trace, dO, self.act, tables, t_lo, t_hi, k2, tau)
        return {name: assemble_table(self.kernels, trace, xs, tables, name) for name in wrt}

    def numbers_per_loss(self, net, T: int, B: int) -> int:
        sizes = self.kernels.site_sizes(net.n_in, net.n_hidden, net.n_out)
        return T * (B * sum(sizes.values()) + sum(int(np.prod(s)) for s in net.shapes.values()))

    def full_bptt(self, params, xs, y, s0, scale) -> tuple[float, float, int, tuple, Layout] | None:
        return self.kernels.full_bptt(params, xs, y, s0, self.act, scale)

    def prepared_full_bptt(self, params, T: int, B: int):
        return self.kernels.prepared_full_bptt(params, T, B, self.act)


def _shapes(params) -> dict[str, tuple[int, ...]]:
    return {name: p.shape for name, p in params.items()}


_TIERS: dict[tuple, PerCopy | Compiled] = {}
_READY: dict[tuple, Compiled] = {}  # (cell, activation) -> its compiled tier, once it is ready


def exercise(cell: Cell) -> None:
    """Call every compiled kernel of ``cell`` once on a tiny problem, with the argument types the engine
    uses, so that Numba compiles them (or loads them from its cache): forward, the fused full BPTT with
    each built-in loss, a backward window with and without step clipping, truncation and the chains."""
    import numpy.random as npr

    from ..activations import TANH

    params = cell.init_params(1, 2, 2, "normal", npr.default_rng(0))
    kernels = Compiled(cell, cell.kernels, TANH)
    T, S = 3, cell.state_size(2, 2)
    xs = np.linspace(-1.0, 1.0, T).reshape(T, 1, 1)
    s0 = np.zeros((1, S))
    kernels.full_bptt(params, xs, np.zeros((T, 1, 2)), s0, 1.0)
    kernels.full_bptt(params, xs, np.zeros((T, 1), dtype=np.int64), s0, 1.0)
    trace = kernels.forward(params, xs, s0)
    dO = np.ones((T, 1, 2))
    for tau in (0.0, 1.0):
        kernels.backward(params, trace, xs, dO, 0, T, 0, s0, tau)
        kernels.truncated(params, trace, xs, dO, 2, tau)
        kernels.chains(params, trace, xs, dO, 0, T, 2, tau, tuple(params))


def warm(cell: Cell) -> float:
    """Compile ``cell``'s kernels now (waiting for a compilation already under way); returns seconds."""
    if not has_kernels(cell):
        return 0.0
    return compilation.compile_now(type(cell), lambda: exercise(cell))


def tier(cell: Cell, act: Activation, compiled: bool | None = None) -> PerCopy | Compiled:
    """The tier that runs ``cell`` with ``act`` now.

    Args:
        compiled: None picks the compiled tier when the cell has kernels for a built-in activation and
            they are compiled (starting their compilation in the background if they are not, see
            :mod:`.compilation`), the per-copy tier otherwise; True / False force one (True compiles
            first if need be, and falls back to per-copy where there are no kernels).
    """
    if compiled is None:
        found = _READY.get((cell, act))
        if found is not None and compilation._mode != "off":  # the hot path of small problems
            return found
    if act.code is None or compiled is False or not has_kernels(cell):  # has_kernels loads no Numba
        use = False
    elif compiled:
        warm(cell)
        use = True
    else:
        use = compilation.ready(type(cell), lambda: exercise(cell))
    key = (cell, act, use)
    found = _TIERS.get(key)
    if found is None:
        found = _TIERS[key] = Compiled(cell, cell.kernels, act) if use else PerCopy(cell, act)
    if use:
        _READY[cell, act] = found
    return found
