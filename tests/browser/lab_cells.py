"""Opening a notebook and running its cells in JupyterLab from Playwright, the way a student does.

Under load (two cores, a kernel compiling in the background) a click can land while the panel still
settles and a key press can go nowhere, which leaves the cell unrun: its prompt stays as it was (``[ ]:``
for a cell not run yet). The helper therefore checks that the run was taken (the prompt changed, to
``[*]:`` or a new ``[n]:``) and tries again if it was not, then waits for the kernel to finish the cell. A dialog that blocks the page
is named in the failure.
"""
from __future__ import annotations

import re

#: How long a run may take to be taken by the notebook (its prompt changes).
TAKEN_MS = 10_000
#: Attempts at click + Shift+Enter before the test fails.
ATTEMPTS = 4

FINISHED = re.compile(r"\[\d+\]:")


def open_notebook(page, url: str, name: str, wait_ms: int):
    """Go to ``url`` (a notebook called ``name``), wait until it is the visible tab, its first cell is shown
    and its kernel, BPTT Lab, is connected and idle; return the notebook's locator."""
    from playwright.sync_api import expect

    page.goto(url)
    current = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    expect(current).to_contain_text(name, timeout=wait_ms)
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    expect(notebook.locator(".jp-Cell").first).to_be_visible(timeout=wait_ms)
    # the status bar names the kernel and its state once the kernel is connected
    kernel = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"BPTT Lab \(Python 3\) \| Idle"))
    expect(kernel).to_be_visible(timeout=wait_ms)
    assert page.locator(".jp-Dialog").count() == 0, "JupyterLab asked for a kernel: is 'bpttlab' installed?"
    return notebook


def run_cell(page, cell, wait_ms: int) -> None:
    """Run ``cell`` (click its editor, Shift+Enter) and wait up to ``wait_ms`` for its prompt to show a
    new execution count ``[n]:``; retry the click and key press while the notebook did not take the run."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    prompt = cell.locator(".jp-InputArea-prompt")
    before = re.compile(rf"^\s*{re.escape(prompt.inner_text().strip())}\s*$")
    loading = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Spinner").first
    for _ in range(ATTEMPTS):
        expect(loading).to_be_hidden(timeout=wait_ms)  # the panel's spinner covers it while the file loads
        try:
            cell.locator(".jp-InputArea-editor").click(timeout=TAKEN_MS)
            expect(cell).to_have_class(re.compile(r"\bjp-mod-active\b"), timeout=TAKEN_MS)
            page.keyboard.press("Shift+Enter")
            expect(prompt).not_to_have_text(before, timeout=TAKEN_MS)
            break
        except (AssertionError, PlaywrightTimeout):
            continue
    else:
        dialogs = page.locator(".jp-Dialog")
        blocked = f"; a dialog is open: {dialogs.first.inner_text()!r}" if dialogs.count() else ""
        raise AssertionError(f"the notebook did not take the cell's run after {ATTEMPTS} click + Shift+Enter"
                             f" attempts (prompt {prompt.inner_text()!r}){blocked}")
    expect(prompt).to_have_text(FINISHED, timeout=wait_ms)
