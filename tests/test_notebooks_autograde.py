"""Autograding end to end: the solution notebook of every assignment earns every autograded point, the
untouched learner notebook earns none, and neither crashes the grading run.

Two students, each graded in a course root of their own, side by side: "solution" submits the source notebook,
"untouched" the learner notebook as released.
Written answers are graded by hand and left out: the solution is compared with the autograded maximum.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from autograder import nbgrader_ops as ops
from autograder.grading import config_lines as grading_config

ASSIGNMENTS = ops.assignments(ops.SOURCE)


def _grade_one_student(folder, student):
    """Release into a course root of its own, submit one student's notebooks, autograde them: (scores, failures).
    The two students get separate roots (nbgrader's gradebook is one SQLite file a run holds), so they are
    graded side by side."""
    root = ops.course_root(folder, extra_config=grading_config(None, 4096))
    ops.generate(root)
    for assignment in ASSIGNMENTS:
        for source in ops.notebooks(ops.SOURCE / assignment):
            released = root / "release" / assignment / source.name
            ops.submit(root, student, assignment, source if student == "solution" else released)
    failed = ops.autograde(root)
    return ops.scores(root), failed


@pytest.fixture(scope="session")
def grading(tmp_path_factory):
    """Release and autograde everything once, with the configuration `python -m autograder grade` uses (verdicts
    reached outside the kernel, autograder.verdict): (scores, failures) as nbgrader_ops returns them."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:  # each thread waits on its own nbgrader process
        runs = [pool.submit(_grade_one_student, tmp_path_factory.mktemp(student), student)
                for student in ("solution", "untouched")]
        results = [run.result() for run in runs]
    scores = {key: score for found, _ in results for key, score in found.items()}
    failed = {key: log for _, lost in results for key, log in lost.items()}
    print(f"\nautograded {len(ASSIGNMENTS)} assignments x 2 students in {time.perf_counter() - start:.1f} s")
    return scores, failed


def graded(grading, student, assignment):
    """The Score of one submission, after checking that nbgrader got through it."""
    scores, failed = grading
    assert (student, assignment) not in failed, (
        f"nbgrader could not grade {student}'s {assignment} (did the notebook kill its kernel?):\n"
        f"{failed[student, assignment][-4000:]}")
    return scores[student, assignment]


def test_course_has_assignments():
    assert ASSIGNMENTS, f"no assignment notebooks found in {ops.SOURCE}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_earns_every_autograded_point(assignment, grading):
    score = graded(grading, "solution", assignment)
    assert score.max_autograded > 0, f"{assignment} has no autograded points"
    assert score.autograded == score.max_autograded, (
        f"{assignment}: the solution notebook scores {score.autograded} of {score.max_autograded}; open "
        "autograded/solution/ of a grading run (or run the notebook) to see which test cell fails")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_learner_notebook_earns_nothing(assignment, grading):
    score = graded(grading, "untouched", assignment)
    assert score.max_total == graded(grading, "solution", assignment).max_total
    assert score.total == 0, f"{assignment}: the untouched learner notebook scores {score.total}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_gradebook_maximum_is_the_sum_of_points_in_the_source(assignment, grading):
    points = {"code": 0.0, "markdown": 0.0}
    for path in ops.notebooks(ops.SOURCE / assignment):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                points[cell.cell_type] += meta["points"]
    score = graded(grading, "solution", assignment)
    assert (score.max_autograded, score.max_total) == (points["code"], points["code"] + points["markdown"])


def test_assignments_are_the_folders_holding_notebooks(tmp_path):
    for folder, files in {"01_a": ["01_a.ipynb"], "02_b": ["notes.md"], ".ipynb_checkpoints": ["x.ipynb"],
                          "__pycache__": ["y.ipynb"], "03_c": ["03_c.ipynb", "extra.ipynb"]}.items():
        (tmp_path / folder).mkdir()
        for name in files:
            (tmp_path / folder / name).write_text("{}")
    assert ops.assignments(tmp_path) == ["01_a", "03_c"]
    assert ops.assignments(tmp_path / "missing") == []


def test_submissions_take_the_name_of_the_source_notebook(tmp_path):
    source = tmp_path / "solutions"
    (source / "01_a").mkdir(parents=True)
    (source / "01_a" / "01_a.ipynb").write_text("{}")
    (source / "03_c").mkdir()
    for name in ("03_c.ipynb", "extra.ipynb"):
        (source / "03_c" / name).write_text("{}")
    renamed = tmp_path / "01_a (1).ipynb"
    renamed.write_text('{"mine": 1}')
    placed = ops.submit(tmp_path / "root", "ada", "01_a", renamed, source=source)
    assert placed == tmp_path / "root" / "submitted" / "ada" / "01_a" / "01_a.ipynb"
    assert placed.read_text() == '{"mine": 1}'
    with pytest.raises(ValueError, match="not one of the notebooks"):
        ops.submit(tmp_path / "root", "ada", "03_c", renamed, source=source)
