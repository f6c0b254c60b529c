"""bpttlab.symbolic: derivations proved against SymPy's own derivative and checked against the engine.

Oracles: ``Derivation.verify`` (SymPy's derivative of the fully unrolled loss, exactly), SymPy
identities between the parts, and the engine's ``bl.contributions`` evaluated at rational points.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import bpttlab as bl
from bpttlab.symbolic import LIMITS, derive
from bpttlab.symbolic.atoms import Atoms, derivative, difference

CELLS = ("elman", "jordan", "gru", "lstm")


def _params(cell, size=(1, 1, 1)):
    return list(bl.registry.cells.get(cell, "cell").param_shapes(*size))


def _assert_verified(d):
    v = d.verify(points=1)
    assert v.passed, repr(v)
    assert v.rows


# -- verify: every cell, every parameter -------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["elman", "jordan"])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5])
def test_verify_scalar_every_parameter_plain_cells(cell, T):
    for wrt in _params(cell):
        _assert_verified(derive(cell, T=T, wrt=wrt))


@pytest.mark.parametrize("cell,wrt", [(c, p) for c in ("gru", "lstm") for p in _params(c)])
def test_verify_scalar_every_parameter_gated_cells(cell, wrt):
    for T in (1, 2, 3, 4, 5):
        _assert_verified(derive(cell, T=T, wrt=wrt))


@pytest.mark.parametrize("cell,size,T", [("elman", (2, 2, 1), 3), ("jordan", (1, 2, 2), 3),
                                         ("gru", (1, 2, 1), 2), ("lstm", (1, 2, 1), 2)])
def test_verify_vector_mode(cell, size, T):
    for wrt in _params(cell, size):
        _assert_verified(derive(cell, T=T, wrt=wrt, size=size))


@pytest.mark.parametrize("kw", [dict(k2=2), dict(t=2), dict(activation="relu"), dict(activation="sigmoid"),
                                dict(h0="symbol")])
def test_verify_options(kw):
    _assert_verified(derive("elman", T=4, wrt="W", **kw))


def test_verify_cross_entropy_vector():
    _assert_verified(derive("elman", T=2, wrt="W", size=(1, 2, 2), loss="cross_entropy", targets=(1, 0)))


def test_verify_catches_a_wrong_term():
    d = derive("elman", T=3, wrt="W")
    d.terms[2] = d.terms[2] * 2          # a deliberately wrong implicit term
    d.__dict__.pop("implicit", None)
    d.__dict__.pop("total", None)
    v = d.verify(points=1)
    assert not v.passed
    assert {r.what for r in v.failures} >= {"explicit + implicit", "C[3][2]"}


# -- SymPy identities ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_terms_sum_to_total_and_explicit_is_the_diagonal(cell):
    wrt = "W" if cell in ("elman", "jordan") else _params(cell)[1]
    d = derive(cell, T=3, wrt=wrt)
    assert sp.expand(sum(d.terms.values()) - d.total) == 0
    assert d.explicit == d.terms[3]
    assert sp.expand(d.explicit + d.implicit - d.total) == 0
    assert sorted(d.terms) == [1, 2, 3]


@pytest.mark.parametrize("k2", [1, 2, 3, 4])
def test_truncation_drops_exactly_the_early_terms(k2):
    full = derive("jordan", T=4, wrt="U")
    cut = derive("jordan", T=4, wrt="U", k2=k2)
    kept = [k for k in range(1, 5) if k > 4 - k2]
    assert sorted(cut.terms) == kept
    assert cut.dropped == tuple(k for k in range(1, 5) if k <= 4 - k2)
    for k in kept:
        assert sp.expand(cut.terms[k] - full.terms[k]) == 0
    assert sp.expand(cut.total - sum(full.terms[k] for k in kept)) == 0


@pytest.mark.parametrize("wrt", ["V", "c"])
def test_output_layer_implicit_part_elman_zero_jordan_nonzero(wrt):
    for T in (2, 3):
        assert derive("elman", T=T, wrt=wrt).implicit == 0
        assert sp.expand(derive("jordan", T=T, wrt=wrt).implicit) != 0


def test_lstm_implicit_part_runs_through_the_cell_state():
    """With W_i = W_f = W_g = W_o = 0 the only path from copy 1 to E_2 is the cell state c_1."""
    d = derive("lstm", T=2, wrt="U_i")
    zero = {s: 0 for name in ("W_i", "W_f", "W_g", "W_o") for s in d.graph.entries[name]}
    assert sp.expand(d.terms[1].xreplace(zero)) != 0
    assert d.jacobian(2).shape == (2, 2)


def test_recursive_form_unfolds_to_the_total():
    d = derive("elman", T=3, wrt="W")
    eqs = d.recursive
    assert len(eqs) == 1 + 3
    values = {}
    for eq in reversed(eqs[1:]):
        values[eq.lhs] = eq.rhs.xreplace(values)
    assert sp.expand(eqs[0].rhs.xreplace(values) - d.total) == 0


# -- the engine as an independent oracle ---------------------------------------------------------------------

def _rational_network(cell, size, T, seed):
    D, H, O = size
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation="tanh", seed=seed)
    rng = np.random.default_rng(seed)
    for name, p in net.params.items():
        p[...] = rng.integers(-6, 7, size=p.shape) / 8
    xs = rng.integers(-8, 9, size=(T, D)) / 8
    ys = rng.integers(-8, 9, size=(T, O)) / 8
    return net, xs, ys


def _values(d, net, xs, ys):
    """Every quantity of the unrolled network at the network's values (multiples of 1/8, so 30-digit
    Floats hold them exactly), computed by SymPy from the cell's symbolic step."""
    g = d.graph
    leaves = {}
    for name, syms in g.entries.items():
        leaves |= {s: sp.Float(v, 30) for s, v in zip(syms, net.params[name].ravel())}
    for k in range(1, d.T + 1):
        leaves |= {s: sp.Float(v, 30) for s, v in zip(g.names.inputs(k), xs[k - 1])}
        leaves |= {s: sp.Float(v, 30) for s, v in zip(g.names.targets(k), ys[k - 1])}
    leaves |= {s: sp.Integer(0) for s in g.states(0)}
    return g.unroll(d.T, leaves, transform=d.concrete)


