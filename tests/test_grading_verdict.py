"""A hostile class of notebook 01, graded once: verdicts reached outside the kernel, reference and classmate copies.

Each student is the solution notebook with one attack from issue 12 that gave full marks when the checks judged
inside the kernel. The grader now judges outside it (autograder.verdict), reads answer cells with ast
(autograder.static_check), runs kernels with a linattn_ref whose answers raise, and flags near-identical answers
(autograder.similarity). Each test asserts the exact score and the reason the learner or the instructor reads.
Notebook 09's Triton case is checked without a grading run (static check and stripped copy).
"""
import csv
import io
import json
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest
from mistakes import default_scale
from test_grading import NB01, REPO, answer, autograded_max, cell, check_of, learner, read_csv, source, write

from autograder import grading, static_check, verdict

TIMEOUT = 20
WRONG_MASK = "return torch.ones(T, T, dtype=torch.bool, device=device).triu()\n"
POINTS = {sid: check_of(source(NB01), sid).metadata.nbgrader["points"] for sid in
          ("causal_mask", "qk_pairs", "visible_keys", "num_visible_keys", "masked_scores")}
CODE = sum(POINTS.values())  # the points of the five code exercises

# A correct masked_scores written differently from the solution, and a classmate's copy of it with names changed.
OWN = """if scale is None:
        scale = q.shape[-1] ** -0.5
    raw = torch.matmul(q, k.transpose(-2, -1)) * scale
    n = raw.shape[-1]
    visible = torch.tril(torch.ones(n, n, dtype=torch.bool, device=raw.device))
    blocked = torch.full_like(raw, float("-inf"))
    return torch.where(visible, raw, blocked)
"""
COPIED = re.sub(r"\bn\b", "size", OWN.replace("raw", "s").replace("visible", "keep").replace("blocked", "minus_inf"))

PATCH_MODULES = "import sys\nsys.modules['autograder.checks'].check = lambda *a, **k: None\n"
IMPORT_HOOK = """import builtins, types
_real_import = builtins.__import__
_fake = types.SimpleNamespace(check=lambda *a, **k: None, check_answer=lambda *a, **k: None)
def _hooked(name, *args, **kwargs):
    return _fake if name == "autograder.checks" else _real_import(name, *args, **kwargs)
builtins.__import__ = _hooked
"""
TRANSFORMER = """def _swallow(lines):
    return ["try:\\n"] + ["    " + line for line in lines] + ["\\nexcept BaseException:\\n    pass\\n"]
get_ipython().input_transformers_post.append(_swallow)
"""
EXEC_DISK = f"""import json
_nb = json.load(open({str(REPO / 'solutions' / NB01 / (NB01 + '.ipynb'))!r}))
exec("".join(next(c["source"] for c in _nb["cells"] if c.get("id") == "causal_mask")))
"""
BRUTE = """for _guess in range(20):
    try:
        check_answer("01.keys_met_by_query_5", _guess)
        keys_met_by_query_5 = _guess
        break
    except AssertionError:
        pass
"""
# The reference reached by five other routes, one per code exercise: (exercise, body, words of the reason).
ROUTES = [
    ("causal_mask", "import sys\n    sys.setprofile(None)\n    return ref.causal_mask(T, device)\n",
     "changes the profiler (sys.setprofile); uses linattn_ref's `causal_mask`"),
    ("qk_pairs", "import importlib\n    return importlib.reload(ref.masks).qk_pairs(T)\n", "reloads modules (reload)"),
    ("visible_keys", "import inspect\n    namespace = {}\n    exec(inspect.getsource(ref.masks), namespace)\n"
                     "    return namespace['visible_keys'](k, i)\n", "reads source code (inspect.getsource)"),
    ("num_visible_keys", "raise NotImplementedError()\n\nnum_visible_keys.__code__ = ref.num_visible_keys.__code__"
                         ".replace()\n", "swaps code objects (__code__)"),
    ("masked_scores", f"""import importlib.util
    spec = importlib.util.spec_from_file_location("m", {str(REPO / 'linattn_ref' / 'masks.py')!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.masked_scores(q, k, scale)
""", "loads a module from a file (spec_from_file_location)"),
]
THREAD_SERVER = """import queue, threading
_calls, _answers = queue.Queue(), queue.Queue()
def _serve():
    while True:
        args = _calls.get()
        try:
            _answers.put((True, ref.masked_scores(*args)))
        except BaseException as err:
            _answers.put((False, err))
threading.Thread(target=_serve, daemon=True).start()
"""
THREAD_CLIENT = """_calls.put((q, k, scale))
    ok, value = _answers.get()
    if not ok:
        raise value
    return value
"""


