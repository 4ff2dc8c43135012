"""nbgrader driven from Python: release and autograde in a course root of their own, so that tests (and the
instructor CLI) never touch the repository's course/ folder or its gradebook.

    assignments()                          the assignment folders in solutions/
    generate_release(dest)                 the learner notebooks of every assignment, written to dest/<assignment>/
    root = course_root(folder)             a grading folder: its own nbgrader_config.py and gradebook
    generate(root)                         generate_assignment into root/release (and root's gradebook)
    submit(root, student, assignment, notebook_path)
    autograde(root)                        autograde every submission in root/submitted; returns the failures
    scores(root)                           {(student, assignment): Score} read from root's gradebook
    release_problems(names)                what leaks or lost its id in the learner notebooks (empty: all well)

Every course root loads the repository's nbgrader_config.py first, so stubs and timeouts are the course's own;
only the folders and the gradebook are moved. nbgrader runs as a subprocess of this interpreter's environment:
its bin goes first on PATH (nbgrader calls alembic) and the repository on PYTHONPATH (kernels import
linattn_ref and autograder even where the package is not installed).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from traitlets.config.loader import PyFileConfigLoader

REPO = Path(__file__).resolve().parents[1]
COURSE_CONFIG = REPO / "nbgrader_config.py"
_course_config = PyFileConfigLoader(COURSE_CONFIG.name, str(REPO)).load_config()
SOURCE = REPO / _course_config.CourseDirectory.source_directory  # solutions/
RELEASE = REPO / _course_config.CourseDirectory.release_directory  # course/
CELL_TIMEOUT = _course_config.Execute.timeout  # seconds a cell may run when a notebook is graded or validated
BIN = Path(sys.executable).parent  # not resolved: a venv's python is a symlink to the base interpreter
_FAILED = re.compile(r"There was an error processing assignment '(.+?)' for student '(.+?)'")


@dataclass(frozen=True)
class Score:
    """One submission's marks. Autograded means the test cells (code); written answers are graded by hand."""
    total: float
    max_total: float
    autograded: float
    max_autograded: float


def assignments(source=SOURCE):
    """Names of the assignment folders in `source` (those holding a notebook), sorted; also works on a release."""
    source = Path(source)
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb")))


def notebooks(folder):
    """The notebooks of one assignment folder, sorted (checkpoints excluded)."""
    return sorted(Path(folder).glob("*.ipynb"))


def nbgrader_env():
    """The environment nbgrader and its kernels need: this venv's bin on PATH, the repository on PYTHONPATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env["LINATTN_FAST"] = "1"  # notebook 10 trains a few steps only: grading is about the exercises, not training
    return env


def run_nbgrader(root, *args, check=True, timeout=1800):
    """Run `nbgrader ARGS` in the course root `root`; with check, raise RuntimeError with its log if it fails."""
    cmd = [str(BIN / "nbgrader"), *args]
    proc = subprocess.run(cmd, cwd=root, env=nbgrader_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {root} (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def course_root(folder, source=SOURCE, release=None, extra_config=()):
    """Make `folder` an nbgrader course root with absolute paths and its own gradebook; return it as a Path.

    Sources are read from `source` (the repository's solutions/ by default); learner notebooks go to
    `release` (default folder/release); submitted/, autograded/, feedback/ and gradebook.db live in folder.
    `extra_config` lines are appended to the root's nbgrader_config.py (after the course's own settings).
    """
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    dirs = {"source_directory": Path(source).resolve(),
            "release_directory": Path(release).resolve() if release else root / "release",
            "submitted_directory": root / "submitted",
            "autograded_directory": root / "autograded",
            "feedback_directory": root / "feedback"}
    lines = ["c = get_config()  # noqa: F821",
             f"load_subconfig({str(COURSE_CONFIG)!r})  # noqa: F821  (the course's stubs and timeouts)",
             f"c.CourseDirectory.root = {str(root)!r}",
             *(f"c.CourseDirectory.{name} = {str(path)!r}" for name, path in dirs.items()),
             f"c.CourseDirectory.db_url = {'sqlite:///' + str(root / 'gradebook.db')!r}",
             *extra_config]
    (root / "nbgrader_config.py").write_text("\n".join(lines) + "\n")
    return root


def _each(names):
    """nbgrader takes one assignment id per run, as a glob: "*" does them all in one process."""
    return ["*"] if names is None else list(names)


def generate(root, names=None):
    """generate_assignment for the named assignments (default: all) into the root's release folder."""
    for name in _each(names):
        run_nbgrader(root, "generate_assignment", name, "--force")


