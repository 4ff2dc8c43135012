"""`progress` with kernels forked from a warm process (autograder.forkserver): each starts as a new kernel would,
gives the verdicts a kernel started the usual way gives, keeps nothing of the notebook before it, and a notebook
that crashes or hangs costs only its own cells."""
import io
import json

import nbformat
import psutil
import pytest
from test_grading import NB01, TIMEOUT, answer, source

from autograder import forkserver, progress, scaffold
from autograder import nbgrader_ops as ops


@pytest.fixture(autouse=True)
def kernel_env(monkeypatch):
    """The environment progress gives its kernels; this process's fork server (run_copy here) stopped after."""
    for key, value in ops.nbgrader_env().items():
        if key in ("PATH", "PYTHONPATH", "LINATTN_FAST"):
            monkeypatch.setenv(key, value)
    yield
    if forkserver._server is not None:
        forkserver._server.close()
        forkserver._server = None


def notebook(folder, name, *cells):
    path = folder / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    scaffold.write_notebook(list(cells), path)
    return path


# What a kernel knows about the process it runs in, printed as JSON. Left out: the kernel's own threads (numpy's
# and torch's pools start when first used in a forked kernel, at import in a new one).
FINGERPRINT = r'''
import ctypes, json, os, random, resource, signal, sys, warnings
import matplotlib, numpy, torch
import linattn_ref
pdeathsig = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(pdeathsig))  # PR_GET_PDEATHSIG
print(json.dumps({
    "path": [p.replace(os.getcwd(), "CWD") for p in sys.path],
    "argv": [os.path.basename(sys.argv[0])] + ["CONNECTION" if a.endswith(".json") else a for a in sys.argv[1:]],
    "main": (__name__, type(sys.modules["__main__"]).__name__),
    "signals": {s: str(signal.getsignal(getattr(signal, s))) for s in
                ("SIGINT", "SIGTERM", "SIGCHLD", "SIGPIPE", "SIGXFSZ", "SIGHUP", "SIGUSR1", "SIGQUIT")},
    "env": dict(os.environ),
    "parent_poller": type(__import__("ipykernel.kernelapp").kernelapp.IPKernelApp.instance().poller).__name__,
    "matplotlib": [matplotlib.rcParams._get_backend_or_none(), "matplotlib_inline.backend_inline" in sys.modules],
    "torch": [torch.get_num_threads(), str(torch.get_default_dtype()), "triton" in sys.modules],
    "stdin_at_end": os.read(0, 1) == b"",
    "fd_1_2": [os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) for fd in (1, 2)],
    "group_leader": os.getsid(0) == os.getpid() == os.getpgid(0),
    "limits": [resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_FSIZE, resource.RLIMIT_CORE)],
    "pdeathsig": pdeathsig.value,
    "warnings": sorted(map(str, warnings.filters)),
    "flags": str(sys.flags),
    "umask": os.umask(0o022),
    "random": [torch.initial_seed(), torch.rand(1).item(), numpy.random.rand(), random.random()],
}))
'''


def fingerprint(path, fork):
    nb = progress.run_copy(path, TIMEOUT, fork=fork)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["stream"], outputs
    return json.loads(outputs[0].text)


def test_the_server_warms_every_module_the_notebooks_import_first():
    import importlib.util

    assert all(importlib.util.find_spec(name) for name in forkserver.WARM), forkserver.WARM
    assert "linattn_ref.viz.nb01_causal_masks" in forkserver.WARM
    assert not any("triton" in name for name in forkserver.WARM)  # notebook 09 sets TRITON_INTERPRET first


def test_a_forked_kernel_starts_as_a_new_kernel_would(tmp_path):
    path = notebook(tmp_path, "fingerprint", scaffold.code(FINGERPRINT))
    plain, forked, again = fingerprint(path, False), fingerprint(path, True), fingerprint(path, True)
    assert forkserver._failed is None and forkserver._server is not None  # forked, not launched the usual way
    assert forked["env"]["LINATTN_FAST"] == "1" and forked["fd_1_2"] == ["kernel.log"] * 2
    assert forked["parent_poller"] == "ParentPollerUnix"  # it ends if its worker does, as a plain kernel
    draws = [fp.pop("random") for fp in (plain, forked, again)]
    assert forked == plain
    assert all(a != b for a, b in zip(draws[1], draws[2]))  # seeded from the OS, not the same for every kernel


