"""The committed learner notebooks in course/ are exactly what nbgrader makes from solutions/ now, and they give
nothing away: no solution, no hidden test, no hidden check call; every graded cell survives the release."""
import re

import nbformat
import pytest

from autograder import nbgrader_ops as ops
from autograder import scaffold

ASSIGNMENTS = ops.assignments(ops.SOURCE)


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    """Every assignment released anew into a temporary folder (one nbgrader run, a throwaway gradebook)."""
    dest = tmp_path_factory.mktemp("release")
    ops.generate_release(dest)
    return dest


def read(path):
    return nbformat.read(path, as_version=4)


def cell_record(cell):
    """What must match between a committed and a regenerated learner cell."""
    return {"type": cell.cell_type, "id": cell.get("id"), "source": cell.source,
            "nbgrader": dict(cell.metadata.get("nbgrader", {}))}


def test_course_has_assignments():
    assert ASSIGNMENTS, f"no assignment notebooks found in {ops.SOURCE}"


def test_every_source_has_a_release_and_every_release_a_source():
    released = ops.assignments(ops.RELEASE)
    assert released == ASSIGNMENTS, (
        f"missing from course/: {sorted(set(ASSIGNMENTS) - set(released))}; "
        f"in course/ without a source: {sorted(set(released) - set(ASSIGNMENTS))}. "
        "Run `nbgrader generate_assignment NAME --force` from the repository root.")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_release_matches_a_fresh_one(assignment, fresh_release):
    committed_dir, fresh_dir = ops.RELEASE / assignment, fresh_release / assignment
    stale = f"course/{assignment} is stale: run `nbgrader generate_assignment {assignment} --force`"
    committed = sorted(p.relative_to(committed_dir) for p in committed_dir.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(fresh_dir) for p in fresh_dir.rglob("*") if p.is_file())
    assert committed == fresh, f"course/{assignment} holds {committed}, a fresh release {fresh}: {stale}"
    for rel in fresh:
        if rel.suffix != ".ipynb":
            assert (committed_dir / rel).read_bytes() == (fresh_dir / rel).read_bytes(), f"{rel}: {stale}"
            continue
        old, new = read(committed_dir / rel), read(fresh_dir / rel)
        assert old.metadata.get("kernelspec") == new.metadata.get("kernelspec"), f"{rel} kernelspec: {stale}"
        assert len(old.cells) == len(new.cells), f"{rel}: {len(old.cells)} cells, fresh {len(new.cells)}: {stale}"
        for n, (a, b) in enumerate(zip(old.cells, new.cells)):
            assert cell_record(a) == cell_record(b), f"{rel} cell {n}: {stale}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_sources_are_saved_without_outputs(assignment):
    for path in ops.notebooks(ops.SOURCE / assignment):
        nb = read(path)
        assert nb.metadata.kernelspec.name == "python3", f"{path.name}: autograding needs the python3 kernel"
        assert any(c.metadata.get("nbgrader", {}).get("grade") for c in nb.cells), f"{path.name}: nothing graded"
        ran = [n for n, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not ran, f"{path.name}: cells {ran} were saved with outputs; clear them before committing"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_are_the_import_and_check_calls_only(assignment):
    """Each graded test cell imports the checks it calls (a learner's name `check` above can never stand in for
    them: docs/scaffold.md says why) and holds nothing else but check calls, one per line."""
    for path in ops.notebooks(ops.SOURCE / assignment):
        for cell in read(path).cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            where = f"{path.name}, cell {meta['grade_id']}"
            first, *rest = cell.source.split("### BEGIN HIDDEN TESTS")[0].strip().splitlines()
            called = {name for name in ("check", "check_answer") if re.search(rf"(?<![\w.]){name}\(", cell.source)}
            assert first == f"from autograder.checks import {', '.join(sorted(called))}", (
                f"{where}: start it with `from autograder.checks import {', '.join(sorted(called))}` and nothing else")
            assert rest and all(re.fullmatch(r"check(_answer)?\(.*\)", line) for line in rest), (
                f"{where}: after the import, only check calls, one per line: {rest}")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_keeps_graded_cells_and_gives_nothing_away(assignment):
    problems = ops.release_problems([assignment])
    assert not problems, "\n".join(problems)


def test_release_problems_are_found(tmp_path):
    """release_problems on a hand-made release with one of each fault."""
    source, release = tmp_path / "solutions", tmp_path / "course"
    (source / "01_a").mkdir(parents=True)
    (release / "01_a").mkdir(parents=True)
    cells = [scaffold.solution("def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION", "f"),
             scaffold.tests('check("f", f)\n### BEGIN HIDDEN TESTS\ncheck("f", f, hidden=True)\n### END HIDDEN TESTS',
                   "f_check", points=2),
             scaffold.tests("assert g() == 1", "g_check", points=1)]
    for n, cell in enumerate(cells):
        cell.id = f"c{n}"
    scaffold.write_notebook(cells, source / "01_a" / "01_a.ipynb")
    leaky = nbformat.from_dict(cells[:2])  # the solution left in, the points changed, g_check gone
    leaky[0].source = "def f():\n    return 42"
    leaky[1].source = 'check("f", f)'
    leaky[1].metadata.nbgrader.points = 3
    scaffold.write_notebook(leaky, release / "01_a" / "01_a.ipynb")
    (release / "01_a" / "notes.txt").write_text("### BEGIN SOLUTION")
    found = "\n".join(ops.release_problems(["01_a"], source=source, release=release))
    assert "gives away 1 line" in found and "'return 42'" in found  # a solution line left in the learner cell
    assert "has 3 points, the source 2" in found
    assert "(g_check) lost its cell id or grade id" in found
    assert "notes.txt: holds 'BEGIN SOLUTION'" in found
    for leak in ("### BEGIN SOLUTION", "### END HIDDEN TESTS", 'check("f", f, hidden=True)', "hidden =True"):
        assert ops.SECRETS.search(leak), leak
    assert not ops.SECRETS.search('check("f", f)')
