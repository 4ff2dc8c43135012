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
process (sandboxed: autograder.sandbox); they inherit neither the job channel (moved off stdin/stdout at start)
nor a way to outlive it: the worker ends when the run that started it is gone, and a kernel ends when its worker
is. The run's side, WorkerPool (below), starts the workers, lends them to jobs and replaces one that dies.
"""
import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import nbformat

from . import nbgrader_ops as ops
from .execute import INCIDENTS
from .nbgrader_ops import nbgrader_api
from .verdict import read_notes

INCIDENT_TEXT = {"CellTimeoutError": "ran past the time limit and was stopped",
                 "DeadKernelError": "the kernel died here (crash, exit or out of memory); it was restarted",
                 "NotRun": "not run, nor the cells below: the kernel was lost too many times above",
                 "WallBudget": "not run, nor the cells below: the notebook used up its wall-clock budget (the points"
                               " above stay)"}


def exit_with_parent(parent):
    """End this process (its kernels follow) as soon as the grading run that started it is gone, even if it was
    killed outright in the middle of a notebook. Run in a daemon thread."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def incidents(folder):
    """What happened to the kernel, per notebook cell, read from the autograded notebooks in `folder`."""
    notes = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        prefix = "" if path.stem == Path(folder).name else f"{path.stem}: "  # the notebook named as its assignment
        cells, told = nbformat.read(path, as_version=4).cells, set()
        for n, cell in enumerate(cells):
            errors = [o.ename for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            for ename in dict.fromkeys(e for e in errors if e in INCIDENTS):
                if ename in told and ename in ("NotRun", "WallBudget"):  # said once, for the first cell not run
                    continue
                told.add(ename)
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
            "notes": incidents(autograded) + notes, "flags": flags, "seeds": seeds, "seconds": seconds}


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


# ---------------------------------------------------------------------------------------------------------------
# the run's side: the pool of workers


class Worker:
    """An autograder.worker process and its course root; ask() sends one job and waits for the answer."""

    def __init__(self, root, main_root, lines):
        ops.course_root(root, source=ops.SOURCE, extra_config=lines)
        with sqlite3.connect(main_root / "gradebook.db") as src, sqlite3.connect(root / "gradebook.db") as dst:
            src.backup(dst)  # a consistent copy even while the main process writes
        self.log = open(root / "worker.log", "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "autograder.worker", str(root), str(main_root)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     cwd=root, env=ops.nbgrader_env(), start_new_session=True)
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(line)
        self.answers.put(None)  # the process ended

    def ask(self, job, deadline):
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.answers.get(timeout=deadline)
        except (BrokenPipeError, OSError):
            line = None
        except queue.Empty:
            self.stop()
            return {"ok": False, "error": f"no answer after {deadline:.0f} s; the grading process was stopped"}
        if line is None:
            self.stop()
            return {"ok": False, "died": True, "error": "the grading process died (something ended it from outside)"}
        return json.loads(line)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            try:
                os.killpg(self.proc.pid, 9)  # its whole group; its kernels exit when their parent is gone
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.log.close()


class WorkerPool:
    """Up to `size` workers, started on first use; a job borrows one, and a broken one is replaced."""

    def __init__(self, out, size, lines):
        self.dir = out / ".workers"
        shutil.rmtree(self.dir, ignore_errors=True)  # scratch of an earlier run
        self.out, self.lines, self.started = out, lines, []
        self.idle = queue.LifoQueue()
        for _ in range(size):
            self.idle.put(None)
        self.closed = False
        self.lock = threading.Lock()

    def run(self, job, deadline):
        worker = self.idle.get()
        try:
            for _ in range(2):  # a worker that dies under a job gets one fresh try at it
                with self.lock:
                    if self.closed:
                        return {"ok": False, "error": "stopped before it was graded"}
                    if worker is None or not worker.alive():
                        worker = Worker(self.dir / f"w{len(self.started)}", self.out, self.lines)
                        self.started.append(worker)
                answer = worker.ask(job, deadline)
                if not answer.get("died"):
                    break
            return answer
        finally:
            self.idle.put(worker)

    def close(self):
        with self.lock:
            self.closed = True
            for worker in self.started:
                worker.stop()


if __name__ == "__main__":
    main(*sys.argv[1:3])
