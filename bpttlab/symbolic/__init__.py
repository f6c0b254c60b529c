r"""SymPy derivations of BPTT: every per-timestep gradient as an explicit term plus implicit terms.

For a parameter :math:`\theta` shared by all copies of a cell, :func:`derive` writes

.. math::

    \frac{\partial E_t}{\partial \theta} = \underbrace{C[t][t]}_{\text{explicit}}
    + \underbrace{\sum_{k<t} C[t][k]}_{\text{implicit}}, \qquad
    C[t][k] = \frac{\partial E_t}{\partial h_t}\,\frac{\partial h_t}{\partial h_k}\,
              \frac{\partial^+ h_k}{\partial \theta},

over the symbols of the unrolled network (x_k, h_k, a_k, o_t, y_t and the parameters), in recursive
and expanded form, renders it in LaTeX, and proves it (:meth:`Derivation.verify`) against SymPy's
derivative of the fully unrolled loss. Any cell plugin works through its ``symbolic_step``.

Modules: :mod:`.derivation` (``derive``), :mod:`.graph` (the unrolled network, cached),
:mod:`.template` (one copy and its local derivatives), :mod:`.names` (symbols), :mod:`.functions`
(the abstract activation f), :mod:`.render` (LaTeX, text), :mod:`.verify` and :mod:`.atoms` (the
proof), :mod:`.numeric` (evaluation at numbers), :mod:`.limits` (how large a derivation can be).

>>> from bpttlab.symbolic import derive
>>> derive("elman", T=2, wrt="V").implicit
0
"""
from .derivation import Derivation, derive
from .graph import clear_cache
from .limits import LIMITS, Limit
from .verify import Verification

__all__ = ["LIMITS", "Derivation", "Limit", "Verification", "clear_cache", "derive"]
