"""The course on a real JupyterHub: nbgrader's exchange end to end, as docs/instructors.md section 7 sets it up.

An instructor and two students are real Linux users; the hub (dummy authenticator, local process spawner, on
127.0.0.1) starts their servers from /opt/linattn-hub, and every nbgrader command runs as the user it belongs to,
so the exchange's file permissions are the real ones. The cycle:

- the instructor releases 01_causal_masks (`python -m autograder release`, `nbgrader release_assignment`);
- both students fetch it; alice answers everything (her notebook is written through the hub's REST API, into her
  own server), bob answers nothing; both submit; bob tries to read alice's submission and cannot;
- the instructor collects, grades with `python -m autograder grade` (student kernels sandboxed) and releases
  the feedback; each student fetches their own feedback, and only their own.

Needs root, /opt/linattn-hub and configurable-http-proxy (`make setup` as root, tests/hub/install_hub_env.sh).
Without them the test is skipped, except under CI (CI=true), where it fails.
"""
import csv
import os
import re
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from hub.hubserver import PASSWORD, Hub, missing

NB = "01_causal_masks"
WRITTEN = "leak_diagnosis"  # the notebook's hand-graded written answer (3 points)
ALICE_WRITES = "The mask lets query t see key t+1, so the model reads the token it must predict."

why_not = missing()
if why_not and os.environ.get("CI") != "true":
    pytest.skip(why_not, allow_module_level=True)


@pytest.fixture(scope="module")
def hub():
    if why_not:
        pytest.fail(why_not)
    tag = secrets.token_hex(2)  # fresh user names: the test never touches an existing account
    base = tempfile.mkdtemp(prefix="linattn-hub-")
    server = None
    try:
        server = Hub(base, f"lh{tag}-instructor", [f"lh{tag}-alice", f"lh{tag}-bob", f"lh{tag}-carol"])
        yield server
    finally:
        if server:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def solutions_of(clone):
    """{cell id: source} of the answer cells in the instructor's solution notebook."""
    nb = nbformat.read(clone / "solutions" / NB / f"{NB}.ipynb", as_version=4)
    return {c.id: c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}


def answer_everything(hub, user, answers):
    """Fill every answer cell of `user`'s fetched notebook, reading and writing it through the hub's REST API."""
    path = f"/user/{user}/api/contents/{NB}/{NB}.ipynb"
    model = hub.api(path)
    nb = nbformat.from_dict(model["content"])
    filled = 0
    for cell in nb.cells:
        if cell.get("id") in answers:
            cell.source = ALICE_WRITES if cell.id == WRITTEN else answers[cell.id]
            filled += 1
    assert filled == len(answers), f"{user}'s fetched notebook lacks answer cells: {filled} of {len(answers)}"
    hub.api(path, method="PUT", body={"type": "notebook", "format": "json", "content": nb})


def each_student(students, step):
    """step(student) for every student at the same time, as a class does it; the first error is raised."""
    with ThreadPoolExecutor(len(students)) as pool:
        list(pool.map(step, students))


