"""Every learner notebook, run untouched from top to bottom as a learner first runs it.

The kernel must survive to the last cell; every graded test cell must fail (none passes before the learner
has done anything); a code check must say the exercise is not attempted yet, not fail on something
confusing; and a cell that is not graded may fail only because an exercise is not written yet.
"""
import asyncio
import re
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import nbgrader_ops as ops

ASSIGNMENTS = ops.assignments(ops.SOURCE)
ALIVE = "kernel alive after the last cell"
KERNELS_AT_ONCE = 2  # the CI machine has 2 cores; each kernel spends most of its time in one


async def run_untouched(path, workdir, slots):
    """Execute a copy of the notebook's folder in `workdir` (the course folder is never written to)."""
    async with slots:
        shutil.copytree(path.parent, workdir)
        nb = nbformat.read(workdir / path.name, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(f"print({ALIVE!r})"))
        client = NotebookClient(nb, timeout=ops.CELL_TIMEOUT, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        await client.async_execute(env=ops.nbgrader_env())
        return nb


@pytest.fixture(scope="module")
def learner_runs(tmp_path_factory):
    """{assignment: [(notebook path, the executed notebook or the exception its run raised)]}, all run at once."""
    paths = [(a, path) for a in ASSIGNMENTS for path in ops.notebooks(ops.RELEASE / a)]
    workdir = tmp_path_factory.mktemp("learner")

    async def run_all():
        slots = asyncio.Semaphore(KERNELS_AT_ONCE)
        runs = (run_untouched(path, workdir / path.stem, slots) for _, path in paths)
        return await asyncio.gather(*runs, return_exceptions=True)

    runs = {a: [] for a in ASSIGNMENTS}
    for (a, path), result in zip(paths, asyncio.run(run_all())):
        runs[a].append((path, result))
    return runs


def error_of(cell):
    return next((out for out in cell.outputs if out.output_type == "error"), None)


def problems_in(nb):
    """What is wrong with an executed learner notebook, one line per cell."""
    problems = []
    for n, cell in enumerate(nb.cells[:-1]):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        meta, err = cell.metadata.get("nbgrader", {}), error_of(cell)
        where = f"cell {n} ({meta.get('grade_id', 'ungraded')})"
        found = f"{err.ename}: {err.evalue}" if err else "no error"
        not_attempted = err is not None and (err.ename == "NotImplementedError" or (
            err.ename == "AssertionError" and "not attempted" in err.evalue.lower()))
        if meta.get("grade"):
            if err is None:
                problems.append(f"{where} passes without any work from the learner")
            elif re.search(r"\bcheck\(", cell.source) and not (not_attempted and err.ename == "AssertionError"):
                problems.append(f"{where} should say the exercise is not attempted; got {found}")
            elif "check_answer(" in cell.source and err.ename != "AssertionError":
                problems.append(f"{where} should fail with the answer check's message; got {found}")
        elif err is not None and not not_attempted:
            problems.append(f"{where} fails with {found}; only an unwritten exercise may stop a cell")
    return problems


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_learner_notebook_fails_cleanly(assignment, learner_runs):
    assert learner_runs[assignment], f"course/{assignment} has no notebook"
    for path, nb in learner_runs[assignment]:
        if isinstance(nb, BaseException):
            raise AssertionError(f"{path.name} could not be run to the end: {type(nb).__name__}: {nb}") from nb
        last = nb.cells[-1]
        assert any(ALIVE in out.get("text", "") for out in last.outputs), f"{path.name}: the kernel did not survive"
        problems = problems_in(nb)
        assert not problems, f"{path.name}:\n" + "\n".join(problems)


def executed(source, grade=False, error=None):
    """A code cell as nbclient leaves it: error = (ename, evalue) or None."""
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    if grade:
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1}
    if error:
        cell.outputs = [nbformat.v4.new_output("error", ename=error[0], evalue=error[1], traceback=[])]
    return cell


def test_problems_are_found():
    ok = [executed("f()", error=("NotImplementedError", "")),
          executed('check("f", f)', grade=True, error=("AssertionError", "f: not attempted yet")),
          executed('check_answer("01.x", x)', grade=True, error=("AssertionError", "01.x: not answered yet")),
          executed("x = 1")]
    bad = [executed('check("f", f)', grade=True),
           executed('check("f", f)', grade=True, error=("TypeError", "'NoneType' object is not callable")),
           executed('check_answer("01.x", x)', grade=True, error=("NameError", "name 'x' is not defined")),
           executed("import missing", error=("ModuleNotFoundError", "No module named 'missing'"))]
    alive = executed(f"print({ALIVE!r})")
    assert problems_in(nbformat.v4.new_notebook(cells=[*ok, alive])) == []
    found = problems_in(nbformat.v4.new_notebook(cells=[*ok, *bad, alive]))
    assert [line.split()[1] for line in found] == [str(n) for n in range(len(ok), len(ok) + len(bad))]
