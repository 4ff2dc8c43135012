"""`python -m autograder release | grade | progress` end to end, on real submissions built from the course's
notebooks (three malformed files are committed in tests/fixtures/malformed/, under names ruff does not read).

Three grading runs carry most tests, each grading only the notebooks its cases need:
- the class: notebook 01 from students who get it right, leave it untouched, get a few exercises wrong, loop
  forever, ignore the interrupt, kill the kernel or try to kill the grader, exhaust memory, print megabytes, tamper with
  test cells or call linattn_ref, next to files that are broken, unknown, missing, or in a bad zip;
- the course root: notebook 00 in nbgrader's own submitted/ layout, graded, then again after hand grading and
  changed submissions;
- the interrupted run: the same submissions, killed part-way, then run again.
"""
import contextlib
import csv
import io
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import cli, grading, progress, submissions
from autograder import nbgrader_ops as ops

FIXTURES = Path(__file__).parent / "fixtures"
NB00, NB01 = "00_getting_started", "01_causal_masks"
TIMEOUT = 20  # s per cell: each looping student costs this; a busy 2-core machine needs ~10 s to import torch
MEMORY_MB = 2048
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------------
# building submissions from the real notebooks


def source(name):
    return nbformat.read(ops.SOURCE / name / f"{name}.ipynb", as_version=4)


def learner(name):
    return nbformat.read(ops.RELEASE / name / f"{name}.ipynb", as_version=4)


def cell(nb, cell_id):
    return next(c for c in nb.cells if c.get("id") == cell_id)


def check_of(nb, solution_id):
    """The graded cell that checks solution cell `solution_id`: the first graded cell after it."""
    start = next(i for i, c in enumerate(nb.cells) if c.get("id") == solution_id)
    return next(c for c in nb.cells[start + 1:] if c.metadata.get("nbgrader", {}).get("grade"))


def autograded_max(nb):
    return sum(c.metadata.nbgrader["points"] for c in nb.cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))


def answer(nb, solution_id, body):
    """`nb` with what follows the signature of solution cell `solution_id` replaced by `body`."""
    c = cell(nb, solution_id)
    c.source = c.source.split("### BEGIN SOLUTION")[0] + body
    return nb


