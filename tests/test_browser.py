"""The course in a real browser: JupyterLab in Debian's Chromium, driven through Playwright.

For the learner notebooks of 01 and 04, as a learner meets them: every cell runs, matplotlib figures and
ipywidgets sliders render, moving a slider redraws its plot, and an untouched exercise's check fails with
its message. nbgrader's Validate button works from the notebook toolbar. Screenshots of each step go to
test-artifacts/screenshots/.

JupyterLab serves a temporary copy of course/ (Validate saves the notebook first), on 127.0.0.1 only; the
browser cannot resolve any other host, and the test fails if a page asks for anything outside the server.
Needs /usr/bin/chromium (tests/browser/install_chromium.sh; `make setup` runs it as root). Without it the
test is skipped, except under CI (CI=true), where a missing browser is a failure.
"""
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser.lab import ROOT, LabServer, open_notebook, run_all_cells
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect, sync_playwright

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
MISSING_CHROMIUM = (f"{CHROMIUM} not found: install it with 'sudo apt-get install chromium', "
                    "or run 'make setup' as root")
if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(MISSING_CHROMIUM, allow_module_level=True)  # under CI the browser fixture fails instead
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 # Every host name fails to resolve: the page can reach the local server and nothing else.
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
NOTEBOOKS = ["01_causal_masks", "04_state_variables"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# What the checks (autograder.checks) say about an exercise left untouched, shown as an error output.
NOT_DONE = {"numeric or choice answer": "not answered yet", "code exercise": "not attempted yet"}
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
SECONDS = 1000  # Playwright timeouts are in milliseconds


def notebook_path(name):
    return f"course/{name}/{name}.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    missing = [notebook_path(n) for n in NOTEBOOKS if not (ROOT / notebook_path(n)).exists()]
    if missing:
        pytest.fail(f"learner notebooks missing: {missing}; generate them with nbgrader generate_assignment")
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copytree(ROOT / "course", root / "course")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    server = LabServer(root, tmp_path_factory.mktemp("lab-state"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab, request):
    """A fresh browser context on the server; `page.outside` lists requests for anything but the server."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.outside = []

    def record_outside(req):
        url = urlsplit(req.url)
        if url.scheme not in ("data", "blob") and url.netloc != f"127.0.0.1:{lab.port}":
            page.outside.append(req.url)

    page.on("request", record_outside)
    try:
        yield page
        screenshot(page, f"{request.node.name}-end")  # the last state, most useful when the test failed
    finally:
        context.close()


def screenshot(target, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png")


def image_sources(cell):
    return cell.evaluate("cell => [...cell.querySelectorAll('.jp-OutputArea-output img')].map(i => i.src)")


def move_slider(cell):
    """Move the cell's first slider one step with the keyboard, as a learner could."""
    handle = cell.get_by_role("slider").first
    value = handle.get_attribute("aria-valuenow")
    at_top = float(value) >= float(handle.get_attribute("aria-valuemax"))
    handle.focus()
    handle.press("ArrowLeft" if at_top else "ArrowRight")
    expect(handle).not_to_have_attribute("aria-valuenow", value)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_learner_notebook_runs_with_widgets(lab, page, name):
    open_notebook(page, lab, notebook_path(name))
    run_all_cells(page)
    screenshot(page, f"{name}-1-ran")

    outputs = page.locator(".jp-OutputArea-output")
    figure = outputs.locator("img").first
    expect(figure, f"{name}: no figure in any output").to_be_visible()
    assert figure.evaluate("img => img.naturalWidth") > 0, "the figure's image did not decode"
    expect(outputs.filter(has_text="Error displaying widget")).to_have_count(0)

    # A cell whose output holds a slider and a figure: moving the slider must redraw the figure.
    cell = page.locator(".jp-CodeCell").filter(has=page.locator(".widget-slider")).filter(
        has=page.locator(".jp-OutputArea-output img")).first
    expect(cell.locator(".widget-slider").first, f"{name}: no slider next to a figure").to_be_visible()
    output = cell.locator(".jp-Cell-outputWrapper")
    screenshot(output, f"{name}-2-slider-before")
    before = image_sources(cell)
    move_slider(cell)
    try:
        page.wait_for_function(
            "([cell, before]) => { const now = [...cell.querySelectorAll('.jp-OutputArea-output img')]"
            ".map(i => i.src); return now.length > 0 && now.join() !== before.join(); }",
            arg=[cell.element_handle(), before], timeout=30 * SECONDS)
    except PlaywrightTimeout:
        pytest.fail(f"{name}: moving the slider did not redraw the figure of its cell within 30 s")
    screenshot(output, f"{name}-3-slider-after")

    for kind, message in NOT_DONE.items():
        failed = page.locator(ERROR_OUTPUT).filter(has_text=message).first
        expect(failed, f"{name}: no check says an untouched {kind} is {message!r}").to_be_visible()
    failed.scroll_into_view_if_needed()
    screenshot(page, f"{name}-4-check-failed")
    assert not page.outside, f"the page asked for things outside the local server: {page.outside}"


def test_nbgrader_validate_button(lab, page):
    """The nbgrader extension is active: the notebook toolbar's Validate runs the checks on the server, and an
    untouched learner notebook fails them."""
    page.goto(lab.page_url(notebook_path(NOTEBOOKS[0])))
    validate = page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Validate")
    expect(validate).to_be_visible(timeout=90 * SECONDS)
    validate.click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Validation Results", timeout=120 * SECONDS)
    expect(dialog).to_contain_text("failed")
    screenshot(page, "validate")
    dialog.get_by_role("button", name="Ok").click()
    assert not page.outside, f"the page asked for things outside the local server: {page.outside}"
