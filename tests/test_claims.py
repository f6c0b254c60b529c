"""bl.claim: prints the checked sentence, raises on a false one, refuses what is not one boolean."""
import numpy as np
import pytest

import bpttlab as bl
from bpttlab.claims import ClaimFailed


def test_a_true_claim_prints_its_sentence_with_a_tick(capsys):
    bl.claim("3 exceeds 2", 3 > 2)
    assert capsys.readouterr().out == "✔ 3 exceeds 2\n"


def test_a_numpy_boolean_counts(capsys):
    bl.claim("all positive", bool(np.all(np.arange(1, 4) > 0)))
    bl.claim("numpy bool", np.float64(1.0) > 0.5)
    assert capsys.readouterr().out.count("✔") == 2


def test_a_false_claim_raises_and_names_the_sentence(capsys):
    with pytest.raises(ClaimFailed, match="the plain step lands higher"):
        bl.claim("the plain step lands higher", 2.4 > 5.04)
    assert capsys.readouterr().out == ""
    assert issubclass(ClaimFailed, AssertionError)


@pytest.mark.parametrize("holds", [np.array([True, False]), 1, None, "yes"])
def test_holds_must_be_one_boolean(holds):
    with pytest.raises(TypeError, match="holds must be a single boolean"):
        bl.claim("x", holds)


@pytest.mark.parametrize("statement", ["", "  ", None, 3])
def test_statement_must_be_text(statement):
    with pytest.raises(TypeError, match="statement must be a non-empty string"):
        bl.claim(statement, True)
