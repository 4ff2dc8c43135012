"""`python -m autograder grade SUBMISSIONS --out GRADING_DIR`: grade a class with nbgrader, robust to what it submits.

    collect   every student folder or zip in SUBMISSIONS, each notebook matched to an assignment (see
              autograder.submissions); broken files become report lines, never errors
    stage     the chosen notebooks, under their source names and with deleted locked cells put back, into
              GRADING_DIR/submitted/<student>/<assignment>/; a submission whose files (and source) hash as last
              time is not graded again
    autograde N worker processes (autograder.worker), each with its own course root and gradebook; the scores
              they send back are merged into GRADING_DIR's gradebook, keeping hand-entered (manual) scores
    feedback  generate_feedback for every submission whose grades changed since its last feedback
    export    GRADING_DIR/grades.csv, report.txt and a summary table

GRADING_DIR is an nbgrader course root (its own nbgrader_config.py and gradebook.db) that formgrader can open.
grading_state.json there records what was graded from which files; it is written after every merge, so a run
that is stopped part-way loses only the submissions being graded at that moment.
"""
import copy
import csv
import fcntl
import functools
import hashlib
import json
import os
import queue
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
from tqdm import tqdm

from . import nbgrader_ops as ops
from .submissions import GradingError, catalogue, collect
from .worker import nbgrader_api

STATE_FILE = "grading_state.json"
DEFAULT_MEMORY_MB = 4096


# ---------------------------------------------------------------------------------------------------------------
# state, hashes and the course root


def digest(chunks):
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(hashlib.sha256(chunk).digest())
    return h.hexdigest()


def source_digest(assignment, source=ops.SOURCE):
    files = sorted(p for p in (Path(source) / assignment).rglob("*") if p.is_file() and ".ipynb_checkpoints"
                   not in p.parts)
    return digest(part for p in files for part in (p.relative_to(source).as_posix().encode(), p.read_bytes()))


def submission_digest(sub, source_hash):
    parts = [source_hash.encode(), sub.timestamp or b""]
    for name, data in sorted(sub.notebooks.items()):
        parts += [name.encode(), data]
    return digest(parts)


def load_state(out):
    path = out / STATE_FILE
    state = json.loads(path.read_text()) if path.exists() else {}
    state.setdefault("sources", {})
    state.setdefault("submissions", {})
    return state


def save_state(out, state):
    tmp = out / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, out / STATE_FILE)  # atomic: a run killed here leaves the old state or the new one


def config_lines(timeout, memory_mb):
    """What GRADING_DIR's and the workers' nbgrader_config.py add to the course's own configuration."""
    lines = ["from autograder.execute import autograde_preprocessors",
             "c.Autograde.autograde_preprocessors = autograde_preprocessors()  # survives dead and hung kernels",
             f"c.ResilientExecute.memory_limit_mb = {int(memory_mb)}"]
    if timeout:
        lines.append(f"c.Execute.timeout = {int(timeout)}")
    return lines


class RunLock:
    """One grade run per GRADING_DIR at a time (the lock goes with the process, even when it is killed)."""

    def __init__(self, out):
        self.file = open(out / ".grading.lock", "w")

    def __enter__(self):
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GradingError(f"another grade run is using {Path(self.file.name).parent}") from None
        return self

    def __exit__(self, *exc):
        self.file.close()


# ---------------------------------------------------------------------------------------------------------------
# workers


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


# ---------------------------------------------------------------------------------------------------------------
# merging scores, feedback, export


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
                row["notes"] = "; ".join(entry["notes"]) if entry else ""
                rows.append(row)
    fields = ["student", "assignment", "score", "max_score", "autograded", "max_autograded", "needs_manual_grade",
              "status", "notes", *items]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return rows


