r"""A cell plugin written outside bpttlab: the leaky integrator (the example of docs/write-a-cell.md).

    a_t = W h_{t-1} + U x_t + b,    h_t = (1 - alpha) h_{t-1} + alpha f(a_t),    o_t = V h_t + c.
"""
import sympy as sp

from bpttlab.cells.base import Cell


class LeakyCell(Cell):
    name = "leaky"
    description = "leaky integrator: h_t = (1 - alpha) h_{t-1} + alpha f(W h_{t-1} + U x_t + b)"

    def __init__(self, alpha: float = 0.5):
        self.alpha = alpha

    def param_shapes(self, n_in, n_hidden, n_out):
        return {"W": (n_hidden, n_hidden), "U": (n_hidden, n_in), "b": (n_hidden,),
                "V": (n_out, n_hidden), "c": (n_out,)}

    def state_size(self, n_hidden, n_out):
        return n_hidden

    def step(self, params, h_prev, x, act):
        a = h_prev @ params["W"].T + x @ params["U"].T + params["b"]
        f = act.f(a)
        return (1 - self.alpha) * h_prev + self.alpha * f, (h_prev, x, a, f)

    def step_vjp(self, params, cache, dh, act):
        h_prev, x, a, f = cache
        da = self.alpha * act.df(a, f) * dh  # dE/da_t, one row per sequence
        grads = {"W": da.T @ h_prev, "U": da.T @ x, "b": da.sum(axis=0)}
        return (1 - self.alpha) * dh + da @ params["W"], grads

    def symbolic_step(self, P, h_prev, x, f):
        alpha = sp.nsimplify(self.alpha)
        a = P["W"] * h_prev + P["U"] * x + P["b"]
        h = (1 - alpha) * h_prev + alpha * a.applyfunc(f)
        return h, P["V"] * h + P["c"]