def test_forked_and_plain_kernels_give_the_same_verdicts(tmp_path):
    nb = answer(source(NB01), "causal_mask", "return torch.ones(T, T, dtype=torch.bool, device=device).triu()\n")
    answer(nb, "num_visible_keys", "return T\n")
    nbformat.write(nb, tmp_path / f"{NB01}.ipynb")
    forked = progress.graded_cells(progress.run_copy(tmp_path / f"{NB01}.ipynb", TIMEOUT, fork=True))
    plain = progress.graded_cells(progress.run_copy(tmp_path / f"{NB01}.ipynb", TIMEOUT, fork=False))
    assert forked == plain
    scores = {grade_id: score == points for grade_id, score, points, _ in plain if score is not None}
    assert not scores["causal_mask_check"] and not scores["num_visible_keys_check"] and scores["qk_pairs_check"]


CLEAN = """
import builtins, os, sys
import torch
import autograder.checks
import linattn_ref
assert torch.get_default_dtype() == torch.float32, torch.get_default_dtype()
assert torch.initial_seed() != 1234
assert not hasattr(builtins, "SPOILED") and "SPOILED" not in os.environ and "spoiled" not in sys.modules
assert linattn_ref.causal_mask.__module__ == "linattn_ref.masks" and not hasattr(linattn_ref, "SPOILED")
assert autograder.checks.check.__module__ == "autograder.checks.checker"
assert not os.path.exists("spoiled.txt") and "SPOILED" not in globals()
"""
SPOIL = """
torch.set_default_dtype(torch.float64)
torch.manual_seed(1234)
builtins.SPOILED = linattn_ref.SPOILED = SPOILED = True
os.environ["SPOILED"] = "1"
sys.modules["spoiled"] = sys
linattn_ref.causal_mask = lambda *args, **kwargs: None
autograder.checks.check = lambda *args, **kwargs: None
open("spoiled.txt", "w").write("x")
"""


def test_nothing_one_notebook_does_reaches_the_next(tmp_path):
    for name in ("first", "second"):  # each checks the state it starts in, then spoils it: in whatever order
        notebook(tmp_path, name, scaffold.tests(CLEAN, f"{name}_clean", 1), scaffold.code(SPOIL),
                 scaffold.tests("assert builtins.SPOILED", f"{name}_spoiled", 1))
    printed = io.StringIO()
    assert progress.progress(tmp_path, timeout=TIMEOUT, stream=printed, jobs=1) == 0  # one worker: one server
    assert printed.getvalue().splitlines()[-1] == "total: 4 / 4 autograded points", printed.getvalue()


def test_a_notebook_that_crashes_or_hangs_costs_only_its_own_cells(tmp_path):
    after = scaffold.tests("import torch\nassert torch.ones(2).sum() == 2", "after", 1)
    notebook(tmp_path, "crash", scaffold.tests("import os\nos._exit(1)", "exits", 1), after)
    notebook(tmp_path, "loop", scaffold.tests("while True:\n    pass", "loops", 1), after)
    notebook(tmp_path, "stubborn", scaffold.tests(
        "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except BaseException:\n        pass",
        "ignores_interrupt", 1), after)
    notebook(tmp_path, "fine", scaffold.tests("assert 1 + 1 == 2", "fine", 1))
    printed = io.StringIO()
    assert progress.progress(tmp_path, timeout=5, stream=printed) == 0
    lines = printed.getvalue().splitlines()
    for name, failed in (("crash", "exits"), ("loop", "loops"), ("stubborn", "ignores_interrupt")):
        block = lines[lines.index(f"{name:<40} 1 / 2 points"):]
        assert block[1].startswith(f"  FAIL  {failed} ") and any(line.startswith("  pass  after ") for line in block)
    assert f"{'fine':<40} 1 / 1 points" in lines and lines[-1] == "total: 4 / 7 autograded points"
    assert not [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


def test_without_a_fork_server_kernels_start_the_usual_way(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the fork server did not start: ImportError: no torch")

    monkeypatch.setattr(forkserver.ForkServer, "spawn", broken)
    monkeypatch.setattr(forkserver, "_failed", None)
    path = notebook(tmp_path, "fine", scaffold.tests("import torch\nassert torch.ones(2).sum() == 2", "fine", 1))
    assert progress.graded_cells(progress.run_copy(path, TIMEOUT, fork=True)) == [("fine", 1.0, 1.0, "")]
    assert "no torch" in forkserver._failed and forkserver._server is None
