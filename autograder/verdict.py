"""The verdict of every graded cell, reached in the grader's process, not the student's.

A graded cell holds `check(exercise_id, fn[, hidden=True])` and `check_answer(question_id, value)` calls. Its
source is trusted text (nbgrader restores locked cells before anything runs), so the grader reads from it which
calls it expects, with `ast`. Two preprocessors of nbgrader's autograde pipeline around the kernel's run:

    PrepareVerdict (before ResilientExecute)
        draws each checked exercise's cases (visible and held-out) with a fresh secret seed and writes them into
        the exchange folder the kernel sees as AUTOGRADER_EXCHANGE; also writes there a copy of linattn_ref
        whose answer functions refuse to run (stripped_reference), put first on the kernel's path;
    ResilientExecute
        runs the notebook; in it `check` and `check_answer` only record (autograder.checks.grading_mode);
    JudgeVerdict (before SaveAutoGrades)
        judges every expected call from the recorded observations, in this process, with the cases it kept in
        memory; rewrites each graded cell's outputs to one error carrying the tutor's message when it fails and
        none when it passes, so that nbgrader's own rule (an error scores 0, else full points) gives the trusted
        score. A missing observation means the check did not run: 0 points. Static findings (static_check) that
        are certain also score 0 for their exercise; the others are report notes.

So patching `check`, torch, builtins or IPython inside the kernel changes nothing but what the kernel records,
and there is no answer key or reference result in the kernel to search. Notes and the seed go into the
notebook's metadata["autograder"], which the worker reads back for the report (the kernel cannot reach it).
"""
import ast
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool, Integer

from .checks import answers
from .checks.checker import exercise, judge
from .checks.observation import Observation
from .checks.registry import EXERCISES
from .static_check import static_check, stripped_reference

MAX_READ = 64 * 2**20  # bytes of one observation file the grader reads; more is a forged or runaway file
INCIDENTS = ("CellTimeoutError", "DeadKernelError", "NotRun")  # ResilientExecute's own errors: kept
STRIPPED = "is not available while"  # the words of the stripped linattn_ref's refusal (static_check._Strip)

__all__ = ["PrepareVerdict", "JudgeVerdict", "expected_calls", "stripped_reference"]


@dataclass(frozen=True)
class Call:
    kind: str  # "check" or "answer"
    id: str  # exercise id or question id
    hidden: bool = False
    fn: str = ""  # the name of the function a check is given (its defining cell is the exercise's answer)

    def file(self, count):
        """Where the kernel records this call made from the cell run as In [count] (see grading_mode)."""
        if self.kind == "check":
            return Path("observations") / f"{self.id}.{'hidden' if self.hidden else 'visible'}.{count}.pt"
        return Path("answers") / f"{self.id}.{count}.pt"

    def text(self):
        if self.kind == "answer":
            return f"check_answer({self.id!r}, ...)"
        return f"check({self.id!r}, {self.fn or '...'}{', hidden=True' if self.hidden else ''})"


