"""Build nbgrader source notebooks with consistent cell metadata.

A notebook is a list of cells made with the functions below, written by `write_notebook`:

    md("# Title")                                  prose, editable
    code("import torch")                           ordinary code the learner may edit
    setup("from autograder.checks import check")   locked code the learner should not change
    solution("def f(x):\\n    ### BEGIN SOLUTION\\n    ...\\n    ### END SOLUTION", "f")
    tests("check('f', f)", "f_check", points=2)    locked, graded (the check import is added); hidden parts between
                                                   ### BEGIN HIDDEN TESTS / ### END HIDDEN TESTS
    written("Explain ...", "essay_1", points=3)    a markdown answer graded by hand in formgrader

Grade ids must be unique within a notebook; nbgrader keys grades and checksums on them.
"""
import re

import nbformat

SCHEMA_VERSION = 3
IMPORT_NOTE = "# imported here: a name reused above cannot replace it"


def _meta(grade_id, *, grade, solution, locked, points=None, task=False):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": task}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def md(source):
    return nbformat.v4.new_markdown_cell(source.strip("\n"))


def code(source):
    return nbformat.v4.new_code_cell(source.strip("\n"))


def setup(source, grade_id):
    return nbformat.v4.new_code_cell(source.strip("\n"),
                                     metadata=_meta(grade_id, grade=False, solution=False, locked=True))


def solution(source, grade_id):
    if "### BEGIN SOLUTION" not in source:
        raise ValueError(f"solution cell {grade_id!r} has no ### BEGIN SOLUTION region")
    return nbformat.v4.new_code_cell(source.strip("\n"),
                                     metadata=_meta(grade_id, grade=False, solution=True, locked=False))


def tests(source, grade_id, points):
    """A graded test cell. It imports the check functions it calls itself, so that a learner's variable named
    `check` or `check_answer` in an earlier cell can never stand in for them."""
    body = source.strip("\n")
    called = [name for name in ("check", "check_answer") if re.search(rf"(?<![\w.]){name}\(", body)]
    if called and not body.startswith("from autograder.checks import"):
        body = f"from autograder.checks import {', '.join(called)}  {IMPORT_NOTE}\n" + body
    return nbformat.v4.new_code_cell(body, metadata=_meta(grade_id, grade=True, solution=False, locked=True,
                                                           points=points))


def written(prompt_answer, grade_id, points):
    """A markdown cell the learner writes in; the source holds a model answer between the solution markers."""
    return nbformat.v4.new_markdown_cell(prompt_answer.strip("\n"),
                                         metadata=_meta(grade_id, grade=True, solution=True, locked=False,
                                                        points=points))


def write_notebook(cells, path):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    # The plain python3 kernel: autograding takes the kernelspec from the source notebook.
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in cells]
    ids = [i for i in ids if i]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate grade ids: {sorted(duplicates)}")
    nbformat.validate(nb)
    nbformat.write(nb, path)
