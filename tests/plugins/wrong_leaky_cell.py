r"""A cell plugin with a subtly wrong backward pass, for the test that ``bl.check`` catches it.

Its equations (:meth:`symbolic_step`) and forward pass are the leaky cell's. Its backward pass makes a
mistake that is easy to make by hand: the leak carries back only the recurrent part of
:math:`\bar h_t`, forgetting the output's share :math:`V^\top \bar o_t`,

.. math::

    \text{right: } (1 - \alpha)\,\bar h_t, \qquad
    \text{wrong: } (1 - \alpha)\,(\bar h_t - V^\top \bar o_t).

So every explicit term C[t][t] is right, and so are V and c (used only by the output), but the implicit
terms of W, U and b are wrong from the first one on, C[2][1] (which is 0 for W, since h_0 = 0).
"""
from __future__ import annotations

import numpy as np

from plugins.leaky_cell import LeakyCell


class WrongLeakyCell(LeakyCell):
    name = "wrong_leaky"
    description = "leaky Elman cell whose backward pass drops the output gradient from the leak (a test fixture)"

    def window(self, params, trace, dO, act, cots, loss_lo, t_hi, k_lo, carry, tau):
        W, V = params["W"], params["V"]
        dh_next = np.array(carry, dtype=float)
        for t in range(t_hi - 1, k_lo - 1, -1):
            recurrent = dh_next.copy()
            dh = recurrent.copy()
            if t >= loss_lo:
                dh += dO[t] @ V
                cots["o"][t] += dO[t]
            da = self.alpha * act.df(trace["a"][t], trace["f"][t]) * dh
            cots["a"][t] += da
            dh_next = (1 - self.alpha) * recurrent + da @ W
        return dh_next