def generate_release(dest, names=None, source=SOURCE):
    """Write the learner notebooks of the named assignments (default: all in `source`) to dest/<assignment>/.

    Works in a throwaway course root and gradebook, so the repository's course/ is never touched
    (unless dest is course/ itself). Returns the assignment names found in dest.
    """
    with tempfile.TemporaryDirectory(prefix="nbgrader-release-") as tmp:
        generate(course_root(tmp, source=source, release=dest), names)
    return assignments(dest)


def submit(root, student, assignment, notebook_path, source=SOURCE):
    """Place a notebook as `student`'s submission of `assignment`, under the name of the source notebook.

    nbgrader fails (and stops grading the others) on a submission whose file name differs from the
    source notebook's, so the name is normalised here: an assignment with one notebook takes any file.
    """
    expected = [p.name for p in notebooks(Path(source) / assignment)]
    name = Path(notebook_path).name
    if name not in expected:
        if len(expected) != 1:
            raise ValueError(f"{name} is not one of the notebooks of {assignment}: {expected}")
        name = expected[0]
    dest = Path(root) / "submitted" / student / assignment
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook_path, dest / name)
    return dest / name


def autograde(root, names=None):
    """Autograde every student's submissions of the named assignments (default: all, in one nbgrader run).

    nbgrader grades the other submissions when one fails (a notebook that kills its kernel, a missing
    file). Returns {(student, assignment): nbgrader's log} for those that failed, {} when all went through;
    any other failure raises RuntimeError.
    """
    failed = {}
    for name in _each(names):
        proc = run_nbgrader(root, "autograde", name, "--force", check=False)
        pairs = {(student, assignment) for assignment, student in _FAILED.findall(proc.stderr)}
        if proc.returncode != 0 and not pairs:
            raise RuntimeError(f"autograde {name} failed in {root} (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
        failed.update(dict.fromkeys(pairs, proc.stderr))
    return failed


def scores(root):
    """{(student, assignment): Score} for every graded submission in the root's gradebook."""
    from nbgrader.api import Gradebook  # imported here: nbgrader is slow to import and only needed now

    result = {}
    with Gradebook(f"sqlite:///{Path(root).resolve() / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                result[sub.student.id, assignment.name] = Score(sub.score, sub.max_score,
                                                                sub.code_score, sub.max_code_score)
    return result


SECRETS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS|hidden\s*=\s*True")
_REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def _secret_lines(source):
    """Lines inside a cell's solution / hidden-test regions that do not also appear outside them."""
    outside = {line.strip() for line in _REGION.sub("", source).splitlines()}
    return {line.strip() for m in _REGION.finditer(source) for line in m.group(2).splitlines()
            if line.strip() and line.strip() not in outside}


def release_problems(names=None, source=SOURCE, release=RELEASE):
    """What is wrong with the learner notebooks in `release`, one line each (empty: nothing).

    Every source notebook has its learner notebook; every nbgrader cell (graded, solution, locked) kept its cell
    id, grade id and points; no file holds a solution or hidden-test marker, and no cell holds a line of its
    source cell's solution or hidden-test region.
    """
    source, release, problems = Path(source), Path(release), []
    for assignment in names or assignments(source):
        for src_path in notebooks(source / assignment):
            rel_path = release / assignment / src_path.name
            if not rel_path.exists():
                problems.append(f"{rel_path}: missing (the source is {src_path})")
                continue
            released = {c.get("id"): c for c in nbformat.read(rel_path, as_version=4).cells}
            for cell in nbformat.read(src_path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if not meta.get("grade_id"):
                    continue
                where = f"{rel_path}: cell {cell.get('id')!r} ({meta['grade_id']})"
                twin = released.get(cell.get("id"))
                twin_meta = twin.metadata.get("nbgrader", {}) if twin is not None else {}
                if twin_meta.get("grade_id") != meta["grade_id"]:
                    problems.append(f"{where} lost its cell id or grade id")
                elif twin_meta.get("points") != meta.get("points"):
                    problems.append(f"{where} has {twin_meta.get('points')} points, the source {meta.get('points')}")
                else:
                    leaked = {line.strip() for line in twin.source.splitlines()} & _secret_lines(cell.source)
                    if leaked:
                        problems.append(f"{where} gives away {len(leaked)} line(s) of its solution or hidden tests,"
                                        f" e.g. {sorted(leaked)[0]!r}")
        for path in sorted((release / assignment).rglob("*")):
            if path.is_file() and ".ipynb_checkpoints" not in path.parts:
                hits = sorted({m.group(0) for m in SECRETS.finditer(path.read_text(errors="ignore"))})
                if hits:
                    problems.append(f"{path}: holds {', '.join(map(repr, hits))} (a solution or hidden test)")
    return problems
