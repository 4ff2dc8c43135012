"""GRADING_DIR's gradebook: scores merged in from the workers, what feedback is stale, grades.csv.

    merge(root, sub, answer)          a worker's scores into root/gradebook.db (hand-entered scores stay)
    stale_feedback(root, state)       [(student, assignment, signature)] whose feedback is missing or out of date
    export(root, state, path)         grades.csv, one row per student and assignment; returns the rows
"""
import csv
import hashlib
import os
import warnings

from .submissions import printable


def merge(root, sub, answer):
    """Write a worker's scores into the main gradebook. Manual scores stay (nbgrader's own rule on re-autograde:
    a grade that has a manual score is flagged for review instead)."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission warns about its own session use
        gb.update_or_create_student(sub.student)
        kwargs = {"timestamp": answer["timestamp"]} if answer.get("timestamp") else {}
        submission = gb.update_or_create_submission(sub.assignment, sub.student, **kwargs)
        for nb in submission.notebooks:
            scores = answer["grades"].get(nb.name, {})
            for grade in nb.grades:
                grade.auto_score = scores.get(grade.name)
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            comments = answer["comments"].get(nb.name, {})
            for comment in nb.comments:
                comment.auto_comment = comments.get(comment.name)
        gb.db.commit()


def grade_signature(submission, files_hash):
    """Everything the feedback of one submission shows, hashed: feedback is regenerated when it changes."""
    rows = [files_hash]
    for nb in submission.notebooks:
        rows += [(nb.name, g.name, g.auto_score, g.manual_score, g.extra_credit) for g in nb.grades]
        rows += [(nb.name, c.name, c.auto_comment, c.manual_comment) for c in nb.comments]
    return hashlib.sha256(repr(sorted(rows, key=repr)).encode()).hexdigest()


def stale_feedback(root, state):
    """(student, assignment, signature) of graded submissions whose feedback is missing or out of date."""
    from nbgrader.api import Gradebook

    todo = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                entry = state["submissions"].get(f"{sub.student.id}/{assignment.name}", {})
                if not (root / "autograded" / sub.student.id / assignment.name).is_dir():
                    continue
                sig = grade_signature(sub, entry.get("hash"))
                if entry.get("feedback") != sig:
                    todo.append((sub.student.id, assignment.name, sig))
    return todo


def item_column(assignment, notebook, grade_id):
    return f"{assignment}/{grade_id}" if notebook == assignment else f"{assignment}/{notebook}/{grade_id}"


def export(root, state, path):
    """grades.csv: one row per student and assignment, one column per graded item. Returns the rows."""
    from nbgrader.api import Gradebook

    rows, items = [], []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        students = sorted(s.id for s in gb.students)
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            cells = [(nb.name, c.name) for nb in assignment.notebooks for c in nb.grade_cells + nb.task_cells]
            items += [item_column(assignment.name, nb, c) for nb, c in cells]
            subs = {s.student.id: s for s in assignment.submissions}
            for student in students:
                entry = state["submissions"].get(f"{student}/{assignment.name}")
                row = {"student": student, "assignment": assignment.name, "max_score": assignment.max_score,
                       "max_autograded": assignment.max_code_score}
                sub = subs.get(student)
                if sub is None:
                    row.update(score=0.0, autograded=0.0, needs_manual_grade=False,
                               status=entry["status"] if entry else "not submitted")
                else:
                    row.update(score=sub.score, autograded=sub.code_score, needs_manual_grade=sub.needs_manual_grade,
                               status=entry["status"] if entry else "graded")
                    for nb in sub.notebooks:
                        for g in nb.grades:
                            row[item_column(assignment.name, nb.name, g.name)] = g.score
                row["notes"] = printable("; ".join(entry["notes"])) if entry else ""
                row["flags"] = printable("; ".join(entry.get("flags", []) + entry.get("similar", []))) if entry else ""
                rows.append(row)
    fields = ["student", "assignment", "score", "max_score", "autograded", "max_autograded", "needs_manual_grade",
              "status", "notes", "flags", *items]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return rows
