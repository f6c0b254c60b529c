r"""A cell plugin with a subtly wrong backward pass, for the test that ``bl.check`` catches it.

Its equations (:meth:`symbolic_step`) and forward step are the leaky cell's. Its vjp makes a mistake that
is easy to make by hand: it forgets the leak path, the direct dependence of h_t on h_{t-1},

.. math::

    \text{right: } \bar h_{t-1} = (1 - \alpha)\,\bar h_t + W^\top \bar a_t, \qquad
    \text{wrong: } \bar h_{t-1} = W^\top \bar a_t .

So every explicit term C[t][t] is right, and so are V and c (used only by the output), but the implicit
terms of W, U and b are wrong from the first one on, C[2][1] (which is 0 for W, since h_0 = 0).
"""
from __future__ import annotations

from plugins.leaky_cell import LeakyCell


class WrongLeakyCell(LeakyCell):
    name = "wrong_leaky"
    description = "leaky cell whose vjp forgets the leak path (a test fixture)"

    def step_vjp(self, params, cache, dh, act):
        dh_prev, grads = super().step_vjp(params, cache, dh, act)
        return dh_prev - (1 - self.alpha) * dh, grads