def write(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def read_csv(path):
    with open(path, newline="") as f:
        return {(r["student"], r["assignment"]): r for r in csv.DictReader(f)}


UPPER_TRIANGLE = "return torch.ones(T, T, dtype=torch.bool, device=device).triu()\n"
LOOP = "while True:\n        pass\n"
IGNORES_INTERRUPT = "import time\n    while True:\n        try:\n            time.sleep(0.05)\n" \
                    "        except BaseException:\n            pass\n"
EXIT = "import os\n    os._exit(1)\n"
MEMORY_BOMB = "hog = []\n    while True:\n        hog.append(bytearray(50_000_000))\n"


def class_submissions(folder):
    """Write the class to `folder`; return {student: expected autograded score} of the students graded."""
    sol = source(NB01)
    full = autograded_max(sol)
    expected = {}

    def student(name, nb, lost=(), rel=f"{NB01}/{NB01}.ipynb", zipped=False):
        if zipped:
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as zf:
                zf.writestr(rel, nbformat.writes(nb))
        else:
            write(nb, folder / name / rel)
        expected[name] = full - sum(check_of(sol, sid).metadata.nbgrader["points"] for sid in lost)

    def variant(*edits):
        nb = source(NB01)
        for solution_id, body in edits:
            answer(nb, solution_id, body)
        return nb

    student("solution", sol)
    student("untouched", learner(NB01), rel=f"{NB01}.ipynb")  # flat layout
    expected["untouched"] = 0
    student("looper", variant(("qk_pairs", LOOP)), lost=["qk_pairs"])
    student("stubborn", variant(("causal_mask", IGNORES_INTERRUPT)), lost=["causal_mask"])
    student("crasher", variant(("visible_keys", EXIT)), lost=["visible_keys"])
    student("hog", variant(("num_visible_keys", MEMORY_BOMB)), lost=["num_visible_keys"])
    student("cheat", variant(("causal_mask", "return ref.causal_mask(T, device)\n")), lost=["causal_mask"])

    chatty_pairs = 'print("y" * 1_000_000)\n    return [(i, j) for i in range(T) for j in range(i + 1)]\n'
    printer = variant(("qk_pairs", chatty_pairs))  # a megabyte per call, inside the check
    cell(printer, "causal_mask").source += '\nprint("x" * 5_000_000)\n'
    student("printer", printer)

    # deletes the checks of a wrong and a right answer, and empties the check of another wrong one
    tamper = variant(("causal_mask", UPPER_TRIANGLE), ("qk_pairs", "return []\n"))
    tamper.cells.remove(cell(tamper, "causal_mask_check"))
    tamper.cells.remove(cell(tamper, "visible_keys_check"))
    cell(tamper, "qk_pairs_check").source = "pass  # the checks are gone"
    student("tamper", tamper, lost=["causal_mask", "qk_pairs"])

    # a few exercises wrong, saved as a renamed copy, handed in as a zip
    partial = variant(("causal_mask", UPPER_TRIANGLE),
                      ("masked_scores", "return (q @ k.transpose(-1, -2)) * (scale or q.shape[-1] ** -0.5)\n"))
    student("partial", partial, lost=["causal_mask", "masked_scores"], rel=f"Copy of {NB01} (1).ipynb", zipped=True)

    # tries to kill the process that runs its kernel: in the sandbox its parent is the sandbox's own init
    saboteur = source(NB01)
    cell(saboteur, "causal_mask").source += "\nimport os\nos.kill(os.getppid(), 9)\n"
    student("saboteur", saboteur, rel=f"{NB01}.ipynb")

    # files that cannot be graded: each must be a line in the report, and the rest graded as usual
    for name, fixture in (("notjson", "not_json.txt"), ("badformat", "wrong_nbformat.json"),
                          ("nocells", "missing_cells.json")):
        (folder / name / NB01).mkdir(parents=True)
        shutil.copy(FIXTURES / "malformed" / fixture, folder / name / NB01 / f"{NB01}.ipynb")
    write(sol, folder / "stranger" / "42_unknown_topic.ipynb")
    (folder / "empty").mkdir()
    (folder / "badzip.zip").write_bytes(b"this is not a zip archive")
    (folder / "notes.txt").write_text("a file the instructor left here")
    return expected


@pytest.fixture(scope="session")
def class_run(tmp_path_factory):
    """The class graded once with two workers: (grades.csv rows, printed summary, folder, exit status, expected)."""
    subs, out = tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("class_grading")
    expected = class_submissions(subs)
    printed, start = io.StringIO(), time.perf_counter()
    status = grading.grade(subs, out, jobs=2, timeout=TIMEOUT, memory_mb=MEMORY_MB, stream=printed)
    print(f"\ngraded the class ({len(expected)} submissions of {NB01}) in {time.perf_counter() - start:.0f} s")
    return read_csv(out / "grades.csv"), printed.getvalue(), out, status, expected


def autograded(out, student, name=NB01):
    return nbformat.read(out / "autograded" / student / name / f"{name}.ipynb", as_version=4)


def errors(nb, cell_id):
    return [f"{o.ename}: {o.evalue}" for o in cell(nb, cell_id).outputs if o.output_type == "error"]


# ---------------------------------------------------------------------------------------------------------------
# the class


def test_class_run_completes(class_run):
    rows, printed, out, status, expected = class_run
    graded = {s for (s, _), r in rows.items() if r["status"] == "graded"}
    assert graded == set(expected), printed
    assert "assignment" in printed and NB01 in printed, printed


def test_the_grader_cannot_be_killed_from_a_notebook(class_run):
    rows, printed, _, status, expected = class_run
    assert status == 0, printed  # nothing failed in the machinery
    assert float(rows["saboteur", NB01]["autograded"]) == expected["saboteur"] == autograded_max(source(NB01))


@pytest.mark.parametrize("student", ["solution", "untouched", "partial"])
def test_scores_are_exactly_the_points_earned(class_run, student):
    rows, _, out, _, expected = class_run
    row = rows[student, NB01]
    assert float(row["autograded"]) == expected[student], row
    assert float(row["max_autograded"]) == autograded_max(source(NB01))
    # the same scores are in GRADING_DIR's gradebook, where formgrader reads them
    assert ops.scores(out)[student, NB01].autograded == expected[student]


def test_renamed_and_zipped_file_is_graded(class_run):
    rows, printed, _, _, _ = class_run
    assert f"graded partial.zip:Copy of {NB01} (1).ipynb as {NB01}.ipynb" in printed
    assert "Copy of" in rows["partial", NB01]["notes"]


def test_items_add_up_to_the_score(class_run):
    rows, *_ = class_run
    items = [k for k in rows["solution", NB01] if k.startswith(f"{NB01}/")]
    graded_ids = [c.metadata.nbgrader["grade_id"] for c in source(NB01).cells
                  if c.metadata.get("nbgrader", {}).get("grade")]
    assert items == [f"{NB01}/{g}" for g in graded_ids]
    for (student, _), row in rows.items():
        if row["status"] == "graded":
            assert sum(float(row[i] or 0) for i in items) == pytest.approx(float(row["score"])), student


def test_infinite_loop_is_stopped_at_the_timeout(class_run):
    rows, printed, out, _, expected = class_run
    assert float(rows["looper", NB01]["autograded"]) == expected["looper"]
    assert any("KeyboardInterrupt" in e or "CellTimeoutError" in e for e in errors(autograded(out, "looper"),
                                                                                   "qk_pairs_check"))
    assert "looper: 01_causal_masks: cell qk_pairs_check: ran past the time limit" in printed


def test_loop_that_ignores_the_interrupt_is_stopped(class_run):
    rows, printed, out, _, expected = class_run
    assert float(rows["stubborn", NB01]["autograded"]) == expected["stubborn"]
    assert "stubborn: 01_causal_masks: cell causal_mask_check: ran past the time limit" in printed


def test_dead_kernel_costs_only_its_cell(class_run):
    rows, printed, out, _, expected = class_run
    assert float(rows["crasher", NB01]["autograded"]) == expected["crasher"]
    assert any("DeadKernelError" in e for e in errors(autograded(out, "crasher"), "visible_keys_check"))
    assert "crasher: 01_causal_masks: cell visible_keys_check: the kernel died here" in printed


def test_memory_bomb_meets_the_limit(class_run):
    rows, _, out, _, expected = class_run
    assert float(rows["hog", NB01]["autograded"]) == expected["hog"]
    assert any("MemoryError" in e for e in errors(autograded(out, "hog"), "num_visible_keys_check"))


def test_printing_megabytes_costs_nothing(class_run):
    rows, _, out, _, expected = class_run
    assert float(rows["printer", NB01]["autograded"]) == expected["printer"] == autograded_max(source(NB01))
    assert (out / "autograded" / "printer" / NB01 / f"{NB01}.ipynb").stat().st_size < 1_000_000
    assert (out / "feedback" / "printer" / NB01 / f"{NB01}.html").stat().st_size < 2_000_000


def test_deleted_and_edited_tests_are_put_back(class_run):
    rows, printed, out, _, expected = class_run
    assert float(rows["tamper", NB01]["autograded"]) == expected["tamper"]
    nb, sol = autograded(out, "tamper"), source(NB01)
    for test_id in ("causal_mask_check", "visible_keys_check", "qk_pairs_check"):
        assert cell(nb, test_id).source == cell(sol, test_id).source
        assert bool(errors(nb, test_id)) == (test_id != "visible_keys_check"), test_id
    kept = rows["tamper", NB01][f"{NB01}/visible_keys_check"]  # a right answer keeps its points
    assert float(kept) == check_of(sol, "visible_keys").metadata.nbgrader["points"]
    assert "deleted locked cells put back: causal_mask_check, visible_keys_check" in printed


def test_calling_the_reference_scores_zero_for_that_exercise(class_run):
    rows, _, out, _, expected = class_run
    assert float(rows["cheat", NB01]["autograded"]) == expected["cheat"]
    assert any("linattn_ref" in e for e in errors(autograded(out, "cheat"), "causal_mask_check"))


@pytest.mark.parametrize("student, line", [
    ("notjson", f"notjson: {NB01}: notjson/{NB01}/{NB01}.ipynb is not a notebook (not valid JSON); not graded"),
    ("badformat", f"badformat: {NB01}: badformat/{NB01}/{NB01}.ipynb is not a valid notebook (Unsupported nbformat"
                  " version 99); not graded"),
    ("nocells", f"nocells: {NB01}: nocells/{NB01}/{NB01}.ipynb is not a valid notebook ("),
    ("stranger", "stranger: stranger/42_unknown_topic.ipynb matches no assignment"),
    ("empty", "empty: no notebook in empty; nothing graded"),
    ("badzip", "badzip: badzip.zip could not be opened"),
    (None, "notes.txt: not a student folder or zip; skipped"),
])
def test_unusable_files_are_reported_and_skipped(class_run, student, line):
    rows, printed, out, _, _ = class_run
    assert line in printed
    assert line in (out / "report.txt").read_text()
    if student:
        row = rows[student, NB01]
        assert float(row["score"]) == 0
        assert row["status"] == ("not graded" if student in ("notjson", "badformat", "nocells") else "not submitted")


def test_feedback_for_every_graded_submission(class_run):
    rows, _, out, _, _ = class_run
    for (student, assignment), row in rows.items():
        html = out / "feedback" / student / assignment / f"{assignment}.html"
        assert html.exists() == (row["status"] == "graded"), student


# ---------------------------------------------------------------------------------------------------------------
# a course root in nbgrader's layout: re-runs, hand grades, interruption

TIMESTAMP = "2025-03-14 09:26:53.000000 UTC"


def course_root_submissions(folder):
    """An nbgrader course root with submitted/<student>/00_getting_started/; returns {student: score}."""
    (folder / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n")
    wrong = {"scores_shape": "scores_shape = [2, 4, 16]\n", "timeout_meaning": 'timeout_meaning = "a"\n'}
    students = {"s1": (source(NB00), 3), "s2": (learner(NB00), 0),
                "s3": (answer(source(NB00), "timeout_meaning", wrong["timeout_meaning"]), 2),
                "s4": (answer(answer(source(NB00), "timeout_meaning", wrong["timeout_meaning"]), "scores_shape",
                              wrong["scores_shape"]), 1)}
    for name, (nb, _) in students.items():
        folder_ = folder / "submitted" / name / NB00
        write(nb, folder_ / f"{NB00}.ipynb")
        (folder_ / "timestamp.txt").write_text(TIMESTAMP)
    return {name: score for name, (_, score) in students.items()}


@pytest.fixture(scope="session")
def course_subs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course_root")
    return folder, course_root_submissions(folder)


@pytest.fixture(scope="session")
def first_course_run(course_subs, tmp_path_factory):
    subs, expected = course_subs
    out, printed = tmp_path_factory.mktemp("course_grading"), io.StringIO()
    # unsandboxed here (trusted notebooks): the interrupted run below, sandboxed, must end with the same grades
    assert grading.grade(subs, out, jobs=2, timeout=TIMEOUT, sandbox=False, stream=printed) == 0
    assert printed.getvalue().count("SANDBOX OFF (--no-sandbox)") == 2  # first report line and under the summary
    assert (out / "report.txt").read_text().startswith("SANDBOX OFF (--no-sandbox)")
    return out, read_csv(out / "grades.csv"), expected


def test_nbgrader_submitted_layout_is_graded_with_its_timestamps(first_course_run):
    out, rows, expected = first_course_run
    assert {s: float(rows[s, NB00]["score"]) for s in expected} == expected
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        assert str(gb.find_submission(NB00, "s1").timestamp).startswith("2025-03-14 09:26:53")


def mtimes(out, kind, students, name=NB00):
    suffix = ".ipynb" if kind == "autograded" else ".html"
    return {s: (out / kind / s / name / f"{name}{suffix}").stat().st_mtime_ns for s in students}


def test_rerun_grades_only_what_changed_and_keeps_hand_grades(first_course_run, course_subs, tmp_path):
    from nbgrader.api import Gradebook

    out, _, expected = first_course_run
    subs = course_subs[0]
    students = sorted(expected)
    graded_at, fed_back_at = mtimes(out, "autograded", students), mtimes(out, "feedback", students)

    # nothing changed: nothing is graded or fed back again
    assert grading.grade(subs, out, jobs=2, timeout=TIMEOUT, stream=io.StringIO()) == 0
    assert mtimes(out, "autograded", students) == graded_at and mtimes(out, "feedback", students) == fed_back_at

    # hand grades, as formgrader enters them, for s3 and s4; new files from s2 (now right) and s3 (an extra cell)
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for student in ("s3", "s4"):
            gb.find_grade("timeout_meaning_check", NB00, NB00, student).manual_score = 0.5
        gb.db.commit()
    changed = tmp_path / "changed"
    shutil.copytree(subs, changed)
    write(source(NB00), changed / "submitted" / "s2" / NB00 / f"{NB00}.ipynb")
    s3 = nbformat.read(changed / "submitted" / "s3" / NB00 / f"{NB00}.ipynb", as_version=4)
    s3.cells.append(nbformat.v4.new_markdown_cell("a note the student added at the end"))
    write(s3, changed / "submitted" / "s3" / NB00 / f"{NB00}.ipynb")

    assert grading.grade(changed, out, jobs=2, timeout=TIMEOUT, stream=io.StringIO()) == 0
    now = mtimes(out, "autograded", students)
    assert [s for s in students if now[s] != graded_at[s]] == ["s2", "s3"]
    fed_back = mtimes(out, "feedback", students)
    assert [s for s in students if fed_back[s] != fed_back_at[s]] == ["s2", "s3", "s4"]
    rows = read_csv(out / "grades.csv")
    assert float(rows["s2", NB00]["score"]) == 3
    for student in ("s3", "s4"):  # the hand grade replaced the autograded 0 of that cell, re-graded or not
        assert float(rows[student, NB00]["score"]) == expected[student] + 0.5
        assert float(rows[student, NB00][f"{NB00}/timeout_meaning_check"]) == 0.5


def worker_processes(out):
    """Live processes whose command line names the grading folder `out` (its workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(out) in (proc / "cmdline").read_bytes().decode(errors="ignore"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_interrupted_run_ends_with_the_same_grades(first_course_run, course_subs, tmp_path):
    subs, expected = course_subs
    out = tmp_path / "grading"
    command = [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--jobs", "1",
               "--timeout", str(TIMEOUT)]
    run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state, deadline = out / grading.STATE_FILE, time.monotonic() + 600
    graded = []
    while not graded and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(OSError, ValueError):
            graded = [k for k, v in grading.load_state(out)["submissions"].items() if v["status"] == "graded"]
    run.send_signal(signal.SIGKILL)  # the hardest stop: no clean-up code runs
    run.wait()
    assert state.exists() and 0 < len(graded) < len(expected), f"not stopped part-way: {graded}"
    for _ in range(50):  # the workers die with the run that started them
        if not worker_processes(out):
            break
        time.sleep(0.1)
    assert not worker_processes(out)
    before = mtimes(out, "autograded", [k.split("/")[0] for k in graded])

    assert subprocess.run(command, cwd=REPO, capture_output=True).returncode == 0
    assert mtimes(out, "autograded", before) == before  # what was graded before the kill was not graded again
    assert read_csv(out / "grades.csv") == first_course_run[1]  # the grades of the uninterrupted run


@pytest.mark.parametrize("path, assignment", [
    (f"{NB01}.ipynb", NB01),
    (f"Copy of Copy of {NB01} (2).ipynb", NB01),
    (f"{NB01}-Copy1.ipynb", NB01),
    ("01 causal masks.ipynb", NB01),
    ("01 my attempt.ipynb", NB01),  # the number alone, when one assignment has it
    (f"{NB01}/untitled.ipynb", NB01),  # the folder decides
    (f"Copy of {NB01}/{NB01} (1).ipynb", NB01),
    (f"homework/{NB00}.ipynb", NB00),
    ("causal_masks.ipynb", None),
    ("42_unknown_topic.ipynb", None),
    ("untitled.ipynb", None),
])
def test_notebooks_are_matched_to_assignments(path, assignment):
    hit = submissions.match(path, submissions.assignment_notebooks())
    assert (hit[0] if hit else None) == assignment


def test_a_course_root_without_submissions_is_refused(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n")
    (tmp_path / "course").mkdir()  # never taken for a student
    with pytest.raises(grading.GradingError, match="without a submitted/ folder"):
        grading.grade(tmp_path, tmp_path / "out", stream=io.StringIO())


def test_one_grade_run_per_folder_at_a_time(tmp_path):
    with grading.RunLock(tmp_path), pytest.raises(grading.GradingError, match="another grade run is using"):
        grading.grade(tmp_path / "nothing", tmp_path, stream=io.StringIO())


# ---------------------------------------------------------------------------------------------------------------
# release and progress


def test_release_regenerates_and_passes_its_check(tmp_path, capsys):
    assert cli.main(["release", NB00, "--to", str(tmp_path)]) == 0
    assert "no solution or hidden test leaked" in capsys.readouterr().out
    released = nbformat.read(tmp_path / NB00 / f"{NB00}.ipynb", as_version=4)
    assert [c.get("id") for c in released.cells] == [c.get("id") for c in learner(NB00).cells]


def doctored_release(dest):
    """A copy of course/00 with a solution line, a lost grade id and a hidden-test marker put in."""
    shutil.copytree(ops.RELEASE / NB00, dest / NB00)
    path = dest / NB00 / f"{NB00}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell(nb, "scores_shape").source += "\nscores_shape = [2, 4, 16, 16]"
    cell(nb, "timeout_meaning_check").metadata.nbgrader["grade_id"] = "renamed"
    nb.cells[0].source += "\n### BEGIN HIDDEN TESTS"
    nbformat.write(nb, path)


def test_release_check_names_each_problem(tmp_path):
    shutil.copytree(ops.RELEASE / NB00, tmp_path / "clean" / NB00)
    assert ops.release_problems([NB00], release=tmp_path / "clean") == []
    doctored_release(tmp_path / "bad")
    problems = "\n".join(ops.release_problems([NB00], release=tmp_path / "bad"))
    assert "'scores_shape' (scores_shape) gives away 1 line(s)" in problems
    assert "'timeout_meaning_check' (timeout_meaning_check) lost its cell id or grade id" in problems
    assert "'BEGIN HIDDEN TESTS'" in problems


def test_release_exits_1_when_something_leaked(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ops, "generate_release", lambda dest, names: doctored_release(Path(dest)))
    assert cli.main(["release", NB00, "--to", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "gives away" in err and "release check failed: 3 problem(s)" in err
    assert cli.main(["release", "99_nothing", "--to", str(tmp_path)]) == 1
    assert "no such assignment" in capsys.readouterr().err


def test_progress_runs_copies_and_reports_each_check(tmp_path, monkeypatch):
    write(answer(source(NB00), "timeout_meaning", 'timeout_meaning = "a"\n'), tmp_path / NB00 / f"{NB00}.ipynb")
    write(source(NB00), tmp_path / "backup" / f"{NB00}.ipynb")  # a copy: the same graded cells, checked once
    (tmp_path / "mine").mkdir()
    shutil.copy(FIXTURES / "malformed" / "not_json.txt", tmp_path / "mine" / "broken.ipynb")
    (tmp_path / NB00 / ".ipynb_checkpoints").mkdir()
    write(source(NB00), tmp_path / NB00 / ".ipynb_checkpoints" / f"{NB00}-checkpoint.ipynb")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    printed = io.StringIO()
    monkeypatch.chdir(tmp_path)  # no folder named: the folder it is run from, since it holds notebooks
    assert progress.progress(timeout=TIMEOUT, stream=printed) == 0
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written
    text = printed.getvalue()
    lines = text.splitlines()
    assert "  FAIL  timeout_meaning_check                  0 / 1" in lines
    assert sum(line.startswith("  pass ") for line in lines) == 2
    assert any(line.startswith("mine/broken") and "not checked: NotJSONError" in line for line in lines)
    assert f"skipped backup/{NB00}.ipynb: a copy of {NB00}/{NB00}.ipynb" in lines
    assert lines[-1] == "total: 2 / 3 autograded points"
    # the check's whole message, on as many lines as it has (nbgrader's validator cuts it at 90 characters)
    why = lines[lines.index("  FAIL  timeout_meaning_check                  0 / 1") + 1:]
    assert why[0].startswith("        ") and len(" ".join(why[:3])) > 90, why[:3]


def test_progress_defaults_to_the_folder_it_is_run_from(tmp_path):
    assert progress.default_target(tmp_path) == ops.RELEASE  # no notebooks here
    write(source(NB00), tmp_path / "sub" / "mine.ipynb")
    assert progress.default_target(tmp_path) == tmp_path


@pytest.mark.parametrize("command", ["release", "grade", "progress"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert f"python -m autograder {command}" in capsys.readouterr().out
