"""`python -m autograder grade SUBMISSIONS --out GRADING_DIR`: grade a class with nbgrader, robust to what it submits.

    collect   every student folder or zip in SUBMISSIONS, each notebook matched to an assignment (see
              autograder.submissions); broken files become report lines, never errors
    stage     the chosen notebooks, under their source names, with careless changes to nbgrader cells settled
              and deleted locked cells put back, into GRADING_DIR/submitted/<student>/<assignment>/; a submission
              whose files (and source) hash as last time is not graded again
    autograde N worker processes (autograder.worker), each with its own course root and gradebook, each kernel in
              a sandbox (autograder.sandbox); the scores they send back are merged into GRADING_DIR's gradebook
              (autograder.gradebook), keeping hand-entered (manual) scores
    feedback  generate_feedback for every submission whose grades changed since its last feedback
    export    GRADING_DIR/grades.csv, report.txt and a summary table

The exit status is 1 only when the grading machinery failed on a submission (retried on the next run); what
students hand in or do in their notebooks becomes report lines.

GRADING_DIR is an nbgrader course root (its own nbgrader_config.py and gradebook.db) that formgrader can open.
grading_state.json there records what was graded from which files; it is written after every merge, so a run
that is stopped part-way loses only the submissions being graded at that moment.
"""
import fcntl
import functools
import hashlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
from tqdm import tqdm

from . import nbgrader_ops as ops
from . import sandbox as sandboxing
from .gradebook import export, merge, stale_feedback
from .nbgrader_ops import nbgrader_api
from .submissions import GradingError, assignment_notebooks, collect, printable, stage
from .worker import WorkerPool

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


def config_lines(timeout, memory_mb, sandbox=True, wall_budget=None):
    """What GRADING_DIR's and the workers' nbgrader_config.py add to the course's own configuration."""
    lines = ["from autograder.execute import autograde_preprocessors",
             "c.Autograde.autograde_preprocessors = autograde_preprocessors()  # survives dead and hung kernels",
             f"c.ResilientExecute.memory_limit_mb = {int(memory_mb)}",
             f"c.ResilientExecute.sandbox = {bool(sandbox)}",
             "c.ResilientExecute.exchange_dir = c.CourseDirectory.root + '/exchange'  # see autograder.verdict"]
    if timeout:
        lines.append(f"c.Execute.timeout = {int(timeout)}")
    if wall_budget:
        lines.append(f"c.ResilientExecute.wall_budget = {int(wall_budget)}")
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
# the run


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


@functools.cache
def code_cells(assignment):
    return sum(1 for p in ops.notebooks(ops.SOURCE / assignment)
               for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")


def job_deadline(assignment, timeout, wall_budget):
    """Seconds a worker may take for one submission before it is stopped (a net under ResilientExecute's budget,
    per notebook of the assignment)."""
    notebooks = len(ops.notebooks(ops.SOURCE / assignment))
    return 300 + notebooks * (wall_budget or 10 * (timeout or ops.CELL_TIMEOUT))


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
    flags = [f"flagged: {flag}" for flag in answer.get("flags", [])]
    report.extend(f"{sub.student}: {sub.assignment}: {note}" for note in news + flags)
    state["submissions"][key(sub.student, sub.assignment)] = {
        "hash": h, "status": "graded" if answer["ok"] else "failed", "notes": sub.notes + news, "flags": flags,
        "seeds": answer.get("seeds", {}), "feedback": entry.get("feedback"), "seconds": answer.get("seconds")}


def flag_similar(root, state, assignments, report):
    """Flag answers near-identical to the reference or a classmate's (autograder.similarity), over everyone
    graded so far in these assignments; the flags are recomputed each run, so a later copier flags both."""
    from . import similarity  # imports torch: only when there is something to compare

    for assignment in sorted(assignments):
        try:
            found = similarity.flags(root, assignment)
        except Exception as err:  # a flag is advice: its failure must not stop the grades
            report.append(f"{assignment}: the similarity check failed ({type(err).__name__}: {err}); no copy flags")
            continue
        for name, entry in state["submissions"].items():
            student, _, entry_assignment = name.rpartition("/")
            if entry_assignment == assignment:
                entry["similar"] = found.get(student, [])
                report.extend(f"{student}: {assignment}: flagged: {flag}" for flag in entry["similar"])


NO_SANDBOX = ("SANDBOX OFF (--no-sandbox): student code ran as the grader, able to read solutions/ and change the"
              " gradebook, the checks and other students' files; trust these grades only for trusted code")


def grade(submissions, out, jobs=None, timeout=None, memory_mb=DEFAULT_MEMORY_MB, force=False, sandbox=True,
          wall_budget=None, stream=sys.stdout):
    """Grade everything new or changed in SUBMISSIONS into OUT; return the exit status (1 if a job failed)."""
    os.environ.update({k: v for k, v in ops.nbgrader_env().items() if k in ("PATH", "PYTHONPATH")})
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    known = assignment_notebooks()
    if not known:
        raise GradingError(f"no assignments in {ops.SOURCE}")
    if sandbox and (why := sandboxing.problem()):
        raise GradingError(f"student kernels cannot be sandboxed: {why} (--no-sandbox grades without it, with the"
                           " grader's rights: only for trusted code)")
    workers = max(1, jobs or os.cpu_count() or 1)
    lines = config_lines(timeout, memory_mb, sandbox, wall_budget)
    with RunLock(out):
        state, report = load_state(out), [] if sandbox else [NO_SANDBOX]
        if not sandboxing.Cgroup.usable():
            report.append("no cgroup could be created: memory and process limits hold per process, not per notebook")
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
                     workers, "grading", lambda job: job_deadline(job["assignment"], timeout, wall_budget), graded)

            def fed_back(payload, answer):
                student, assignment, sig = payload
                if answer["ok"]:  # (a submission autograded outside these runs, by formgrader, has no entry yet)
                    entry = state["submissions"].setdefault(key(student, assignment), {"hash": None, "notes": [],
                                                                                       "status": "graded"})
                    entry["feedback"] = sig
                    save_state(out, state)
                else:
                    report.append(f"{student}: {assignment}: feedback failed: {answer['error']}")

            flag_similar(root, state, {sub.assignment for sub, _ in todo}, report)
            save_state(out, state)

            run_jobs(pool, [({"kind": "feedback", "student": s, "assignment": a}, (s, a, sig))
                            for s, a, sig in stale_feedback(root, state)],
                     workers, "feedback", lambda job: 600, fed_back)
        finally:
            pool.close()
        rows = export(root, state, out / "grades.csv")
    report = [printable(line) for line in report]  # file names that are not UTF-8 among them
    (out / "report.txt").write_text("".join(f"{line}\n" for line in report))
    done = [state["submissions"][key(sub.student, sub.assignment)] for sub, _ in todo]
    graded_now = Counter(sub.assignment for (sub, _), entry in zip(todo, done) if entry["status"] == "graded")
    print(summary(rows, graded_now, report), file=stream)
    seconds = [e["seconds"] for e in done if e["status"] == "graded"]
    if seconds:
        print(f"\ngraded {len(seconds)} submission(s) in {time.perf_counter() - start:.0f} s with {workers} worker(s);"
              f" {statistics.mean(seconds):.1f} s of autograding each on average", file=stream)
    if not sandbox:
        print(f"\n{NO_SANDBOX}", file=stream)
    print(f"\ngrades: {out / 'grades.csv'}  feedback: {out / 'feedback'}  formgrader: cd {out} && jupyter lab",
          file=stream)
    return 1 if any(e["status"] == "failed" for e in done) else 0