def add_cell(nb, after_id, code):
    """A new code cell (the learner's own) after cell `after_id`."""
    index = next(i for i, c in enumerate(nb.cells) if c.get("id") == after_id)
    new = nbformat.v4.new_code_cell(code)
    new.id = f"mine-{index}"
    nb.cells.insert(index + 1, new)
    return nb


def hostile_class(folder):
    """Write the class; return {student: (expected autograded score, text the feedback must show or None)}."""
    full = autograded_max(source(NB01))
    expected = {}

    def student(name, nb, score, shows=None):
        write(nb, folder / name / NB01 / f"{NB01}.ipynb")
        expected[name] = (score, shows)

    def sol(*edits):
        nb = source(NB01)
        for solution_id, body in edits:
            answer(nb, solution_id, body)
        return nb

    student("solution", source(NB01), full)
    student("untouched", learner(NB01), 0, "not attempted yet")
    # checks patched in the kernel: the graded cells record nothing, so every code exercise "did not run"
    student("patch_modules", add_cell(sol(("causal_mask", WRONG_MASK)), "setup", PATCH_MODULES), full - CODE,
            "the check did not run")
    code_swap = sol(("causal_mask", WRONG_MASK))
    cell(code_swap, "causal_mask").source += ("\nimport autograder.checks.checker as _c\n_c.check.__code__ ="
                                              " (lambda exercise_id, fn, hidden=False: None).__code__\n")
    student("code_swap", code_swap, full - CODE, "swaps code objects (__code__)")
    # check_answer is faked too: nothing at all reaches the grader
    student("import_hook", add_cell(sol(("causal_mask", WRONG_MASK)), "setup", IMPORT_HOOK), 0,
            "the check did not run")
    # every later cell wrapped in try/except: the wrong answer still fails, judged outside
    student("transformer", add_cell(sol(("causal_mask", WRONG_MASK)), "setup", TRANSFORMER),
            full - POINTS["causal_mask"], "upper triangle")
    exec_disk = learner(NB01)  # the stub, then the solution cell executed from the instructor's files
    for sid in ("qk_pairs", "visible_keys", "num_visible_keys", "masked_scores", "pairs_for_100_tokens",
                "keys_for_query_2", "keys_met_by_query_5", "claim_a_same_keys_for_3_and_7", "claim_b_full_sequence_kv",
                "kv_rows_for_query_4", "violating_score_matrix"):
        cell(exec_disk, sid).source = cell(source(NB01), sid).source
    cell(exec_disk, "causal_mask").source += "\n" + EXEC_DISK
    student("exec_disk", exec_disk, full - POINTS["causal_mask"], "runs code from a string (exec)")
    brute = source(NB01)
    cell(brute, "keys_met_by_query_5").source = "keys_met_by_query_5 = None\n" + BRUTE
    student("brute", brute, full - 1, "01.keys_met_by_query_5: not the expected answer")
    # the reference copied by other routes: refused by the static check of each answer's own cell
    student("ref_routes", sol(*[(sid, body) for sid, body, _ in ROUTES]), full - CODE)
    # the reference reached from a thread started in another cell: the kernel's linattn_ref refuses to compute it
    thread = add_cell(sol(("masked_scores", THREAD_CLIENT)), "setup", THREAD_SERVER)
    student("thread", thread, full - POINTS["masked_scores"], "is not available while 01_causal_masks is graded")
    # a classmate's answer copied with the names changed: both keep their points, both are flagged
    student("author", sol(("masked_scores", OWN)), full)
    student("copier", sol(("masked_scores", COPIED)), full)
    return expected


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    subs, out = tmp_path_factory.mktemp("hostile"), tmp_path_factory.mktemp("hostile_grading")
    expected = hostile_class(subs)
    printed, start = io.StringIO(), time.perf_counter()
    status = grading.grade(subs, out, jobs=2, timeout=TIMEOUT, stream=printed)
    print(f"\ngraded {len(expected)} hostile submissions of {NB01} in {time.perf_counter() - start:.0f} s")
    return read_csv(out / "grades.csv"), (out / "report.txt").read_text(), out, status, expected


def feedback_text(out, student):
    return (out / "feedback" / student / NB01 / f"{NB01}.html").read_text()


