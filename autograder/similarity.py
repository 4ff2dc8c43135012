"""Answers that are near-identical to the reference's code or to a classmate's, flagged with the evidence.

An answer is the cell that defines the function an exercise's graded cell checks (static_check.answer_cells),
without what the notebook gives every learner (the signature and docstring of the stub, removed as boilerplate).
copydetect (pinned) fingerprints each answer by winnowing, as MOSS does: the code is reduced to its tokens with
names replaced (renaming variables changes nothing), hashed in k-grams, and a window keeps the minimum hashes.
Two answers are flagged when each one's fingerprints are mostly found in the other; short answers (a one-line
slice or count that everyone writes the same way) are never compared. A flag changes no score: the instructor
reads the evidence (who, which exercise, the figure, the first lines in common) in report.txt and grades.csv.
"""
import inspect
import io
import json
from itertools import combinations
from pathlib import Path

import nbformat
from copydetect import CodeFingerprint, compare_files

from .checks.registry import EXERCISES
from .static_check import SOURCE, answer_cells

NOISE, GUARANTEE = 25, 30  # copydetect's defaults: k-grams of 25 filtered characters, a match of 30 always found
MIN_CHARS = 60  # filtered characters an answer needs to be compared (about three lines of real code)
THRESHOLD = 0.9  # share of each answer's fingerprints found in the other
SHOWN_LINES = 3


def _fingerprint(code, boilerplate=()):
    return CodeFingerprint("answer.py", NOISE, GUARANTEE - NOISE + 1, boilerplate=list(boilerplate),
                           fp=io.StringIO(code), language="python")


def _stub(assignment, name):
    """{exercise id: the code a learner is given in the answer cell (the solution cell above BEGIN SOLUTION)}."""
    path = SOURCE / assignment / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    return {ex: "\n".join(nb.cells[i].source.split("### BEGIN SOLUTION")[0] for i in cells)
            for ex, cells in answer_cells(nb).items()}


def _reference_code(ex_id):
    try:
        return inspect.getsource(EXERCISES[ex_id].reference)
    except (OSError, TypeError):
        return None


def _evidence(code, slices, stub):
    """The first few lines of `code` that the match covers, leaving out those of the stub everyone is given."""
    given = {line.strip() for line in stub.splitlines()}
    lines = []
    for start, end in zip(*slices):
        lines += [line.strip() for line in code[int(start):int(end)].splitlines()
                  if line.strip() not in given and not line.strip().startswith("#")]
    return " | ".join(lines[:SHOWN_LINES])


def _compare(a, b, stub):
    """(similarity figure, lines of a in common, lines of b in common) of two fingerprints, or None."""
    overlap, (sim_a, sim_b), (slices_a, slices_b) = compare_files(a, b)
    if overlap == 0 or min(sim_a, sim_b) < THRESHOLD:
        return None
    return min(sim_a, sim_b), _evidence(a.raw_code, slices_a, stub), _evidence(b.raw_code, slices_b, stub)


def answers(folder, assignment):
    """{(notebook, exercise id): code} of one student's autograded notebooks in `folder`."""
    found = {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        nb = nbformat.from_dict(json.loads(path.read_text()))  # no schema validation: slow, and nbgrader did it
        for cell in nb.cells:
            cell.source = "".join(cell.get("source", ""))  # stored as a list of lines
        for ex_id, cells in answer_cells(nb).items():
            found[path.stem, ex_id] = "\n".join(nb.cells[i].source for i in cells)
    return found


def flags(root, assignment):
    """{student: [flag]} for one assignment, over every student autograded in GRADING_DIR `root`."""
    base = Path(root) / "autograded"
    students = sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir())
    stubs, prints = {}, {}
    for student in students:
        for (name, ex_id), code in answers(base / student / assignment, assignment).items():
            if name not in stubs:
                stubs[name] = _stub(assignment, name)
            fp = _fingerprint(code, _fingerprint(stubs[name].get(ex_id, "")).hashes)
            if len(fp.filtered_code) >= MIN_CHARS:
                prints[student, name, ex_id] = fp
    found = {s: [] for s in students}
    for (student, name, ex_id), fp in prints.items():
        reference = _reference_code(ex_id)
        if reference:
            stub = stubs[name].get(ex_id, "")
            match = _compare(fp, _fingerprint(reference, _fingerprint(stub).hashes), stub)
            if match:
                found[student].append(f"{ex_id}: {match[0]:.0%} similar to the reference's code"
                                      f" ({EXERCISES[ex_id].reference.__module__}); in common: {match[1]}")
    for (s1, n1, e1), (s2, n2, e2) in combinations(prints, 2):
        if s1 == s2 or (n1, e1) != (n2, e2):
            continue
        match = _compare(prints[s1, n1, e1], prints[s2, n2, e2], stubs[n1].get(e1, ""))
        if match:
            found[s1].append(f"{e1}: {match[0]:.0%} similar to {s2}'s answer; in common: {match[1]}")
            found[s2].append(f"{e1}: {match[0]:.0%} similar to {s1}'s answer; in common: {match[2]}")
    return {s: f for s, f in found.items() if f}
