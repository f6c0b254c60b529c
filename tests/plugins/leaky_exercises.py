"""An exercise pack for the leaky-integrator cell plugin (docs/write-a-cell.md): the reference answers come
from the engine running the plugin cell, like every built-in exercise's."""

import bpttlab as bl
from bpttlab.grading import Exercise, ExercisePack, Slip

from plugins.leaky_cell import LeakyCell

CELL = LeakyCell(alpha=0.5)


def problem(rng):
    """A random instance: parameters of a D=2, H=3, O=1 network and a sequence of 5 steps."""
    net = bl.make(CELL, n_in=2, n_hidden=3, n_out=1, seed=int(rng.integers(2**31)))
    return dict(net.params, xs=rng.normal(size=(5, 2)), targets=rng.normal(size=(5, 1)))


def grad_W(W, U, b, V, c, xs, targets):
    net = bl.make(CELL, n_in=2, n_hidden=3, n_out=1)
    net.params = {"W": W, "U": U, "b": b, "V": V, "c": c}
    return bl.bptt(net, xs, targets).grads["W"]


PACK = ExercisePack("leaky", "the leaky integrator: its BPTT gradient", (
    Exercise(id="leaky-grad-W", title="dE/dW of the leaky integrator", chapter="write a cell",
             prompt=r"Return $\partial E/\partial W$ of the leaky cell ($\alpha = 1/2$, tanh, mse) over the "
                    "whole sequence.",
             function="grad_W", signature="grad_W(W, U, b, V, c, xs, targets) -> ndarray (H, H)",
             parameter="dE/dW", generate=problem, reference=grad_W,
             slips=(Slip("sign_flipped", "dE_t/do_t taken as y_t - o_t", lambda **kw: -grad_W(**kw)),),
             hints=("The leak passes (1 - alpha) of each state's gradient straight back to the state before.",)),
))
