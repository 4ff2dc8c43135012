"""A hostile and careless class graded in one run of notebook 01 (`--jobs 2`, sandboxed): every attack fails,
every careless student is graded, the batch finishes, and nothing outside the students' sandboxes changes.

Each attack is the code a student would write, put in cells of its own into a solution notebook (its exact score:
full marks, the attack gained nothing and cost nothing) or into the untouched learner notebook (its exact score:
0, the attack found nothing to copy and forged nothing). Attacks are grouped into a few students (each notebook
graded costs ~15 s): the thief, the vandal, the hog, the sleeper, the careless student and the classmate they aim
at. Attacks that would break out write marker files and leave marker processes; the test looks for both after.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from test_grading import NB00, NB01, autograded_max, cell, learner, read_csv, source, write

from autograder import grading, sandbox
from autograder import nbgrader_ops as ops

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 15  # s per cell
WALL_BUDGET = 70  # s per notebook: the sleeper's stubborn cells need more than this (see sleeper below)
MARK = "hostile-mark-7f3a"  # in the name of every file an attack writes and the command line of every survivor


def code(src):
    return nbformat.v4.new_code_cell(src)


def with_cells(nb, sources, before=None):
    """`nb` with plain code cells added before cell `before` (default: at the end)."""
    at = next(i for i, c in enumerate(nb.cells) if c.get("id") == before) if before else len(nb.cells)
    nb.cells[at:at] = [code(s) for s in sources]
    return nb


def guarded(body):
    """An attack that keeps quiet when it fails, as a student's would."""
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f"try:\n{lines}\nexcept BaseException as err:\n    print('attack failed:', type(err).__name__)\n"


def plant(paths):
    """Try to write a marker file into each folder."""
    return guarded(f"""
import os
for folder in {[str(p) for p in paths]!r} + [os.path.expanduser('~'), os.getcwd() + '/..']:
    try:
        open(os.path.join(folder, '{MARK}.txt'), 'w').write('was here')
    except OSError:
        pass
""")


def forge(out):
    """Rewrite the gradebook: a classmate to 0, every own grade to 100, now and again later from a new session."""
    sql = f"""
import glob, os, sqlite3
books = glob.glob({str(out)!r} + '/**/gradebook.db', recursive=True)
here = os.getcwd()
while here != '/':
    books += glob.glob(here + '/gradebook.db')
    here = os.path.dirname(here)
for book in books:
    with sqlite3.connect(book) as db:
        db.execute('update grade set auto_score = 100')
        db.execute('update submitted_notebook set flagged = 0')
"""
    return guarded(f"""
import subprocess, sys
sql = {sql!r}
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(40)\\n' + sql + '# {MARK}'], start_new_session=True)
exec(sql)
""")


def steal(patterns):
    """Run every solution cell found in the notebooks matching `patterns` (solutions/, a classmate's)."""
    return guarded(f"""
import glob, nbformat
for pattern in {patterns!r}:
    for path in glob.glob(pattern, recursive=True):
        for c in nbformat.read(path, as_version=4).cells:
            if c.cell_type == 'code' and c.metadata.get('nbgrader', {{}}).get('solution'):
                try:
                    exec(c.source, globals())
                except Exception:
                    pass
""")


REWRITE_CHECKER = guarded(f"""
import autograder.checks.checker as checker
for path in [checker.__file__, {str(REPO / 'autograder/checks/checker.py')!r}]:
    try:
        with open(path, 'a') as f:
            f.write('\\ndef check(*a, **k):\\n    return None\\n')
    except OSError:
        pass
""")

KILL = guarded("""
import os, signal
parent = os.getppid()
grandparent = int(open(f'/proc/{parent}/stat').read().split(')')[1].split()[1])
for pid in (grandparent, parent):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
for proc in os.listdir('/proc'):  # sibling grading workers
    try:
        if proc.isdigit() and b'autograder.worker' in open(f'/proc/{proc}/cmdline', 'rb').read():
            os.kill(int(proc), signal.SIGKILL)
    except OSError:
        pass
""")

SURVIVE = guarded(f"""
import subprocess, sys
subprocess.Popen(['setsid', sys.executable, '-c', 'import time; time.sleep(600)  # {MARK}'])
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {MARK}'], start_new_session=True)
""")

