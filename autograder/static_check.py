"""What a submission's code reaches for, read with `ast` (never run), and the copy of linattn_ref it runs with.

static_check(nb, assignment) -> ({exercise_id: reason}, [flag, ...])
    The cell that defines the function given to `check(exercise_id, fn)` is that exercise's answer (in notebook 09,
    where the notebook gives that function, the kernel cell the learner writes above it). Found in it,
    each of these scores 0 for the exercise, with the reason (none is needed to write an answer; each is a way
    to run the reference instead): a linattn_ref function that computes the answer (an attribute, an import, a
    getattr with its name), linattn_ref.triton in the Triton exercises, importlib / __import__ /
    spec_from_file_location, inspect.getsource, exec / eval / compile, __code__, reload, sys.setprofile /
    settrace, threads and processes. Found in any other cell the learner wrote or changed, they are flags: the
    grader cannot tell which answer they serve.

stripped_reference(assignment, dest) -> dest/linattn_ref
    linattn_ref with the functions that compute the assignment's answers made to raise instead. Kept: what a
    later exercise of the same notebook may build on (the reference of an earlier exercise that the later one
    does not forbid; the checks allow it in self-study, so grading must too). In notebook 09 the course's own
    Triton kernels (linattn_ref.triton) are stripped too.
"""
import ast
import functools
import shutil
from pathlib import Path

import nbformat

from .checks.registry import EXERCISES

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "linattn_ref"
SOURCE = REPO / "solutions"

TOOLS = {  # name (called, imported or used as an attribute) -> why it scores 0
    "importlib": "imports modules by hand (importlib)", "__import__": "imports modules by hand (__import__)",
    "spec_from_file_location": "loads a module from a file (spec_from_file_location)",
    "module_from_spec": "loads a module from a file (module_from_spec)",
    "getsource": "reads source code (inspect.getsource)", "getsourcelines": "reads source code (inspect)",
    "exec": "runs code from a string (exec)", "eval": "runs code from a string (eval)",
    "compile": "compiles code from a string (compile)", "__code__": "swaps code objects (__code__)",
    "reload": "reloads modules (reload)", "setprofile": "changes the profiler (sys.setprofile)",
    "settrace": "changes the tracer (sys.settrace)", "threading": "starts threads (threading)",
    "_thread": "starts threads (_thread)", "Thread": "starts threads", "ThreadPoolExecutor": "starts threads",
    "multiprocessing": "starts processes (multiprocessing)", "ProcessPoolExecutor": "starts processes",
}
TRITON_EXERCISES_MODULE = "autograder.checks.notebooks.nb09_triton"
TRITON_WRAPPERS = {"linear_attention_chunk", "retention_chunk", "gla_chunk"}  # linattn_ref.triton.families
TRITON_KERNELS = {"chunk_gated_forward", "_launch", "chunk_gated_fwd_kernel", "gla_prepare_kernel"}  # .kernel


