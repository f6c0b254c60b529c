"""A chapter's claims fail when a constant behind them changes: the cliff of chapter 04b and the
counterexample of chapter 04, run in-process from the stored notebooks with one constant edited."""
import matplotlib
import nbformat
import pytest

import bpttlab as bl

matplotlib.use("Agg")
WORKBOOKS = __import__("pathlib").Path(__file__).resolve().parent.parent / "workbooks"


def run_cells(chapter: str, upto: str, edit: tuple[str, str] | None = None) -> None:
    """Execute the code cells of ``chapter`` (no magics) up to the one containing ``upto``, with
    ``edit = (old, new)`` applied to the source first (it must occur)."""
    nb = nbformat.read(WORKBOOKS / chapter, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and not c.source.lstrip().startswith("%")]
    end = next(i for i, s in enumerate(cells) if upto in s)
    source = "\n".join(s for s in cells[:end + 1] if "%bptt" not in s)
    if edit is not None:
        assert edit[0] in source
        source = source.replace(*edit)
    exec(compile(source, chapter, "exec"), {})


CASES = [
    ("04b-clipping.ipynb", "the peak lies within one grid step", ("T_1, h0 = 30, np.array([0.5])", "T_1, h0 = 30, np.array([0.4])")),
    ("04-vanishing-exploding.ipynb", "yet ||dh_30/dh_0|| is about 3e5", ("b=np.array([2.0, 10.0])", "b=np.array([2.0, 1.0])")),
]


@pytest.mark.parametrize("chapter, claim, edit", CASES, ids=[c[0] for c in CASES])
def test_claims_hold_as_stored_and_fail_when_a_constant_changes(chapter, claim, edit):
    run_cells(chapter, claim)
    with pytest.raises(bl.claims.ClaimFailed):
        run_cells(chapter, claim, edit)