def _number(d, expr, values):
    m = expr if isinstance(expr, sp.MatrixBase) else sp.Matrix([expr])
    atoms = Atoms()
    return np.array([float(atoms.evaluate(e, {}, 30)) for e in d.concrete(m).xreplace(values)])


@pytest.mark.parametrize("cell,size", [("elman", (1, 1, 1)), ("elman", (2, 2, 1)), ("jordan", (1, 2, 2)),
                                       ("gru", (1, 1, 1)), ("gru", (1, 2, 1)), ("lstm", (1, 1, 1)),
                                       ("lstm", (1, 2, 1))])
def test_terms_agree_with_engine_contributions(cell, size):
    T = 3
    net, xs, ys = _rational_network(cell, size, T, seed=3)
    for wrt in _params(cell, size):
        C = bl.contributions(net, xs, ys, wrt)
        for t in range(1, T + 1):
            d = derive(cell, T=T, wrt=wrt, t=t, size="scalar" if size == (1, 1, 1) else size)
            values = _values(d, net, xs, ys)
            for k, term in d.terms.items():
                ours = _number(d, term, values).reshape(C.shape[2:])
                np.testing.assert_allclose(ours, C[t - 1, k - 1], rtol=1e-12, atol=1e-13,
                                           err_msg=f"{cell} {wrt} C[{t}][{k}]")


# -- rendering -------------------------------------------------------------------------------------------------

def test_latex_elman_scalar_shows_the_split_and_the_chain():
    tex = derive("elman", T=3, wrt="W")._repr_latex_()
    assert tex.startswith("$$") and tex.endswith("$$")
    for piece in (r"\text{explicit}", r"\text{implicit}", r"\prod_{j=k+1}^{t}", r"f'\left(a_{j}\right)",
                  "C_{3,3}", "C_{3,2}", "C_{3,1}", r"\partial^+ h_{2}", "y_{3}", "h_{2}", "W"):
        assert piece in tex, piece


