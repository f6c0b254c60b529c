"""The stepper in a real JupyterLab, driven by a headless Chromium.

Opens chapter 4 on the BPTT Lab kernel, runs its set-up cell and its stepper cell, checks that the widget
rendered (its controls and its drawing, no "Error displaying widget"), clicks Next, checks that the
highlighted step of the drawing moved to the next event, and saves a screenshot in the artifact folder.
"""
from __future__ import annotations

import pytest
from lab_cells import open_notebook, run_cell

pytestmark = pytest.mark.browser

CHAPTER = "04-vanishing-exploding.ipynb"
#: Longest wait for one thing to appear (the kernel start and the first engine call included).
WAIT_MS = 45_000


def test_the_stepper_renders_and_next_moves_the_highlighted_step(lab, page, artifacts):
    from playwright.sync_api import expect

    notebook = open_notebook(page, lab.notebook_url(CHAPTER), CHAPTER, WAIT_MS)
    setup = notebook.locator(".jp-CodeCell").first
    run_cell(page, setup, WAIT_MS)
    cell = notebook.locator(".jp-CodeCell", has_text="%bptt step").first
    run_cell(page, cell, WAIT_MS)

    output = cell.locator(".jp-Cell-outputArea")
    stepper = output.locator(".widget-vbox.bpttlab-stepper")
    expect(stepper.or_(output.get_by_text("Error displaying widget"))).to_be_visible(timeout=WAIT_MS)
    assert "Error displaying widget" not in output.inner_text()
    assert output.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0

    current = stepper.locator("svg.bpttlab-unfolded g.bpttlab-current")
    expect(current).to_have_attribute("data-position", "0", timeout=WAIT_MS)
    before = (current.get_attribute("data-phase"), current.get_attribute("data-step"))
    assert before == ("forward", "1")
    next_button = stepper.locator("button", has_text="Next")
    expect(next_button).to_be_enabled()
    next_button.click()
    expect(current).to_have_attribute("data-position", "1", timeout=WAIT_MS)
    assert (current.get_attribute("data-phase"), current.get_attribute("data-step")) == ("forward", "2")
    expect(stepper.locator(".bpttlab-event")).to_have_text("forward t=2")

    stepper.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "stepper-after-next.png"))
    stepper.screenshot(path=str(artifacts / "stepper-widget.png"))
