"""One grading worker: a long-lived process with its own nbgrader course root and gradebook.

    python -m autograder.worker WORKER_ROOT MAIN_ROOT

nbgrader cannot autograde in parallel on one gradebook (one SQLite file), and importing it costs about 3 s of
CPU, so `grade` starts N of these once and feeds them jobs, one JSON line each on stdin:

    {"kind": "autograde", "student": S, "assignment": A}
        autograde MAIN_ROOT/submitted/S/A in WORKER_ROOT, copy the autograded notebooks to MAIN_ROOT/autograded/S/A
        and answer with the scores read from WORKER_ROOT's gradebook (the caller merges them into MAIN_ROOT's);
    {"kind": "feedback", "student": S, "assignment": A}
        generate_feedback in MAIN_ROOT (it only reads MAIN_ROOT's gradebook, so workers can do it side by side).

Each answer is one JSON line with "ok" and, when not ok, "error". Student code runs in kernels started by this
process; they inherit neither the job channel (moved off stdin/stdout at start) nor a way to outlive it: the
worker ends when the run that started it is gone, and a kernel ends when its worker is.
"""
import json
import os
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path

import nbformat

from .execute import INCIDENTS
from .verdict import read_notes

INCIDENT_TEXT = {"CellTimeoutError": "ran past the time limit and was stopped",
                 "DeadKernelError": "the kernel died here (crash, exit or out of memory); it was restarted",
                 "NotRun": "not run: the kernel was lost too many times above"}


def exit_with_parent(parent):
    """End this process (its kernels follow) as soon as the grading run that started it is gone, even if it was
    killed outright in the middle of a notebook. Run in a daemon thread."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def nbgrader_api(root):
    """An NbGraderAPI for the course root `root`, configured by root/nbgrader_config.py."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", str(root)).load_config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def incidents(folder):
    """What happened to the kernel, per notebook cell, read from the autograded notebooks in `folder`."""
    notes = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        prefix = "" if path.stem == Path(folder).name else f"{path.stem}: "  # the notebook named as its assignment
        for n, cell in enumerate(nbformat.read(path, as_version=4).cells):
            errors = [o.ename for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            for ename in dict.fromkeys(e for e in errors if e in INCIDENTS):
                label = cell.metadata.get("nbgrader", {}).get("grade_id") or cell.get("id") or f"#{n}"
                notes.append(f"{prefix}cell {label}: {INCIDENT_TEXT[ename]}")
    return notes


def failure(result):
    """The last lines of nbgrader's traceback or log, for the report."""
    text = (result.get("error") or result.get("log") or "nbgrader failed without a message").strip()
    return "\n".join(text.splitlines()[-6:])


def autograde(api, main_root, student, assignment):
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(api.coursedir.root)
    for folder in ("submitted", "autograded"):
        shutil.rmtree(root / folder / student / assignment, ignore_errors=True)
    shutil.copytree(main_root / "submitted" / student / assignment, root / "submitted" / student / assignment)
    with Gradebook(api.coursedir.db_url) as gb:
        try:
            gb.remove_submission(assignment, student)  # fresh scores: nothing left over from an earlier job
        except MissingEntry:
            pass
    start = time.perf_counter()
    result = api.autograde(assignment, student, force=True, create=True)
    seconds = time.perf_counter() - start
    if not result["success"]:
        return {"ok": False, "error": failure(result)}
    with Gradebook(api.coursedir.db_url) as gb:
        sub = gb.find_submission(assignment, student)
        grades = {nb.name: {g.name: g.auto_score for g in nb.grades} for nb in sub.notebooks}
        comments = {nb.name: {c.name: c.auto_comment for c in nb.comments} for nb in sub.notebooks}
        timestamp = sub.timestamp.isoformat() if sub.timestamp else None
    autograded = root / "autograded" / student / assignment
    published = main_root / "autograded" / student / assignment
    shutil.rmtree(published, ignore_errors=True)
    shutil.copytree(autograded, published)
    notes, flags, seeds = read_notes(autograded)
    return {"ok": True, "grades": grades, "comments": comments, "timestamp": timestamp,
            "notes": incidents(autograded) + notes, "flags": flags, "seeds": seeds,
            "seconds": seconds}


def feedback(api, student, assignment):
    result = api.generate_feedback(assignment, student, force=True)
    return {"ok": True} if result["success"] else {"ok": False, "error": failure(result)}


def main(worker_root, main_root):
    # The job channel moves to private descriptors; fd 0 and 1, which kernels inherit, become /dev/null and the log.
    jobs, answers = os.fdopen(os.dup(0), "r"), os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    worker_api, main_api = nbgrader_api(worker_root), nbgrader_api(main_root)
    for line in jobs:
        job = json.loads(line)
        try:
            if job["kind"] == "autograde":
                answer = autograde(worker_api, Path(main_root), job["student"], job["assignment"])
            else:
                answer = feedback(main_api, job["student"], job["assignment"])
        except Exception:
            answer = {"ok": False, "error": traceback.format_exc(limit=-3)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main(*sys.argv[1:3])
