"""`python -m autograder progress [NOTEBOOK_DIR]`: which exercises of your notebooks pass, with points.

Each notebook is copied to a temporary folder and run there top to bottom (your files are never changed, so save
them first), in the same kernel set-up the grader uses; a graded cell is scored by nbgrader's own rule (an error
or anything written to stderr scores 0). Hidden tests live only in the instructor's copy: a final grade can
still be lower than what this shows.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbgrader.utils import determine_grade
from tqdm import tqdm

from . import nbgrader_ops as ops
from .execute import ResilientExecute


def notebooks_in(target):
    """The notebooks to check: `target` itself, or every notebook under it (checkpoints left out), sorted."""
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise FileNotFoundError(f"{target} is neither a notebook nor a folder")
    return sorted(p for p in target.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def run_copy(path, timeout):
    """The notebook at `path`, executed in a temporary folder with a copy of it and of the plain files next to it
    (data files; not other notebooks, not subfolders)."""
    with tempfile.TemporaryDirectory(prefix="progress-") as tmp:
        for f in path.parent.iterdir():
            if f == path or (f.is_file() and f.suffix != ".ipynb"):
                shutil.copy(f, tmp)
        nb = nbformat.read(Path(tmp) / path.name, as_version=4)
        ResilientExecute(timeout=timeout, sandbox=False).preprocess(nb, {"metadata": {"path": tmp}})
    return nb


def reason(cell, width=110):
    """Why a graded cell failed, in one line: the check's explanation, or the error's first line."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            lines = [line.strip() for line in str(out.get("evalue", "")).splitlines() if line.strip()]
            if out.ename == "AssertionError" and lines:  # a check's explanation; a case header ends with ":"
                text = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
            else:
                text = f"{out.ename}: {lines[0] if lines else ''}"
            break
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = "wrote to stderr (a graded cell that does scores 0): " + out.text.strip()
            break
    else:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


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


def table(results):
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
                    lines.append(f"        {why}")
    lines.append(f"\ntotal: {got:g} / {total:g} autograded points" + (f", plus {hand:g} points of written answers"
                                                                        " graded by hand" if hand else ""))
    return "\n".join(lines)


def progress(target=ops.RELEASE, timeout=None, stream=sys.stdout):
    """Check every notebook in `target` and print the table; returns 0 (1 if there was nothing to check)."""
    # The kernels import linattn_ref and autograder even where the course is not installed as a package.
    os.environ.update({k: v for k, v in ops.nbgrader_env().items() if k in ("PATH", "PYTHONPATH")})
    target = Path(target)
    paths = notebooks_in(target)
    if not paths:
        print(f"no notebooks in {target}", file=sys.stderr)
        return 1
    results = []
    for path in tqdm(paths, desc="running", unit="nb", file=sys.stderr):
        rel = path.relative_to(target).with_suffix("") if path != target else Path(path.stem)
        name = rel.parent.as_posix() if rel.parent.name == rel.name else rel.as_posix()
        try:
            results.append((name, graded_cells(run_copy(path, timeout or ops.CELL_TIMEOUT))))
        except Exception as err:  # a broken file: say so and go on with the others
            first_line = (str(err).strip().splitlines() or [""])[0]
            results.append((name, f"{type(err).__name__}: {first_line}"))
    print(table(results), file=stream)
    return 0
