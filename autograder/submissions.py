"""What a class handed in: every student folder or zip in SUBMISSIONS, each notebook matched to an assignment.

    subs, students = collect(SUBMISSIONS, assignment_notebooks(), report)

Staging (stage()) then writes each submission where nbgrader grades it, with careless changes to the nbgrader
cells settled against the release (resolve_cells) and deleted locked cells put back (restore_locked_cells).

Learners' tools rename files ('Copy of 01_causal_masks (1).ipynb'), nest them or not, zip them. nbgrader fails a
student whose file name differs from the source's or whose file is broken, with a traceback, and exits 1. Here a
notebook is matched by its folder or its cleaned-up name, several files for one notebook are settled (the exact
name, else the newest), and every file that cannot be used becomes one line of the report, never an error.
"""
import copy
import datetime
import re
import shutil
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nbformat

from . import nbgrader_ops as ops

MAX_NOTEBOOK_BYTES = 50 * 2**20  # a bigger "notebook" is reported, not read
IGNORED = ("__MACOSX", ".ipynb_checkpoints")


class GradingError(Exception):
    """A problem with the grading set-up (not with a student's files): the run stops with this message."""


@dataclass
class Found:
    """One file found in a student's folder or zip."""
    path: str  # inside the student's folder or zip, with /
    where: str  # as the report names it
    mtime: float
    read: object  # () -> bytes


@dataclass
class Submission:
    """What one student handed in for one assignment."""
    student: str
    assignment: str
    notebooks: dict = field(default_factory=dict)  # source notebook name -> bytes (valid notebooks only)
    timestamp: bytes = None  # nbgrader's timestamp.txt, when the submission came with one
    secret: bytes = None  # nbgrader's submission_secret.txt: release_feedback and fetch_feedback need it
    notes: list = field(default_factory=list)  # report lines about these files


def clean_name(name):
    """A file or folder name as a learner's tools leave it -> what it was: 'Copy of 01_x (1).ipynb' -> '01_x'."""
    stem = re.sub(r"\.ipynb$", "", name.strip(), flags=re.I).strip().lower()
    while True:
        cleaned = re.sub(r"^copy of\s+", "", stem)
        cleaned = re.sub(r"(\s*\(\d+\)|[-_ ]copy\d*|-checkpoint)$", "", cleaned).strip()
        if cleaned == stem:
            break
        stem = cleaned
    return re.sub(r"[\s\-]+", "_", stem)


def assignment_notebooks(source=ops.SOURCE):
    """{assignment: [notebook names]} of the assignments in `source`."""
    return {a: [p.stem for p in ops.notebooks(Path(source) / a)] for a in ops.assignments(source)}


def match(path, known):
    """(assignment, notebook) for a notebook found at `path` in a student's files, or None."""
    parts = PurePosixPath(path).parts
    stem = clean_name(parts[-1])
    folders = {clean_name(p) for p in parts[:-1]}
    by_name = {nb.lower(): (a, nb) for a, nbs in known.items() for nb in nbs}
    for assignment, nbs in known.items():
        if assignment.lower() in folders:
            if stem in {nb.lower() for nb in nbs}:
                return by_name[stem]
            if len(nbs) == 1:
                return assignment, nbs[0]
    if stem in by_name:
        return by_name[stem]
    number = re.match(r"(\d+)(?:_|$)", stem)  # '01 my attempt' -> 01_causal_masks, when that is unambiguous
    if number:
        hits = [(a, nbs[0]) for a, nbs in known.items() if a.split("_")[0] == number.group(1) and len(nbs) == 1]
        if len(hits) == 1:
            return hits[0]
    return None


def student_id(name):
    """A name nbgrader and file systems take: letters, digits and . _ @ - only."""
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", name).lstrip(".") or "_"


def _files_in_folder(folder, label):
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not path.is_symlink() and not any(p in IGNORED or p.startswith(".") for p in rel.parts):
            found.append(Found(rel.as_posix(), f"{label}/{rel.as_posix()}", path.stat().st_mtime,
                               lambda path=path: path.read_bytes()))
    return found