def read_grades(path):
    with open(path, newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def feedback_files(hub, user):
    return sorted((hub.home(user) / NB / "feedback").glob(f"*/{NB}.html"))


def test_exchange_cycle(hub):
    instructor, (alice, bob) = hub.instructor, hub.students[:2]
    clone = hub.clone

    # The instructor releases the assignment into the exchange, while the students' servers start.
    with ThreadPoolExecutor(2) as pool:
        started = pool.map(hub.start_server, (alice, bob))
        out = hub.run_as(instructor, "python", "-m", "autograder", "release", NB, cwd=clone, pythonpath=clone)
        assert "no solution or hidden test leaked" in out.stdout
        hub.run_as(instructor, "nbgrader", "release_assignment", NB, cwd=clone, pythonpath=clone)
        outbound = hub.exchange / "linattn" / "outbound" / NB / f"{NB}.ipynb"
        assert outbound.exists(), "release_assignment released nothing"
        list(started)  # both ready, or the first error raised

    def fetch(student):
        hub.run_as(student, "nbgrader", "fetch_assignment", NB)
        assert (hub.home(student) / NB / f"{NB}.ipynb").exists(), f"{student} fetched nothing"

    each_student((alice, bob), fetch)
    answers = solutions_of(clone)
    answer_everything(hub, alice, answers)
    each_student((alice, bob), lambda student: hub.run_as(student, "nbgrader", "submit", NB))

    # Bob tries to read alice's submission. nbgrader's permissions let students write to the inbox but not list
    # it, and each submission's folder name ends in a random string: bob can neither list nor find hers. (Her
    # files themselves are world-readable: the unguessable name is all that protects them, see instructors.md.)
    inbound = hub.exchange / "linattn" / "inbound"
    alices = [p for p in inbound.iterdir() if p.name.startswith(f"{alice}+{NB}+")]
    assert len(alices) == 1, f"expected one submission of {alice} in the exchange: {sorted(inbound.iterdir())}"
    assert re.search(r"\+[A-Za-z0-9_-]{8,}$", alices[0].name), f"no random part in {alices[0].name!r}"
    peek = hub.run_as(bob, "python", "-c", f"import os; print(os.listdir({str(inbound)!r}))", check=False)
    assert peek.returncode != 0 and "PermissionError" in peek.stderr, f"{bob} could list the inbox: {peek.stdout}"
    peek = hub.run_as(bob, "python", "-c", f"import glob; print(glob.glob({str(inbound / alice)!r} + '*/*'))")
    assert peek.stdout.strip() == "[]", f"{bob} found {alice}'s submission: {peek.stdout}"

    # The instructor collects and grades (every student kernel in the sandbox), then releases the feedback.
    hub.run_as(instructor, "nbgrader", "collect", NB, cwd=clone, pythonpath=clone)
    for student in (alice, bob):
        assert (clone / "submitted" / student / NB / f"{NB}.ipynb").exists(), f"collect missed {student}"
    grading = hub.home(instructor) / "grading" / "linattn"
    hub.run_as(instructor, "python", "-m", "autograder", "grade", ".", "--out", str(grading), "--jobs", "2",
               cwd=clone, pythonpath=clone)
    grades = read_grades(grading / "grades.csv")
    autograded_max = float(grades[alice]["max_autograded"])
    assert autograded_max == 13.0 and float(grades[alice]["max_score"]) == 16.0, grades[alice]
    assert float(grades[alice]["autograded"]) == autograded_max, f"{alice} answered everything: {grades[alice]}"
    assert grades[alice]["needs_manual_grade"] == "True", "alice's written answer waits for a hand grade"
    assert float(grades[bob]["score"]) == 0.0 and float(grades[bob]["autograded"]) == 0.0, grades[bob]

    # Formgrader is to open the grading folder: the instructor's server reads nbgrader_config.py from their home.
    hub.run_as(instructor, "sh", "-c", "echo 'c = get_config()  # noqa: F821' > nbgrader_config.py && echo \""
               f"load_subconfig('{grading}/nbgrader_config.py')  # noqa: F821\" >> nbgrader_config.py")

    hub.run_as(instructor, "nbgrader", "release_feedback", NB, cwd=grading, pythonpath=clone)
    each_student((alice, bob), lambda student: hub.run_as(student, "nbgrader", "fetch_feedback", NB))
    mine = {student: feedback_files(hub, student) for student in (alice, bob)}
    for student, files in mine.items():
        assert len(files) == 1, f"{student} should get exactly their own feedback: {files}"
    alice_html, bob_html = mine[alice][0].read_text(), mine[bob][0].read_text()
    assert ALICE_WRITES in alice_html and ALICE_WRITES not in bob_html, "bob's feedback shows alice's answer"
    assert re.search(r"Score:\s*13(\.0)?\s*/\s*16", alice_html), "alice's feedback lacks her score 13 / 16"
    assert re.search(r"Score:\s*0(\.0)?\s*/\s*16", bob_html), "bob's feedback lacks his score 0 / 16"
    # Nor can bob browse the released feedback of others in the exchange.
    released = hub.exchange / "linattn" / "feedback"
    peek = hub.run_as(bob, "python", "-c", f"import os; print(os.listdir({str(released)!r}))", check=False)
    assert peek.returncode != 0 and "PermissionError" in peek.stderr, f"{bob} could list every feedback file"
    hub.grading = grading  # for the browser test that follows


# ---------------------------------------------------------------------------------------------------------------
# In Chromium, through the hub: carol fetches, runs, validates and submits; the instructor grades by hand.

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
SECONDS = 1000  # Playwright timeouts are in milliseconds
HAND_POINTS = 2  # of 3, what the instructor gives alice's written answer in Formgrader


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"hub-{name}.png")


