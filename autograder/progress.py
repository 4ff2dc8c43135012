"""`python -m autograder progress [NOTEBOOK_DIR]`: which exercises of your notebooks pass, with points.

Each notebook is copied to a temporary folder and run there top to bottom (your files are never changed, so save
them first), in the same kernel set-up the grader uses, without the sandbox; a graded cell is scored by nbgrader's
own rule (an error or anything written to stderr scores 0). Hidden tests live only in the instructor's copy: a
final grade can still be lower than what this shows.

Each notebook gets a fresh kernel of its own, forked from a process that has already imported torch and the
course's modules (autograder.forkserver): starting a kernel the usual way costs about 2 s of CPU, most of what
checking a short notebook costs. A forked kernel starts as a new one would and shares nothing with the
notebook before it; `--plain-kernels` (fork=False) starts each one from scratch, as grading does.

With no folder named, the folder it is run from is checked when it holds notebooks (else the course's own
`course/`). Checkpoints are left out, and so are copies of a notebook ("05_x-Copy1.ipynb", a backup folder):
a copy is a notebook with the same graded cells as another; the one checked is the one named like its folder,
then the least deep, then the newest. Two notebooks run at a time, the longest (most code) first, so that both
workers finish at about the same time.
"""
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
from nbgrader.utils import determine_grade
from tqdm import tqdm

from . import nbgrader_ops as ops
from .execute import ResilientExecute
from .forkserver import ForkingKernelManager, kernel_env, prestart

JOBS = 2  # notebooks run at once: one per core of a small laptop


def default_target(cwd=None):
    """The folder progress checks when none is named: cwd when it holds notebooks, else the course's course/."""
    cwd = Path(cwd or os.getcwd())
    return cwd if any(_candidates(cwd)) else ops.RELEASE