def test_latex_vector_mode_uses_diag():
    tex = derive("elman", T=2, wrt="U", size=(2, 2, 1)).latex()
    for piece in (r"\operatorname{diag}\!\left(f'(a_{j})\right)\,W",
                  r"\underbrace{\operatorname{diag}\!\left(f'(a_{2})\right)\,W}_{\partial h_{2}/\partial h_{1}}",
                  "x_{2,1}", "V_{1,2}", r"f'\left(a_{2,2}\right)"):
        assert piece in tex, piece


@pytest.mark.parametrize("cell,wrt,pieces", [
    ("jordan", "V", [r"\partial o_{2}", r"V\,f'\left(a_{j}\right)\,W"]),
    ("gru", "W_z", [r"\sigma", r"\tanh", r"\prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}}"]),
    ("lstm", "W_f", [r"\sigma", r"\tanh", r"\prod_{j=k+1}^{t} \frac{\partial s_j}{\partial s_{j-1}}"]),
])
def test_latex_other_cells(cell, wrt, pieces):
    tex = derive(cell, T=3, wrt=wrt).latex()
    for piece in [r"\text{explicit}", r"\text{implicit}"] + pieces:
        assert piece in tex, piece


def test_plain_text_separates_explicit_and_implicit():
    text = str(derive("elman", T=3, wrt="U", k2=2))
    assert "explicit:" in text and "implicit (through h_2):" in text
    assert "C[3][2] = dE_3/do_3 * do_3/dh_3 * [f'(a_3)*W] * d+h_2/dU" in text
    assert "dropped by truncation k2=2: C[3][1]" in text


# -- limits and bad arguments -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_limits_scalar_t(cell):
    lim = LIMITS[cell]
    with pytest.raises(ValueError, match=rf"t={lim.scalar_t + 1} is beyond .* largest is t={lim.scalar_t}"):
        derive(cell, T=lim.scalar_t + 1, wrt="V")


def test_limits_vector_size_and_t():
    lim = LIMITS["gru"]
    with pytest.raises(ValueError, match=r"size=\(1, 5, 1\) is beyond .* e\.g\. size=\(1, 2, 1\)"):
        derive("gru", T=2, wrt="V", size=(1, 5, 1))
    with pytest.raises(ValueError, match=rf"largest is t={lim.vector_t} .* up to t={lim.scalar_t}"):
        derive("gru", T=lim.vector_t + 1, wrt="V", size=(1, 2, 1))


@pytest.mark.parametrize("kw,match", [
    (dict(cell="nope"), "cell"),
    (dict(wrt="Q"), r"wrt must be one of the elman parameters W, U, b, V, c, got 'Q'"),
    (dict(t=4), r"t must be in 1\.\.T=3, got 4"),
    (dict(T=0), "T must be a positive int"),
    (dict(size=(0, 1, 1)), "size must be 'scalar' or a tuple"),
    (dict(size="big"), "size must be 'scalar' or a tuple"),
    (dict(k2=0), "k2"),
    (dict(h0="one"), "h0 must be"),
])
def test_bad_arguments(kw, match):
    args = dict(cell="elman", T=3, wrt="W") | kw
    with pytest.raises(ValueError, match=match):
        derive(args.pop("cell"), **args)


def test_bad_points():
    with pytest.raises(ValueError, match="points must be a positive int"):
        derive("elman", T=2, wrt="W").verify(points=0)


# -- the exactness machinery ------------------------------------------------------------------------------------

def test_atoms_identify_equal_nested_functions():
    x, y = sp.symbols("x y", real=True)
    A = Atoms()
    a = A(sp.tanh(2 * (x + y)) * sp.tanh(x))
    b = A(sp.tanh(2 * x + 2 * y) * sp.tanh(x))
    assert difference(a, b) == 0
    assert difference(A(sp.tanh(x)), A(sp.tanh(y))) != 0


def test_memoized_derivative_equals_sympy_diff():
    x, y = sp.symbols("x y", real=True)
    h = x
    for _ in range(3):
        h = sp.tanh(y * h + x) * h
    assert sp.expand(derivative(h, x) - sp.diff(h, x)) == 0