FD2_WRAPPER = """
_causal_mask = causal_mask
def causal_mask(*args, **kwargs):  # noise on fd 2 while the check runs
    import os, subprocess, sys
    os.write(2, b"fd 2 noise\\n")
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('a child on stderr')"])
    return _causal_mask(*args, **kwargs)
"""

BIG_DISPLAY = "from IPython.display import display\ndisplay({'text/plain': 'd' * 30_000_000}, raw=True)"
BIG_RESULT = "'r' * 20_000_000"
MEMORY_CHILDREN = """import subprocess, sys
children = [subprocess.Popen([sys.executable, '-c', "b = b'x' * 1_500_000_000; import time; time.sleep(3)"])
            for _ in range(3)]
print('children exited with', sorted(p.wait() for p in children))"""
STUBBORN = "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except BaseException:\n        pass\n"


def corrupt(zpath, member):
    """Flip one byte of a stored member's data: its CRC no longer matches."""
    data = bytearray(zpath.read_bytes())
    with zipfile.ZipFile(zpath) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    zpath.write_bytes(bytes(data))


def zipped(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def hostile_class(folder, out):
    """Write the class; return {student: expected autograded score}, the files attacks aim at."""
    full, sol = autograded_max(source(NB01)), source(NB01)
    expected = {}
    rel = f"{NB01}/{NB01}.ipynb"

    def student(name, nb, score):
        write(nb, folder / name / rel)
        expected[name] = score

    first_check = "causal_mask_check"
    # the classmate the thief tries to zero, in a folder whose name is not UTF-8, next to a file whose name is not
    odd = folder / os.fsdecode(b"caf\xe9")
    write(source(NB01), odd / rel)
    (odd / NB01 / os.fsdecode(b"notes \xff.ipynb")).write_text("{}")
    expected["caf_"] = full
    # forges grades, rewrites the checker, runs the solutions and a classmate's notebook: none is there to find
    attacks = [forge(out), REWRITE_CHECKER, steal([f"{REPO}/solutions/*/*.ipynb", "/course/../solutions/*/*.ipynb",
                                                   "../../solutions/*/*.ipynb"]),
               steal([f"{out}/submitted/*/{NB01}/*.ipynb", "../*/*.ipynb", "../../*/*/*.ipynb"])]
    student("thief", with_cells(learner(NB01), attacks, before=first_check), 0)
    (folder / "thief" / NB01 / "timestamp.txt").write_bytes(b"\xff\xfe not a date")
    # kills what it can see, leaves survivors and files behind, writes to fd 2 while its answer is checked
    vandal = with_cells(source(NB01), [KILL, SURVIVE, plant([REPO, REPO / "autograder/checks", out,
                                                            out / "submitted", "/tmp", "/root"])], before=first_check)
    cell(vandal, "causal_mask").source += FD2_WRAPPER
    student("vandal", vandal, full)
    student("hog", with_cells(source(NB01), [BIG_DISPLAY, BIG_RESULT, MEMORY_CHILDREN], before=first_check), full)
    # sleeping cells replayed at every restart by four stubborn ones: past the budget, the first check's point stays
    sleeper = with_cells(source(NB01), ["import time\ntime.sleep(4)"] * 3 + [STUBBORN] * 4, before="cell-07")
    student("sleeper", sleeper, sol_points(sol, [first_check]))

    # careless: a cell copied from notebook 00, a duplicated test cell, changed flags, a timestamp with a bad CRC
    careless = source(NB01)
    careless.cells.append(next(c for c in source(NB00).cells if c.metadata.get("nbgrader", {}).get("grade")))
    twin = nbformat.v4.new_code_cell(cell(careless, "qk_pairs_check").source)
    twin.metadata = dict(cell(careless, "qk_pairs_check").metadata)
    careless.cells.append(twin)
    cell(careless, "causal_mask").metadata.nbgrader["solution"] = False
    cell(careless, "qk_pairs_check").metadata.nbgrader["grade"] = False
    zipped(folder / "careless.zip", {rel: nbformat.writes(careless).encode(),
                                     f"{NB01}/timestamp.txt": "2025-03-14 09:26:53 UTC" * 4})
    corrupt(folder / "careless.zip", f"{NB01}/timestamp.txt")
    expected["careless"] = full
    zipped(folder / "crcnotebook.zip", {rel: nbformat.writes(sol).encode()})
    corrupt(folder / "crcnotebook.zip", rel)
    return expected


def sol_points(sol, check_ids):
    return sum(cell(sol, c).metadata.nbgrader["points"] for c in check_ids)


def repo_state():
    """The repository as git sees it: status and a hash of every tracked file."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                            capture_output=True, text=True).stdout
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True).stdout.split(b"\0")
    h = hashlib.sha256()
    for name in filter(None, files):
        path = REPO / name.decode()
        h.update(name + (path.read_bytes() if path.is_file() else b""))
    return status, h.hexdigest()


def marked_processes():
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and MARK.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    subs, out = tmp_path_factory.mktemp("hostile"), tmp_path_factory.mktemp("hostile_grading")
    expected = hostile_class(subs, out)
    before, printed, start = repo_state(), io.StringIO(), time.perf_counter()
    status = grading.grade(subs, out, jobs=2, timeout=TIMEOUT, memory_mb=2048, wall_budget=WALL_BUDGET,
                           stream=printed)
    print(f"\ngraded the hostile class ({len(expected)} submissions) in {time.perf_counter() - start:.0f} s")
    return read_csv(out / "grades.csv"), printed.getvalue(), out, status, expected, before


def test_the_batch_finishes_with_status_0(hostile_run):
    rows, printed, out, status, expected, _ = hostile_run
    assert status == 0, printed
    assert {s for (s, _), r in rows.items() if r["status"] == "graded"} == set(expected), printed


def test_every_student_gets_exactly_the_points_earned(hostile_run):
    rows, printed, _, _, expected, _ = hostile_run
    got = {s: float(rows[s, NB01]["autograded"]) for s in expected}
    assert got == expected, printed


def test_nothing_outside_the_sandboxes_changed(hostile_run):
    _, _, out, _, _, before = hostile_run
    assert repo_state() == before  # checker.py and every other tracked file untouched
    planted = [p for folder in (REPO, REPO / "autograder/checks", out, out / "submitted", Path("/tmp"),
                                Path.home(), out.parent) for p in folder.glob(f"{MARK}*")]
    assert planted == []


def test_no_process_outlives_the_run(hostile_run):
    time.sleep(1)
    assert marked_processes() == []


def test_outputs_of_every_kind_are_cut(hostile_run):
    _, _, out, _, _, _ = hostile_run
    path = out / "autograded" / "hog" / NB01 / f"{NB01}.ipynb"
    assert path.stat().st_size < 3_000_000
    kept = [o.get("data", {}).get("text/plain", "") for c in nbformat.read(path, as_version=4).cells
            if c.cell_type == "code" for o in c.outputs if o.output_type in ("display_data", "execute_result")]
    assert any("display data of 30.0 MB: ... output truncated" in t for t in kept)
    assert any("execute result of 20.0 MB: ... output truncated" in t for t in kept)
    assert (out / "feedback" / "hog" / NB01 / f"{NB01}.html").stat().st_size < 5_000_000


def test_memory_is_bounded_for_the_notebook_as_a_whole(hostile_run):
    _, _, out, _, _, _ = hostile_run
    nb = nbformat.read(out / "autograded" / "hog" / NB01 / f"{NB01}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "children exited with [-9" in text  # 3 x 1.5 GB does not fit in 2 GB: at least one was killed


@pytest.mark.parametrize("line", [
    "sleeper: 01_causal_masks: cell", "the notebook used up its wall-clock budget (the points above stay)",
    "careless: 01_causal_masks: cell 'scores_shape_check' is not a graded cell of this notebook",
    "careless: 01_causal_masks: a second copy of cell qk_pairs_check: ignored",
    "careless: 01_causal_masks: cell causal_mask: its nbgrader flags were changed",
    "careless: 01_causal_masks: cell qk_pairs_check: its nbgrader flags were changed",
    "careless: 01_causal_masks: careless.zip:01_causal_masks/timestamp.txt could not be read as a date (BadZipFile",
    "thief: 01_causal_masks: thief/01_causal_masks/timestamp.txt is not text; graded without a timestamp",
    "crcnotebook: 01_causal_masks: crcnotebook.zip:01_causal_masks/01_causal_masks.ipynb could not be read",
    "caf\\xe9: graded as student 'caf_'",
    "caf\\xe9/01_causal_masks/notes \\xff.ipynb); graded caf\\xe9/01_causal_masks/01_causal_masks.ipynb",
])
def test_careless_and_broken_files_are_report_lines(hostile_run, line):
    _, printed, out, _, _, _ = hostile_run
    assert line in (out / "report.txt").read_text(), printed
    assert line in printed


def test_the_sandbox_shows_only_its_view(tmp_path):
    """What a kernel sees, asked directly (no grading run): the course package without answer keys, read-only;
    a writable home and exchange folder; nothing of the repository, the solutions or the instructor's home."""
    home, runtime, exchange = tmp_path / "home", tmp_path / "run", tmp_path / "exchange"
    for d in (home, runtime, exchange):
        d.mkdir()
    probe = f"""
import os, json
def writable(path):
    try:
        open(os.path.join(path, 'probe'), 'w').close()
        return True
    except OSError:
        return False
print(json.dumps({{'uid': os.getuid(), 'keys': os.listdir('/course/autograder/checks/answer_keys'),
    'repo': os.path.exists({str(REPO)!r} + '/solutions') or os.path.exists({str(REPO)!r} + '/tests'),
    'root_home': sorted(os.listdir('/root')), 'course_rw': writable('/course/autograder/checks'),
    'home_rw': writable(os.getcwd()), 'exchange': os.environ.get('AUTOGRADER_EXCHANGE'),
    'exchange_rw': writable(os.environ['AUTOGRADER_EXCHANGE']), 'ppid': os.getppid()}}))
"""
    proc = subprocess.run([*sandbox.bwrap_args(home, runtime, exchange), sys.executable, "-c", probe],
                          capture_output=True, text=True, timeout=120)
    seen = json.loads(proc.stdout)
    assert seen["uid"] == 65534 and seen["ppid"] == 1
    assert seen["keys"] == [] and not seen["repo"] and not seen["course_rw"]
    assert seen["root_home"] in ([], [".pyenv"])  # only the interpreter, where it lives under /root
    assert seen["home_rw"] and seen["exchange_rw"] and seen["exchange"] == str(exchange)
    assert (exchange / "probe").exists() and (home / "probe").exists()


def test_a_course_that_lives_in_tmp_is_still_seen(tmp_path, monkeypatch):
    """CI grades from a fresh clone in a temporary folder: the sandbox's own /tmp must not hide the venv there."""
    venv = tmp_path / "venv"
    venv.symlink_to(sys.prefix)  # the environment, known by a path under /tmp
    monkeypatch.setattr(sys, "prefix", str(venv))
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    proc = subprocess.run([*sandbox.bwrap_args(home, runtime), str(venv / "bin" / "python"), "-c",
                           "import torch, linattn_ref, autograder.checks; print('imported')"],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "imported", proc.stderr


def test_grade_stops_when_bubblewrap_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(grading.GradingError, match="apt-get install bubblewrap.*--no-sandbox"):
        grading.grade(tmp_path, tmp_path / "out", stream=io.StringIO())


def test_a_kernel_dies_with_the_process_that_started_it(tmp_path):
    """A worker killed outright (SIGKILL, no clean-up) takes its sandboxed kernel and everything in it along."""
    assert marked_processes() == []
    half = len(MARK) // 2  # the mark is put together in the kernel: only its child's command line holds it whole
    cell_source = ("import subprocess, sys, time\n"
                   f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)  # {MARK[:half]}'"
                   f" + '{MARK[half:]}'])\ntime.sleep(120)")
    script = f"""
import nbformat
from autograder.execute import ResilientExecute
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell({cell_source!r})])
nb.metadata["kernelspec"] = {{"name": "python3", "display_name": "Python 3", "language": "python"}}
ResilientExecute(timeout=200).preprocess(nb, {{"metadata": {{"path": {str(tmp_path)!r}}}}})
"""
    starter = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=ops.nbgrader_env())
    deadline = time.monotonic() + 120
    while not marked_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(), "the kernel never started"
    starter.kill()
    starter.wait()
    for _ in range(50):
        if not marked_processes():
            break
        time.sleep(0.1)
    assert marked_processes() == []