def _files_in_zip(zpath, label):
    """Only names are read here; a file's bytes are read from the archive when needed (nothing is extracted)."""
    found = []
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or not parts or info.filename.startswith("/") or ".." in parts:
                continue
            if any(p in IGNORED or p.startswith(".") for p in parts):
                continue
            mtime = datetime.datetime(*info.date_time).timestamp()
            found.append(Found(info.filename, f"{label}:{info.filename}", mtime,
                               lambda name=info.filename, size=info.file_size: _zip_read(zpath, name, size)))
    return found


def _zip_read(zpath, name, size):
    if size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{size / 2**20:.0f} MB, more than a notebook can be")
    with zipfile.ZipFile(zpath) as zf:
        return zf.read(name)


def read_notebook(found):
    """The notebook's bytes, once they are known to hold a valid notebook; else ValueError saying what is wrong."""
    try:
        data = found.read()
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"could not be read ({type(err).__name__}: {err})") from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{len(data) / 2**20:.0f} MB, more than a notebook can be")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
            nbformat.validate(nb)
    except UnicodeDecodeError:
        raise ValueError("is not a notebook (not UTF-8 text)") from None
    except nbformat.reader.NotJSONError:
        raise ValueError("is not a notebook (not valid JSON)") from None
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"is not a valid notebook ({first_line[:200]})") from None
    return data


def read_timestamp(found):
    """(bytes of nbgrader's timestamp.txt, None), or (None, what is wrong with it)."""
    from nbgrader.utils import parse_utc

    try:
        data = found.read()[:100]
        parse_utc(data.decode("utf-8").strip())
    except UnicodeDecodeError:
        return None, "is not text"
    except Exception as err:  # a bad CRC in a zip, an unreadable file, not a date
        return None, f"could not be read as a date ({type(err).__name__}: {str(err)[:100]})"
    return data, None


def printable(text):
    """Text that can be written as UTF-8: file names that are not UTF-8 (surrogate escapes) shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def submission_root(submissions):
    """The folder whose entries are students: nbgrader's submitted/ when SUBMISSIONS is a course root."""
    submissions = Path(submissions)
    if (submissions / "nbgrader_config.py").is_file():
        if not (submissions / "submitted").is_dir():
            raise GradingError(f"{submissions} is an nbgrader course root without a submitted/ folder: run"
                               " `nbgrader collect ASSIGNMENT` there first")
        return submissions / "submitted"
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder")
    return submissions


def collect(submissions, known, report):
    """([Submission], [student ids]) from SUBMISSIONS; every problem goes to `report` as one line."""
    root = submission_root(submissions)
    entries = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name in IGNORED:
            continue
        if entry.is_dir():
            name = entry.name
        elif entry.suffix.lower() == ".zip":
            name = entry.stem
        else:
            report.append(f"{entry.name}: not a student folder or zip; skipped")
            continue
        sid = student_id(name)
        if sid in entries:
            report.append(f"{entry.name}: a second submission for student {sid!r}; skipped (first: "
                          f"{entries[sid].name})")
            continue
        if sid != name:
            report.append(f"{entry.name}: graded as student {sid!r} (characters nbgrader cannot take replaced)")
        entries[sid] = entry
    found = []
    for sid, entry in entries.items():
        found += _collect_student(sid, entry, known, report)
    return found, list(entries)