@functools.cache
def _notebook_exercises(assignment):
    """Exercise ids checked in the assignment's source notebooks, in notebook order."""
    from .verdict import expected_calls

    ids = []
    for path in sorted((SOURCE / assignment).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
                ids += [c.id for c in expected_calls(cell.source) or () if c.kind == "check"]
    return list(dict.fromkeys(ids))


def _uses_triton(ex_id):
    return EXERCISES[ex_id].reference.__module__ == TRITON_EXERCISES_MODULE and ex_id not in (
        "row_sum_triton", "matmul_triton")


def forbidden_names(ex_id):
    """Short names of the linattn_ref functions that compute this exercise's answer (a method: its class)."""
    names = set()
    for fn in EXERCISES[ex_id].answers:
        fn = getattr(fn, "__func__", fn)
        if fn.__module__.startswith("linattn_ref"):
            names.add(fn.__qualname__.split(".")[0])
    return names


# ---------------------------------------------------------------------------------------------------------------
# reading the learner's code


def _names_used(tree):
    """(plain names, names reached from elsewhere: attributes, imported modules and names, getattr literals)."""
    plain, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            plain.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                used.update(alias.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            used.update((node.module or "").split("."))
            used.update(alias.name for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
            used.add(str(node.args[1].value))
    return plain, used


def _defined(tree):
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


def _parse(source):
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # IPython magics
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _reasons(names, ex_id=None):
    """Why code mentioning these (plain names, reached names) copies the reference of ex_id (or of any)."""
    plain, used = names
    reasons = [why for name, why in TOOLS.items() if name in plain | used]
    if ex_id is not None:
        reasons += [f"uses linattn_ref's `{name}`, which computes this answer" for name in
                    sorted(forbidden_names(ex_id) & used)]
        if _uses_triton(ex_id) and ("triton" in used and "linattn_ref" in used or (TRITON_WRAPPERS | TRITON_KERNELS)
                                                                                   & used):
            reasons.append("uses the course's own Triton kernels (linattn_ref.triton)")
    return reasons


def _source_cells(assignment, name):
    path = SOURCE / assignment / f"{name}.ipynb"
    if not path.is_file():
        return {}
    return {c.get("id"): c.source for c in nbformat.read(path, as_version=4).cells}


def answer_cells(nb):
    """{exercise id: indices of the cells holding the learner's answer}: the cell that defines the function its
    graded cell checks, or, where that cell is the notebook's own (a locked launcher, notebook 09), the solution
    cells between the previous graded cell and it (the kernel the learner writes)."""
    from .verdict import graded_cells

    found, previous = {}, -1
    for index, _, calls in graded_cells(nb):
        for call in calls or ():
            if call.kind != "check" or not call.fn or call.id in found:
                continue
            for i in range(index - 1, previous, -1):  # the last cell above that defines the function
                cell = nb.cells[i]
                tree = _parse(cell.source) if cell.cell_type == "code" else None
                if tree is not None and call.fn in _defined(tree):
                    if not cell.metadata.get("nbgrader", {}).get("locked"):
                        found[call.id] = [i]
                    else:
                        found[call.id] = [j for j in range(previous + 1, i) if nb.cells[j].cell_type == "code"
                                          and nb.cells[j].metadata.get("nbgrader", {}).get("solution")]
                    break
        previous = index
    return found


def static_check(nb, assignment, name=None):
    """({exercise id: reason to score it 0}, [flags]) for one submitted notebook (see the module's doc)."""
    source = _source_cells(assignment, name or assignment)
    refused, flags, checked = {}, [], {}  # checked: index of a defining cell -> the exercise ids it answers
    for ex_id, cells in answer_cells(nb).items():
        for i in cells:
            checked.setdefault(i, set()).add(ex_id)
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("locked"):
            continue
        if i not in checked and source.get(cell.get("id")) == cell.source:
            continue  # the course's own demo cell, untouched
        tree = _parse(cell.source)
        label = meta.get("grade_id") or cell.get("id") or f"#{i}"
        if tree is None:
            continue
        used = _names_used(tree)
        for ex_id in sorted(checked.get(i, ())):
            reasons = _reasons(used, ex_id)
            if reasons:
                refused[ex_id] = "its code " + "; ".join(reasons) + " (found in its answer cell)."
        if i not in checked:
            others = sorted({r for ex_id in _notebook_exercises(assignment) for r in _reasons(used, ex_id)})
            if others:
                flags.append(f"cell {label}: " + "; ".join(others))
    return refused, flags


# ---------------------------------------------------------------------------------------------------------------
# the stripped copy of linattn_ref


def stripped_functions(assignment):
    """{module: {qualified names to strip}} for one assignment (see the module's doc)."""
    ids = _notebook_exercises(assignment)
    answers = {e: {_unwrap(fn) for fn in EXERCISES[e].answers} for e in ids}
    strip = set().union(*answers.values())
    for n, ex_id in enumerate(ids):  # kept: an earlier exercise's reference that a later one builds on
        fn = EXERCISES[ex_id].reference
        if any(fn not in answers[later] and fn.__name__ in _names_in(EXERCISES[later].reference.__code__)
               for later in ids[n + 1:]):
            strip.discard(fn)
    strip -= {x for e in ids for x in _callables(EXERCISES[e].cases(hidden=True))}  # a feature map a case passes
    modules = {}
    for fn in strip:
        if fn.__module__.startswith("linattn_ref"):
            modules.setdefault(fn.__module__, set()).add(fn.__qualname__)
    if any(_uses_triton(e) for e in ids):
        modules.setdefault("linattn_ref.triton.families", set()).update(TRITON_WRAPPERS)
        modules.setdefault("linattn_ref.triton.kernel", set()).update(TRITON_KERNELS)
    return modules


def _callables(x):
    """The functions found in cases (their inputs and options, nested)."""
    if isinstance(x, (list, tuple)):
        return set().union(*map(_callables, x))
    if isinstance(x, dict):
        return set().union(*map(_callables, x.values()))
    if hasattr(x, "inputs"):
        return _callables([x.inputs, x.options])
    return {_unwrap(x)} if callable(x) and hasattr(x, "__code__") or hasattr(x, "__func__") else set()


def _names_in(code):
    """The global and attribute names a function's code (and the code nested in it) mentions."""
    return set(code.co_names).union(*(_names_in(c) for c in code.co_consts if hasattr(c, "co_names")))


def _unwrap(fn):
    return getattr(fn, "__func__", fn)


class _Strip(ast.NodeTransformer):
    def __init__(self, names, assignment):
        self.names, self.assignment, self.scope = names, assignment, []

    def visit_ClassDef(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()
        return node

    def visit_FunctionDef(self, node):
        qualname = ".".join([*self.scope, node.name])
        if qualname not in self.names:
            return node
        message = (f"linattn_ref's {qualname} is not available while {self.assignment} is graded: it computes the"
                   " answer of an exercise of this notebook. Write the computation yourself.")
        doc = ast.get_docstring(node)
        node.body = ([ast.Expr(ast.Constant(doc))] if doc else []) + [
            ast.Raise(ast.Call(ast.Name("RuntimeError", ast.Load()), [ast.Constant(message)], []))]
        node.decorator_list = []  # a Triton kernel becomes a plain function that raises
        return node


def stripped_reference(assignment, dest):
    """Write linattn_ref with the assignment's answers stripped (see the module's doc) to dest/linattn_ref."""
    target = Path(dest) / "linattn_ref"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(REFERENCE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module, names in stripped_functions(assignment).items():
        path = target.joinpath(*module.split(".")[1:]).with_suffix(".py")
        if not path.is_file():
            path = path.with_suffix("") / "__init__.py"
        tree = _Strip(names, assignment).visit(ast.parse(path.read_text()))
        path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n")
    return target