def _candidates(folder):
    return (p for p in Path(folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _grade_ids(path):
    """The graded cells' ids of a notebook (None if it cannot be read: it is checked, and reported broken)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return None
    return frozenset(c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells
                     if c.metadata.get("nbgrader", {}).get("grade"))


def notebooks_in(target):
    """(notebooks to check, sorted; {skipped copy: the notebook it copies}) for `target`, a notebook or a folder."""
    target = Path(target)
    if target.is_file():
        return [target], {}
    if not target.is_dir():
        raise FileNotFoundError(f"{target} is neither a notebook nor a folder")
    groups = {}
    for path in _candidates(target):
        ids = _grade_ids(path)
        groups.setdefault(ids if ids else path, []).append(path)  # no graded cells or unreadable: on its own

    def preference(p):
        return (p.stem != p.parent.name, len(p.relative_to(target).parts), -p.stat().st_mtime, str(p))

    keep, copies = [], {}
    for paths in groups.values():
        first, *rest = sorted(paths, key=preference)
        keep.append(first)
        copies.update({p: first for p in rest})
    return sorted(keep), copies


def run_copy(path, timeout, fork=True):
    """The notebook at `path`, executed in a temporary folder with a copy of it and of the plain files next to it
    (data files; not other notebooks, not subfolders). With `fork`, its kernel is forked from a warm process
    (autograder.forkserver); else launched as grading launches it."""
    with tempfile.TemporaryDirectory(prefix="progress-") as tmp:
        for f in path.parent.iterdir():
            if f == path or (f.is_file() and f.suffix != ".ipynb"):
                shutil.copy(f, tmp)
        nb = nbformat.read(Path(tmp) / path.name, as_version=4)
        manager = {"kernel_manager_class": ForkingKernelManager} if fork else {}
        ResilientExecute(timeout=timeout, sandbox=False, **manager).preprocess(nb, {"metadata": {"path": tmp}})
    return nb


def reason(cell):
    """Why a graded cell failed, in full: the check's explanation (without its traceback), or the error."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            text = str(out.get("evalue", "")).strip()
            return text if out.ename == "AssertionError" and text else f"{out.ename}: {text}"
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return "wrote to stderr (a graded cell that does scores 0): " + out.text.strip()
    return ""


def graded_cells(nb):
    """(grade id, score or None for hand-graded, points, why it failed) of each graded cell."""
    rows = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        if cell.cell_type != "code":
            rows.append((meta["grade_id"], None, float(meta.get("points", 0)), ""))
            continue
        score, points = determine_grade(cell)
        rows.append((meta["grade_id"], score, points, "" if score == points else reason(cell)))
    return rows


def _indented(text, prefix="        "):
    return "\n".join(prefix + line for line in text.splitlines())


def table(results, copies=()):
    """The printed report: one block per notebook (named by its path, NN_x/NN_x.ipynb as NN_x), then the totals."""
    lines, got, total, hand = [], 0.0, 0.0, 0.0
    for name, rows in results:
        if isinstance(rows, str):  # the notebook could not be read
            lines.append(f"{name:<40} not checked: {rows}")
            continue
        auto = [r for r in rows if r[1] is not None]
        mine, possible = sum(r[1] for r in auto), sum(r[2] for r in auto)
        got, total = got + mine, total + possible
        lines.append(f"{name:<40} {mine:g} / {possible:g} points" if rows else f"{name:<40} no graded cells")
        for grade_id, score, points, why in rows:
            if score is None:
                hand += points
                lines.append(f"  {'hand':<5} {grade_id:<36} {'-':>3} / {points:g}   (a written answer, graded by hand)")
            else:
                lines.append(f"  {'pass' if score == points else 'FAIL':<5} {grade_id:<36} {score:>3g} / {points:g}")
                if why:
                    lines.append(_indented(why))
    for copy, original in copies:
        lines.append(f"skipped {copy}: a copy of {original}")
    lines.append(f"\ntotal: {got:g} / {total:g} autograded points" + (f", plus {hand:g} points of written answers"
                                                                        " graded by hand" if hand else ""))
    return "\n".join(lines)


def _check_one(path, timeout, fork=True):
    """(graded rows, or the reason the notebook could not be checked) of one notebook; runs in a worker process."""
    try:
        return graded_cells(run_copy(path, timeout, fork))
    except Exception as err:  # a broken file: say so and go on with the others
        if fork:  # a forked kernel that failed to start: the notebook gets a kernel started the usual way
            return _check_one(path, timeout, fork=False)
        first_line = (str(err).strip().splitlines() or [""])[0]
        return f"{type(err).__name__}: {first_line}"


def _name(path, target):
    rel = path.relative_to(target).with_suffix("") if path != target else Path(path.stem)
    return rel.parent.as_posix() if rel.parent.name == rel.name else rel.as_posix()


def _start_worker(threads, fork):
    """Set a worker up: its kernels' torch threads (unless OMP_NUM_THREADS is set), its fork server started."""
    # Notebooks side by side, each with a thread pool as large as the machine, fought over the cores: torch's
    # waiting threads spin. One thread per core each made the eleven notebooks cost 5 s less CPU (the checks
    # run on one thread anyway: autograder.checks.checker.quiet).
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if fork:
        prestart(kernel_env())


def _code_size(path):
    """Characters of code in a notebook (0 if it cannot be read): how long it runs, roughly."""
    try:
        return sum(len(c.source) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    except Exception:
        return 0


def progress(target=None, timeout=None, stream=sys.stdout, jobs=JOBS, fork=True):
    """Check every notebook in `target` (default: see default_target) and print the table; returns 0 (1 if there
    was nothing to check). With `fork`, kernels are forked from a warm process (autograder.forkserver)."""
    # The kernels import linattn_ref and autograder even where the course is not installed as a package, and
    # run in fast mode (notebook 10 trains a few steps only): progress is about the exercises' verdicts.
    os.environ.update({k: v for k, v in ops.nbgrader_env().items() if k in ("PATH", "PYTHONPATH", "LINATTN_FAST")})
    target = Path(target) if target is not None else default_target()
    paths, copies = notebooks_in(target)
    if not paths:
        print(f"no notebooks in {target}", file=sys.stderr)
        return 1
    print(f"checking {len(paths)} notebook{'s' if len(paths) != 1 else ''} in {target.resolve()}", file=sys.stderr)
    results = {}
    workers = max(1, min(jobs, len(paths)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(threads, fork)) as pool, \
            tqdm(total=len(paths), desc="checking", unit="nb", file=sys.stderr) as bar:
        futures = {pool.submit(_check_one, path, timeout or ops.CELL_TIMEOUT, fork): path
                   for path in sorted(paths, key=_code_size, reverse=True)}  # the longest first: workers end together
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.set_postfix_str(_name(futures[future], target))
            bar.update()
    skipped = [(c.relative_to(target).as_posix(), o.relative_to(target).as_posix()) for c, o in sorted(copies.items())]
    print(table([(_name(p, target), results[p]) for p in paths], skipped), file=stream)
    return 0
