"""The Jordan derivation's text and LaTeX leave out the trivial factor do_t/do_t (the fed-back state is the
output itself); the Elman derivation keeps its factor do_t/dh_t."""
import bpttlab as bl


def test_jordan_chain_has_no_trivial_output_factor_and_elman_keeps_its_own():
    jordan = bl.derive("jordan", T=3, wrt="V", t=3)
    text, tex = str(jordan), jordan.latex()
    assert "do_t/do_t" not in text and "do_3/do_3" not in text
    assert "C[3][2] = dE_3/do_3 * [V*f'(a_3)*W] * d+o_2/dV" in text
    assert r"\frac{\partial o_t}{\partial o_t}" not in tex
    assert r"_{\partial o_{3}/\partial o_{3}}" not in tex
    elman = str(bl.derive("elman", T=3, wrt="V", t=3))
    assert "C[3][2] = dE_3/do_3 * do_3/dh_3 * [f'(a_3)*W] * d+h_2/dV" in elman