def _collect_student(sid, entry, known, report):
    try:
        files = _files_in_folder(entry, entry.name) if entry.is_dir() else _files_in_zip(entry, entry.name)
    except Exception as err:  # a bad zip, an unreadable folder, names zipfile cannot decode
        report.append(f"{sid}: {entry.name} could not be opened ({type(err).__name__}: {err}); nothing graded")
        return []
    notebooks = [f for f in files if f.path.lower().endswith(".ipynb")]
    if not notebooks:
        report.append(f"{sid}: no notebook in {entry.name}; nothing graded")
        return []
    chosen = {}  # (assignment, notebook) -> [Found]
    for f in notebooks:
        hit = match(f.path, known)
        if hit is None:
            report.append(f"{sid}: {f.where} matches no assignment ({', '.join(known)}); not graded")
        else:
            chosen.setdefault(hit, []).append(f)
    subs = {}
    for (assignment, nb), candidates in sorted(chosen.items()):
        sub = subs.setdefault(assignment, Submission(sid, assignment))
        # several files for one notebook: the one with the exact name, else the newest
        candidates.sort(key=lambda f: (PurePosixPath(f.path).name == f"{nb}.ipynb", f.mtime), reverse=True)
        pick = candidates[0]
        if len(candidates) > 1:
            sub.notes.append(f"{len(candidates)} files for {nb}.ipynb ({', '.join(c.where for c in candidates)});"
                             f" graded {pick.where}")
        elif PurePosixPath(pick.path).name != f"{nb}.ipynb":
            sub.notes.append(f"graded {pick.where} as {nb}.ipynb")
        try:
            sub.notebooks[nb] = read_notebook(pick)
        except ValueError as err:
            sub.notes.append(f"{pick.where} {err}; not graded")
    for f in files:  # nbgrader's submitted/<student>/<assignment>/timestamp.txt and submission_secret.txt
        parts = PurePosixPath(f.path).parts
        if parts[-1] == "timestamp.txt" and len(parts) > 1 and parts[-2] in subs:
            subs[parts[-2]].timestamp, problem = read_timestamp(f)
            if problem:
                subs[parts[-2]].notes.append(f"{f.where} {problem}; graded without a timestamp")
        if parts[-1] == "submission_secret.txt" and len(parts) > 1 and parts[-2] in subs:
            try:
                subs[parts[-2]].secret = f.read()[:1000]
            except Exception as err:  # a broken zip member: feedback cannot be released to this one
                subs[parts[-2]].notes.append(f"{f.where} unreadable ({type(err).__name__}); no feedback secret")
    for sub in subs.values():
        report.extend(f"{sid}: {sub.assignment}: {note}" for note in sub.notes)
    return list(subs.values())


# ---------------------------------------------------------------------------------------------------------------
# staging: what nbgrader will grade


FLAGS = ("grade", "solution", "locked", "points", "task")


def resolve_cells(nb, release_nb):
    """Settle, against the release notebook, the nbgrader cells a careless learner copied, duplicated or re-flagged
    (nbgrader fails the whole notebook on each); return a note for each cell settled.

    A cell whose grade id the notebook does not have (copied from another notebook) and every copy of a cell but
    one (the one with the release's cell id, else the first) lose their nbgrader metadata: they run as plain code
    that scores nothing. A cell whose flags (solution, grade, locked, points) were changed gets the release's back.
    """
    release = {c.metadata.nbgrader["grade_id"]: c for c in release_nb.cells
               if c.metadata.get("nbgrader", {}).get("grade_id")}
    keeper = {}  # grade id -> index of the copy that keeps it
    for i, cell in enumerate(nb.cells):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in release and (gid not in keeper or cell.get("id") == release[gid].get("id") != nb.cells[
                keeper[gid]].get("id")):
            keeper[gid] = i
    notes = []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id")
        if gid not in release:
            if gid or any(meta.get(f) for f in FLAGS):
                del cell.metadata["nbgrader"]
                notes.append(f"cell {gid or i!r} is not a graded cell of this notebook (copied?): ignored")
        elif keeper[gid] != i:
            del cell.metadata["nbgrader"]
            notes.append(f"a second copy of cell {gid}: ignored (the first is graded)")
        else:
            source_meta = release[gid].metadata.nbgrader
            if any(meta.get(f) != source_meta.get(f) for f in FLAGS):
                cell.metadata["nbgrader"] = copy.deepcopy(source_meta)
                notes.append(f"cell {gid}: its nbgrader flags were changed; the course's put back")
    return notes


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
        prefix = "" if name == sub.assignment else f"{name}: "
        notes += [prefix + note for note in resolve_cells(nb, release)]
        restored = restore_locked_cells(nb, release)
        if restored:
            notes.append(f"{prefix}deleted locked cells put back: {', '.join(restored)}")
        nbformat.write(nb, folder / f"{name}.ipynb")
    if sub.timestamp:
        (folder / "timestamp.txt").write_bytes(sub.timestamp)
    if sub.secret:
        (folder / "submission_secret.txt").write_bytes(sub.secret)
    sub.notes += notes
    return notes