def test_the_run_completes(hostile_run):
    rows, _, _, status, expected = hostile_run
    assert status == 0
    assert {s for s, _ in rows} == set(expected)


@pytest.mark.parametrize("student", ["solution", "untouched", "patch_modules", "code_swap", "import_hook",
                                     "transformer", "exec_disk", "brute", "ref_routes", "thread", "author",
                                     "copier"])
def test_exact_score_and_reason(hostile_run, student):
    rows, report, out, _, expected = hostile_run
    score, shows = expected[student]
    assert float(rows[student, NB01]["autograded"]) == score, rows[student, NB01]
    if shows:
        html = feedback_text(out, student)
        assert shows.replace("'", "&#39;") in html or shows in html, student


@pytest.mark.parametrize("exercise, why", [(sid, why) for sid, _, why in ROUTES])
def test_each_route_to_the_reference_is_refused_with_its_reason(hostile_run, exercise, why):
    _, report, out, _, _ = hostile_run
    nb = nbformat.read(out / "autograded" / "ref_routes" / NB01 / f"{NB01}.ipynb", as_version=4)
    shown = [o.evalue for o in cell(nb, f"{exercise}_check").outputs if o.output_type == "error"]
    assert len(shown) == 1 and shown[0].startswith(f"{exercise}: its code ") and why in shown[0], shown
    line = next(line for line in report.splitlines() if line.startswith(f"ref_routes: {NB01}: {exercise}: scored 0"))
    assert why in line and line.endswith("(found in its answer cell).")


def test_exec_of_the_instructors_files_is_refused(hostile_run):
    _, report, _, _, _ = hostile_run
    assert f"exec_disk: {NB01}: causal_mask: scored 0: its code runs code from a string (exec)" in report


def test_tools_in_other_cells_are_flagged(hostile_run):
    rows, report, _, _, _ = hostile_run
    assert f"thread: {NB01}: flagged: cell mine-" in report
    assert "starts threads (threading)" in rows["thread", NB01]["flags"]
    assert "imports modules by hand (__import__)" in rows["import_hook", NB01]["flags"]


def test_classmate_copy_is_flagged_with_evidence(hostile_run):
    rows, report, _, _, _ = hostile_run
    copier, author = rows["copier", NB01]["flags"], rows["author", NB01]["flags"]
    assert "masked_scores: 100% similar to author's answer; in common:" in copier, copier
    assert "masked_scores: 100% similar to copier's answer" in author, author
    assert "in common: if scale is None: | scale = q.shape[-1] ** -0.5 | s = torch.matmul" in copier  # evidence
    assert f"copier: {NB01}: flagged: masked_scores: 100% similar to author's answer" in report
    assert "author" not in rows["solution", NB01]["flags"] and "copier" not in rows["solution", NB01]["flags"]


def test_seed_is_recorded_outside_the_kernel(hostile_run):
    _, _, out, _, _ = hostile_run
    state = json.loads((out / grading.STATE_FILE).read_text())
    seeds = {e["seeds"][NB01] for e in state["submissions"].values()}
    assert len(seeds) > 1 and all(isinstance(s, int) and s > 0 for s in seeds)
    nb = nbformat.read(out / "autograded" / "solution" / NB01 / f"{NB01}.ipynb", as_version=4)
    assert nb.metadata["autograder"]["seed"] == state["submissions"][f"solution/{NB01}"]["seeds"][NB01]


def test_grades_csv_has_a_flags_column(hostile_run):
    _, _, out, _, _ = hostile_run
    with open(out / "grades.csv", newline="") as f:
        assert "flags" in next(csv.reader(f))


# ---------------------------------------------------------------------------------------------------------------
# without a grading run


def test_expected_calls_read_from_graded_cells():
    calls = verdict.expected_calls('from autograder.checks import check\ncheck("causal_mask", causal_mask)\n'
                                   'check("causal_mask", causal_mask, hidden=True)\ncheck_answer("01.x", x)')
    assert [(c.kind, c.id, c.hidden, c.fn) for c in calls] == [
        ("check", "causal_mask", False, "causal_mask"), ("check", "causal_mask", True, "causal_mask"),
        ("answer", "01.x", False, "")]
    assert verdict.expected_calls("assert causal_mask(2).all()") is None  # judged in the kernel: reported