def _literal(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def expected_calls(source):
    """The check calls of a graded cell's source, in order; None when it holds anything else but imports."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    calls = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
            return None
        call, func = stmt.value, stmt.value.func
        kw = {k.arg: k.value for k in call.keywords}
        fn_node = call.args[1] if len(call.args) > 1 else kw.get("fn")
        hidden_node = call.args[2] if len(call.args) > 2 else kw.get("hidden")
        if isinstance(func, ast.Name) and func.id == "check" and call.args and _literal(call.args[0]):
            ex_id = _literal(call.args[0])
        elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "check"
              and call.args):
            ex_id, fn_node = func.attr, call.args[0]
            hidden_node = call.args[1] if len(call.args) > 1 else kw.get("hidden")
        elif isinstance(func, ast.Name) and func.id == "check_answer" and call.args and _literal(call.args[0]):
            calls.append(Call("answer", _literal(call.args[0])))
            continue
        else:
            return None
        if ex_id not in EXERCISES:
            return None
        hidden = bool(hidden_node.value) if isinstance(hidden_node, ast.Constant) else False
        fn = fn_node.id if isinstance(fn_node, ast.Name) else ""
        calls.append(Call("check", ex_id, hidden, fn))
    return calls


def graded_cells(nb):
    """(index, cell, expected calls or None) of the notebook's graded code cells."""
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            yield i, cell, expected_calls(cell.source)


def function_params(nb, before, name):
    """Parameter names of the last `def name` in the code cells above cell `before` (None if there is none);
    with **kwargs, every optional parameter a case may pass."""
    from .checks.exercise import OPTIONAL_PARAMS

    for cell in reversed(nb.cells[:before]):
        try:
            tree = ast.parse(cell.source) if cell.cell_type == "code" and name else None
        except SyntaxError:
            continue
        defs = [n for n in (tree.body if tree else ()) if isinstance(n, ast.FunctionDef) and n.name == name]
        if defs:
            args = defs[-1].args
            if args.kwarg:
                return list(OPTIONAL_PARAMS)
            return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return None


def _configured(pp):
    return bool(pp.config.ResilientExecute.get("exchange_dir", ""))


def _exchange(pp):
    return Path(pp.config.ResilientExecute.get("exchange_dir", "") or ".")


class PrepareVerdict(Preprocessor):
    """Write the cases (and the stripped linattn_ref) into the exchange folder before the kernel starts."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled
    seed = Integer(0, help="Seed of the cases' random values (0: a fresh secret one per notebook; give the"
                           " seed recorded in an autograded notebook to reproduce its run).").tag(config=True)

    def preprocess(self, nb, resources):
        if not _configured(self):
            return nb, resources
        folder = _exchange(self)
        if folder.is_symlink():  # a kernel of an earlier notebook may have put a link here: never follow it
            folder.unlink()
        shutil.rmtree(folder, ignore_errors=True)  # nothing left from the previous notebook
        (folder / "cases").mkdir(parents=True)
        seed = self.seed or secrets.randbelow(2**31 - 1) + 1
        drawn = {}
        for _, _, calls in graded_cells(nb):
            for call in calls or ():
                if call.kind == "check" and call.id not in drawn:
                    ex = exercise(call.id)
                    every, n_visible = ex.cases(hidden=True, seed=seed), len(ex.cases(hidden=False, seed=seed))
                    drawn[call.id] = (every[:n_visible], every[n_visible:])
                    torch.save({"visible": [c.to_payload() for c in every[:n_visible]],
                                "hidden": [c.to_payload() for c in every[n_visible:]]},
                               folder / "cases" / f"{call.id}.pt")
        assignment = resources.get("nbgrader", {}).get("assignment", "")
        stripped_reference(assignment, folder / "lib")
        resources["verdict"] = {"seed": seed, "cases": drawn, "folder": folder, "assignment": assignment}
        return nb, resources


def _load(path):
    """Plain data the kernel wrote, or None. Only torch.load(weights_only=True): never unpickle kernel data."""
    try:
        if path.is_symlink() or path.parent.is_symlink() or not path.is_file() or path.stat().st_size > MAX_READ:
            return None
        return torch.load(path, weights_only=True)
    except Exception:
        return None


def _decode_answer(x):
    if isinstance(x, dict) and "__set__" in x:
        return set(x["__set__"]) if all(isinstance(e, str) for e in x["__set__"]) else x["__set__"]
    if isinstance(x, dict) and "__unreadable__" in x:
        return _Unreadable(x["__unreadable__"])
    if isinstance(x, (list, tuple)):
        return type(x)(_decode_answer(e) for e in x)
    return x


class _Unreadable:
    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return f"<a {self.type_name}>"


def judge_answer(call, data):
    if not isinstance(data, dict) or "value" not in data:
        return f"{call.id}: the check did not run: no answer reached the grader (did a cell above fail?)."
    try:
        answers.check_answer(call.id, _decode_answer(data["value"]))
    except AssertionError as err:
        return str(err)
    except Exception as err:  # a key missing from the course: the grader's fault, said plainly
        return f"{call.id}: could not be compared: {err}"
    return None


def judge_check(call, drawn, data, params=None):
    """The first failure of a check call, judged from the kernel's records; params: the names of the parameters
    the learner's function takes, read from its source (None: unknown, the record says which cases it skipped)."""
    ex = exercise(call.id)
    visible, held_out = drawn
    expected = visible + (held_out if call.hidden else [])
    if not isinstance(data, list) or len(data) != len(expected):
        return (f"{ex.name}: the check did not run: no result of {call.text()} reached the grader (did your"
                " function's cell fail, or the kernel stop?).")
    for n, (case, obs) in enumerate(zip(expected, data)):
        try:
            obs = Observation.from_payload(obs)
            if obs.skipped and not case.optional_params():
                obs = Observation(error="the check did not run this case.")
            message = judge(ex, case, obs, params)
        except Exception as err:  # a malformed record: the kernel's fault, never the grader's crash
            message = f"your function's result could not be read ({type(err).__name__}: {err})."
        if message:
            label = (f"visible case {n + 1} of {len(visible)}" if n < len(visible)
                     else f"held-out case {n - len(visible) + 1} of {len(held_out)}")
            return f"{ex.name}: {label} [{case.describe()}]:\n{message}"
    return None


def _stripped_note(output):
    return NotebookNode(output_type="stream", name="stdout",
                        text=f"(not run while grading: {output.get('evalue')})\n")


def error_output(message):
    return NotebookNode(output_type="error", ename="AssertionError", evalue=message,
                        traceback=[f"AssertionError: {message}"])


class JudgeVerdict(Preprocessor):
    """Judge the recorded observations and answers; make each graded cell's outputs say the trusted verdict."""

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        state = resources.get("verdict")
        if not state:
            if _configured(self):  # the kernel recorded without judging: never let that pass as a success
                for _, cell, _ in graded_cells(nb):
                    cell.outputs = [error_output("the grader could not prepare this notebook's cases")]
            return nb, resources
        folder, notes = state["folder"], []
        refused, flags = static_check(nb, state["assignment"], resources.get("nbgrader", {}).get("notebook"))
        for index, cell, calls in graded_cells(nb):
            label = cell.metadata["nbgrader"].get("grade_id", f"#{index}")
            if calls is None:
                notes.append(f"cell {label}: holds code the grader cannot judge outside the kernel; its own outputs"
                             " decide its score")
                continue
            message, count = None, cell.get("execution_count")
            for call in calls:
                if call.kind == "check" and call.id in refused:
                    message = f"{call.id}: {refused[call.id]}"
                elif call.kind == "check":
                    message = judge_check(call, state["cases"][call.id], _load(folder / call.file(count)),
                                          function_params(nb, index, call.fn))
                else:
                    message = judge_answer(call, _load(folder / call.file(count)))
                if message:
                    break
            errors = [o for o in cell.outputs if o.get("output_type") == "error"]
            if message and "did not run" in message and errors:  # say why, as the kernel saw it (a timeout...)
                message += f"\n(The cell stopped with {errors[0].get('ename')}: {str(errors[0].get('evalue'))[:300]})"
            kept = [o for o in errors if o.get("ename") in INCIDENTS]
            cell.outputs = kept + ([error_output(message)] if message else [])
        for cell in nb.cells:  # a demonstration that calls a stripped function: say so, not a traceback
            if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("grade"):
                cell.outputs = [_stripped_note(o) if STRIPPED in str(o.get("evalue", "")) else o
                                for o in cell.get("outputs", [])]
        notes += [f"{ex_id}: scored 0: {reason}" for ex_id, reason in refused.items()]
        nb.metadata["autograder"] = {"seed": state["seed"], "notes": notes, "flags": flags}
        return nb, resources


def read_notes(folder):
    """(notes, flags, {notebook: seed}) JudgeVerdict left in the autograded notebooks of one submission folder."""
    import nbformat

    notes, flags, seeds = [], [], {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        prefix = "" if path.stem == Path(folder).name else f"{path.stem}: "
        meta = nbformat.read(path, as_version=4).metadata.get("autograder", {})
        notes += [prefix + n for n in meta.get("notes", [])]
        flags += [prefix + f for f in meta.get("flags", [])]
        if "seed" in meta:
            seeds[path.stem] = meta["seed"]
    return notes, flags, seeds