def summary(rows, graded_now, report):
    """The table printed at the end of a run."""
    lines = [f"{'assignment':<24} {'students':>8} {'graded':>7} {'now':>5} {'mean':>7} {'max':>6} {'full':>5}"
             f" {'zero':>5} {'to hand-grade':>13}"]
    for assignment in sorted({r["assignment"] for r in rows}):
        mine = [r for r in rows if r["assignment"] == assignment]
        graded = [r for r in mine if r["status"] == "graded"]
        scores = [r["score"] for r in graded]
        mean = f"{statistics.mean(scores):.1f}" if scores else "-"
        full = sum(r["autograded"] == r["max_autograded"] for r in graded)
        zero = sum(r["score"] == 0 for r in graded)
        manual = sum(bool(r["needs_manual_grade"]) for r in graded)
        lines.append(f"{assignment:<24} {len(mine):>8} {len(graded):>7} {graded_now.get(assignment, 0):>5}"
                     f" {mean:>7} {mine[0]['max_score']:>6g} {full:>5} {zero:>5} {manual:>13}")
    lines.append("(graded: submissions with scores; now: graded in this run; mean and zero: total score; full: every"
                 " autograded point)")
    if report:
        lines += ["", f"report ({len(report)} lines):", *(f"  {line}" for line in report)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# the run


@functools.cache
def code_cells(assignment):
    return sum(1 for p in ops.notebooks(ops.SOURCE / assignment)
               for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")


def job_deadline(assignment, timeout):
    """Seconds a worker may take for one submission before it is stopped (a net under ResilientExecute)."""
    return 600 + 3 * code_cells(assignment) * (timeout or ops.CELL_TIMEOUT)


def prepare_root(out, assignments, state, lines, students):
    """GRADING_DIR as an nbgrader course root, with the assignments generated whose sources changed."""
    from nbgrader.api import Gradebook

    root = ops.course_root(out, source=ops.SOURCE, extra_config=lines)
    api = None
    for assignment in sorted(assignments):
        source_hash = source_digest(assignment)
        if state["sources"].get(assignment) == source_hash and (root / "release" / assignment).is_dir():
            continue
        api = api or nbgrader_api(root)
        result = api.generate_assignment(assignment, force=True)
        if not result["success"]:
            log = (result.get("error") or result.get("log") or "").strip().splitlines()[-8:]
            raise GradingError(f"nbgrader could not generate {assignment} in {root}:\n" + "\n".join(log))
        state["sources"][assignment] = source_hash
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in students:
            gb.update_or_create_student(student)
    return root


def restore_locked_cells(nb, release_nb):
    """Put back the locked cells (tests, set-up) a learner deleted, where they were; return their grade ids.

    nbgrader restores what a learner changed inside a locked cell, but a deleted cell stays deleted and its
    points are lost even when the code it tests is right: with the cell back, the original test decides.
    """
    def gid(cell):
        return cell.metadata.get("nbgrader", {}).get("grade_id")

    restored, position = [], 0  # position: where a missing cell goes, just after its predecessor
    for cell in release_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        here = [i for i, c in enumerate(nb.cells) if gid(c) and gid(c) == gid(cell)]
        if here:
            position = here[0] + 1
        elif meta.get("locked") and not meta.get("solution") and gid(cell):
            nb.cells.insert(position, copy.deepcopy(cell))
            position += 1
            restored.append(gid(cell))
    return restored


def stage(root, sub):
    """Write a submission into GRADING_DIR/submitted/<student>/<assignment>/ under the source notebook names;
    return notes for the report."""
    folder, notes = root / "submitted" / sub.student / sub.assignment, []
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in sub.notebooks.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat's notes on missing cell ids and the like
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        release = nbformat.read(root / "release" / sub.assignment / f"{name}.ipynb", as_version=4)
        restored = restore_locked_cells(nb, release)
        if restored:
            prefix = "" if name == sub.assignment else f"{name}: "
            notes.append(f"{prefix}deleted locked cells put back: {', '.join(restored)}")
        nbformat.write(nb, folder / f"{name}.ipynb")
    if sub.timestamp:
        (folder / "timestamp.txt").write_bytes(sub.timestamp)
    if sub.secret:
        (folder / "submission_secret.txt").write_bytes(sub.secret)
    sub.notes += notes
    return notes


def run_jobs(pool, jobs, workers, desc, deadline, on_answer):
    """Run (job, payload) pairs on the pool; on_answer(payload, answer) runs in this thread as each one ends."""
    if not jobs:
        return
    executor = ThreadPoolExecutor(workers)
    try:
        futures = {executor.submit(pool.run, job, deadline(job)): payload for job, payload in jobs}
        with tqdm(total=len(futures), desc=desc, unit="nb", file=sys.stderr) as bar:
            for future in as_completed(futures):
                on_answer(futures[future], future.result())
                bar.update()
    except BaseException:
        pool.close()  # interrupted: stop the workers, or the threads below would wait for them to finish
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def key(student, assignment):
    return f"{student}/{assignment}"


def plan(subs, state, root, force, report):
    """[(submission, hash)] to autograde: new or changed ones, staged; unreadable ones are recorded as such."""
    todo = []
    for sub in subs:
        h = submission_digest(sub, state["sources"][sub.assignment])
        entry = state["submissions"].get(key(sub.student, sub.assignment))
        if entry and entry["hash"] == h and entry["status"] != "failed" and not force:
            continue  # unchanged since it was graded (or found unreadable)
        if not sub.notebooks:
            state["submissions"][key(sub.student, sub.assignment)] = {**(entry or {}), "hash": h,
                                                                      "status": "not graded", "notes": sub.notes}
            continue
        report.extend(f"{sub.student}: {sub.assignment}: {note}" for note in stage(root, sub))
        todo.append((sub, h))
    return todo


def record(state, sub, h, answer, report):
    """Note a worker's answer for one submission in the state and the report."""
    entry = state["submissions"].get(key(sub.student, sub.assignment), {})
    news = answer["notes"] if answer["ok"] else [f"grading failed: {answer['error']}"]
    report.extend(f"{sub.student}: {sub.assignment}: {note}" for note in news)
    state["submissions"][key(sub.student, sub.assignment)] = {
        "hash": h, "status": "graded" if answer["ok"] else "failed", "notes": sub.notes + news,
        "feedback": entry.get("feedback"), "seconds": answer.get("seconds")}


def grade(submissions, out, jobs=None, timeout=None, memory_mb=DEFAULT_MEMORY_MB, force=False, stream=sys.stdout):
    """Grade everything new or changed in SUBMISSIONS into OUT; return the exit status (1 if a job failed)."""
    os.environ.update({k: v for k, v in ops.nbgrader_env().items() if k in ("PATH", "PYTHONPATH")})
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    known = catalogue()
    if not known:
        raise GradingError(f"no assignments in {ops.SOURCE}")
    workers, lines = max(1, jobs or os.cpu_count() or 1), config_lines(timeout, memory_mb)
    with RunLock(out):
        state, report = load_state(out), []
        subs, students = collect(submissions, known, report)
        root = prepare_root(out, {s.assignment for s in subs}, state, lines, students)
        todo = plan(subs, state, root, force, report)
        save_state(out, state)
        pool, start = WorkerPool(out, workers, lines), time.perf_counter()
        try:
            def graded(payload, answer):
                sub, h = payload
                if answer["ok"]:
                    merge(root, sub, answer)
                record(state, sub, h, answer, report)
                save_state(out, state)

            run_jobs(pool, [({"kind": "autograde", "student": sub.student, "assignment": sub.assignment}, (sub, h))
                            for sub, h in todo],
                     workers, "grading", lambda job: job_deadline(job["assignment"], timeout), graded)

            def fed_back(payload, answer):
                student, assignment, sig = payload
                if answer["ok"]:  # (a submission autograded outside these runs, by formgrader, has no entry yet)
                    entry = state["submissions"].setdefault(key(student, assignment), {"hash": None, "notes": [],
                                                                                       "status": "graded"})
                    entry["feedback"] = sig
                    save_state(out, state)
                else:
                    report.append(f"{student}: {assignment}: feedback failed: {answer['error']}")

            run_jobs(pool, [({"kind": "feedback", "student": s, "assignment": a}, (s, a, sig))
                            for s, a, sig in stale_feedback(root, state)],
                     workers, "feedback", lambda job: 600, fed_back)
        finally:
            pool.close()
        rows = export(root, state, out / "grades.csv")
    (out / "report.txt").write_text("".join(f"{line}\n" for line in report))
    done = [state["submissions"][key(sub.student, sub.assignment)] for sub, _ in todo]
    graded_now = Counter(sub.assignment for (sub, _), entry in zip(todo, done) if entry["status"] == "graded")
    print(summary(rows, graded_now, report), file=stream)
    seconds = [e["seconds"] for e in done if e["status"] == "graded"]
    if seconds:
        print(f"\ngraded {len(seconds)} submission(s) in {time.perf_counter() - start:.0f} s with {workers} worker(s);"
              f" {statistics.mean(seconds):.1f} s of autograding each on average", file=stream)
    print(f"\ngrades: {out / 'grades.csv'}  feedback: {out / 'feedback'}  formgrader: cd {out} && jupyter lab",
          file=stream)
    return 1 if any(e["status"] == "failed" for e in done) else 0