def test_triton_copies_are_refused_in_notebook_09():
    nb = nbformat.read(REPO / "solutions" / "09_triton" / "09_triton.ipynb", as_version=4)
    kernel = cell(nb, "28ebd28b")  # the learner's GLA kernel, above the notebook's launcher gla_triton
    kernel.source = ("class _Launch:  # gla_kernel[grid](...) fills o from the course's kernel\n"
                     "    def __getitem__(self, grid):\n"
                     "        return lambda q, k, v, g, o, *rest, **kw: o.copy_(course_kernels.gla_chunk(q, k, v, g))\n"
                     "gla_kernel = _Launch()\n")
    refused, _ = static_check.static_check(nb, "09_triton")
    assert list(refused) == ["gla_triton"]
    assert "uses the course's own Triton kernels (linattn_ref.triton)" in refused["gla_triton"]


def test_stripped_reference_refuses_the_answers_and_keeps_what_later_exercises_build_on(tmp_path):
    lib = static_check.stripped_reference("09_triton", tmp_path).parent
    probe = ("import torch, linattn_ref as ref\nfrom linattn_ref import triton as t\n"
             "for f in (t.gla_chunk, ref.gla_chunk):\n"
             "    try:\n        f(*[torch.zeros(1, 2, 16, 16)] * 4)\n        print('ran')\n"
             "    except RuntimeError as err:\n        print('refused' if 'is not available' in str(err) else err)\n"
             "print(ref.causal_mask(2).tolist())\n")
    env = {**os.environ, "PYTHONPATH": f"{lib}:{REPO}", "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)  # not the repository, whose linattn_ref would come first
    assert run.stdout.split("\n")[:3] == ["refused", "refused", "[[True, False], [True, True]]"], run.stderr
    stripped = static_check.stripped_functions("01_causal_masks")
    assert "causal_mask" not in stripped["linattn_ref.masks"]  # the reference of masked_scores builds on it
    assert "masked_scores" in stripped["linattn_ref.masks"]


def observations(ex_id, fn, cases):
    from autograder.checks.checker import exercise, observe
    return [observe(exercise(ex_id), fn, c, eager=True).to_payload() for c in cases]


def right_masked_scores(q, k, scale=None):
    import torch

    scale = default_scale(q, scale)
    T = q.shape[-2]
    return (q @ k.mT * scale).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))


def test_judge_passes_a_right_answer_and_refuses_forged_records():
    from autograder.checks.checker import exercise

    ex = exercise("masked_scores")
    every, n = ex.cases(hidden=True, seed=7), len(ex.cases(seed=7))
    drawn, call = (every[:n], every[n:]), verdict.Call("check", "masked_scores", True, "masked_scores")
    assert verdict.judge_check(call, drawn, observations("masked_scores", right_masked_scores, every)) is None
    assert "did not run" in verdict.judge_check(call, drawn, None)
    assert "did not run" in verdict.judge_check(call, drawn, observations("masked_scores", right_masked_scores,
                                                                            every[:n]))  # the held-out ones missing
    forged = [{"skipped": True}] * len(every)  # "my function takes none of these arguments": no case has any
    assert verdict.judge_check(call, drawn, forged).endswith("the check did not run this case.")
    wrong = observations("masked_scores", lambda q, k, scale=None: right_masked_scores(q, k, scale).mT, every)
    message = verdict.judge_check(call, drawn, wrong)  # the upper triangle: explained from the kernel's probe runs
    assert message.startswith(f"masked_scores: visible case 1 of {n}") and "future tokens leak" in message, message


def test_records_are_read_only_as_plain_data(tmp_path):
    import torch

    (tmp_path / "answers").mkdir()
    torch.save({"value": 6}, tmp_path / "answers" / "ok.pt")
    assert verdict._load(tmp_path / "answers" / "ok.pt") == {"value": 6}
    (tmp_path / "answers" / "link.pt").symlink_to(tmp_path / "answers" / "ok.pt")
    assert verdict._load(tmp_path / "answers" / "link.pt") is None  # a link could point anywhere
    torch.save({"value": verdict.Call("answer", "x")}, tmp_path / "answers" / "object.pt")  # needs unpickling
    assert verdict._load(tmp_path / "answers" / "object.pt") is None
    assert verdict.judge_answer(verdict.Call("answer", "01.keys_met_by_query_5"), {"value": 6}) is None
    assert "not the expected answer" in verdict.judge_answer(verdict.Call("answer", "01.keys_met_by_query_5"),
                                                             {"value": 5})