def log_in(browser, hub, user):
    """A fresh browser context logged in to the hub as `user` (the dummy authenticator's form), at their lab."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill(PASSWORD)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=150 * SECONDS)  # the spawn happens here
    page.locator(".jp-LabShell").wait_for(timeout=90 * SECONDS)
    hub.note_server(user)
    return context, page


def nbgrader_menu(page, item):
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Nbgrader$")).click()
    page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run 'make setup' as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield chromium
        chromium.close()


def test_student_in_browser_and_hand_grading(hub, browser):
    from browser.lab import run_all_cells
    from playwright.sync_api import expect

    if not getattr(hub, "grading", None):
        pytest.fail("test_exchange_cycle did not get as far as grading: nothing to hand-grade")
    instructor, alice, carol = hub.instructor, hub.students[0], hub.students[2]

    # Carol logs in, fetches the assignment in the Assignments tab, runs it with its widget, validates, submits.
    context, page = log_in(browser, hub, carol)
    try:
        nbgrader_menu(page, "Assignment List")
        released = page.locator("#released_assignments_list")
        expect(released).to_contain_text(NB, timeout=60 * SECONDS)
        shot(page, "1-student-assignments")
        released.get_by_role("button", name="Fetch").click()
        fetched = page.locator("#fetched_assignments_list")
        expect(fetched).to_contain_text(NB, timeout=60 * SECONDS)
        assert (hub.home(carol) / NB / f"{NB}.ipynb").exists(), "Fetch in the Assignments tab fetched nothing"
        page.goto(f"{hub.url}/user/{carol}/lab/tree/{NB}/{NB}.ipynb")  # the notebook she fetched
        page.locator(".jp-NotebookPanel .jp-Notebook").wait_for(timeout=90 * SECONDS)
        run_all_cells(page)
        expect(page.locator(".widget-slider").first, "no widget rendered in the notebook").to_be_visible()
        shot(page, "2-student-ran")
        page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Validate").click()
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("Validation Results", timeout=120 * SECONDS)
        expect(dialog).to_contain_text("failed")  # carol answered nothing
        shot(page, "3-student-validated")
        dialog.get_by_role("button", name="Ok").click()
        nbgrader_menu(page, "Assignment List")
        fetched.get_by_role("button", name="Submit").click()
        expect(page.locator("#submitted_assignments_list")).to_contain_text(NB, timeout=60 * SECONDS)
        shot(page, "4-student-submitted")
    finally:
        context.close()
    inbound = hub.exchange / "linattn" / "inbound"
    assert [p for p in inbound.iterdir() if p.name.startswith(f"{carol}+{NB}+")], "carol's Submit reached no inbox"

    # The instructor's Formgrader shows alice's submission; her written answer is graded by hand there.
    context, page = log_in(browser, hub, instructor)
    try:
        page.goto(f"{hub.url}/user/{instructor}/formgrader/gradebook/{NB}/{NB}")
        expect(page.locator("body")).to_contain_text("Submission #", timeout=60 * SECONDS)
        shot(page, "5-formgrader-submissions")
        listed = page.request.get(f"{hub.url}/user/{instructor}/formgrader/api/submitted_notebooks/{NB}/{NB}").json()
        alices = [s["id"] for s in listed if s["student"] == alice]
        assert alices, f"Formgrader lists no submission of {alice}: {[s['student'] for s in listed]}"
        page.goto(f"{hub.url}/user/{instructor}/formgrader/submissions/{alices[0]}/")
        expect(page.locator("body")).to_contain_text(ALICE_WRITES, timeout=60 * SECONDS)
        score = page.locator(f"input.score#{WRITTEN}")
        score.fill(str(HAND_POINTS))
        score.press("Tab")  # Formgrader saves a score when the field loses focus
        grades_api = f"{hub.url}/user/{instructor}/formgrader/api/grades?submission_id={alices[0]}"
        for _ in range(60):
            saved = [g["manual_score"] for g in page.request.get(grades_api).json() if g["name"] == WRITTEN]
            if saved == [HAND_POINTS]:
                break
            page.wait_for_timeout(500)
        assert saved == [HAND_POINTS], f"Formgrader did not save the hand grade: {saved}"
        shot(page, "6-formgrader-hand-grade")
    finally:
        context.close()

    # grade again: the hand grade reaches grades.csv and alice's feedback.
    hub.run_as(instructor, "python", "-m", "autograder", "grade", ".", "--out", str(hub.grading), "--jobs", "2",
               cwd=hub.clone, pythonpath=hub.clone)
    grades = read_grades(hub.grading / "grades.csv")
    assert float(grades[alice]["score"]) == 13.0 + HAND_POINTS, grades[alice]
    assert float(grades[alice][f"{NB}/{WRITTEN}"]) == HAND_POINTS, grades[alice]
    feedback = (hub.grading / "feedback" / alice / NB / f"{NB}.html").read_text()
    assert re.search(rf"Score:\s*{13 + HAND_POINTS}(\.0)?\s*/\s*16", feedback), "the hand grade is not in the feedback"
