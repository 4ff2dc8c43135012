"""Scaffolding for authors: a new notebook, or a new exercise in one, with every file it needs.

    python -m autograder new-notebook NN_topic            a notebook with one EXAMPLE exercise, ready to edit
    python -m autograder new-exercise NN_topic NAME       one more exercise in that notebook

Both write working stubs that pass the whole test suite as they are, then regenerate the notebook's release in
course/; the author rewrites the stubs (docs/authoring.md, step by step). A notebook's files are named after its
assignment folder NN_topic (`nb` + folder for Python modules, whose names cannot start with a digit):

    solutions/NN_topic/NN_topic.ipynb                  the source notebook (nbgrader), prose and exercise cells
    linattn_ref/<topic>.py                             the reference of each exercise (an existing module may be
                                                       named with --module), exported from linattn_ref
    autograder/checks/notebooks/nbNN_topic.py          the exercises' cases and the mistakes they name
    tests/mistakes/nbNN_topic.py                       wrong answers the checks must name, right ones written
                                                       differently that they must pass
    linattn_ref/viz/nbNN_topic.py, tests/test_viz_nbNN_topic.py      the notebook's pictures and their test
    autograder/checks/answer_keys/NN_topic.json        numeric and choice answers (python -m autograder.answer_key)

The cell builders below (md, code, setup, solution, tests, written, write_notebook) make nbgrader cells with
consistent metadata.
"""
import keyword
import re
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 3
NAME = re.compile(r"(\d\d)_([a-z][a-z0-9_]*)")
STUB_IMPORTS = "from ..exercise import F32, F64, Case, Mistake, exercise, randn, strided"  # what the stubs use


class ScaffoldError(ValueError):
    """The scaffold cannot be made as asked (a bad name, a file that exists already): nothing was written."""


# ---------------------------------------------------------------- cells


def _meta(grade_id, *, grade, solution, locked, points=None, task=False):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": task}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def md(source):
    return nbformat.v4.new_markdown_cell(source.strip("\n"))


def code(source):
    return nbformat.v4.new_code_cell(source.strip("\n"))


def setup(source, grade_id):
    return nbformat.v4.new_code_cell(source.strip("\n"),
                                     metadata=_meta(grade_id, grade=False, solution=False, locked=True))


def solution(source, grade_id):
    if "### BEGIN SOLUTION" not in source:
        raise ValueError(f"solution cell {grade_id!r} has no ### BEGIN SOLUTION region")
    return nbformat.v4.new_code_cell(source.strip("\n"),
                                     metadata=_meta(grade_id, grade=False, solution=True, locked=False))


def tests(source, grade_id, points):
    """A graded test cell: the import of the check functions it calls, then the calls (docs/authoring.md says why
    each test cell imports them itself)."""
    body = source.strip("\n")
    called = [name for name in ("check", "check_answer") if re.search(rf"(?<![\w.]){name}\(", body)]
    if called and not body.startswith("from autograder.checks import"):
        body = f"from autograder.checks import {', '.join(called)}\n" + body
    return nbformat.v4.new_code_cell(body, metadata=_meta(grade_id, grade=True, solution=False, locked=True,
                                                           points=points))


def written(prompt_answer, grade_id, points):
    """A markdown cell the learner writes in; the source holds a model answer between the solution markers."""
    return nbformat.v4.new_markdown_cell(prompt_answer.strip("\n"),
                                         metadata=_meta(grade_id, grade=True, solution=True, locked=False,
                                                        points=points))


def write_notebook(cells, path):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    # The plain python3 kernel: autograding takes the kernelspec from the source notebook.
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    _write(nb, path)


def _write(nb, path):
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    ids = [i for i in ids if i]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate grade ids: {sorted(duplicates)}")
    nbformat.validate(nb)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


# ---------------------------------------------------------------- templates
# EXAMPLE marks every line an author replaces; the stubs compute the sum of each row, so they pass as they are.

def _rule(title):
    """A section comment, '# ------ title', as the course's modules have them, within 120 characters."""
    return f"# {'-' * max(8, min(64, 117 - len(title)))} {title}"


def _exercise_cells(name, points):
    return [
        md(f"""
### Exercise · `{name}` (EXAMPLE: replace it)

EXAMPLE: say what `{name}` computes, with its formula next to it, and give a case small enough to check by hand.
Here: the sum of each row, $s_t = \\sum_c x_{{tc}}$, so `[[1, 2], [3, -4]]` gives `[3, -1]`.
"""),
        solution(f'''
def {name}(x):
    """EXAMPLE: the sum of each row of x: [..., T, d] -> [..., T]."""
    ### BEGIN SOLUTION
    return x.sum(-1)
    ### END SOLUTION
''', name),
        tests(f'check("{name}", {name})\n### BEGIN HIDDEN TESTS\ncheck("{name}", {name}, hidden=True)\n'
              "### END HIDDEN TESTS", f"{name}_check", points),
    ]


def _notebook_cells(notebook, name, points):
    number, topic = NAME.fullmatch(notebook).groups()
    title = topic.replace("_", " ").capitalize()
    return [
        md(f"""
# {number} · {title}

EXAMPLE: what this notebook teaches and why it matters, in a few sentences.

**Learning goals.** After this notebook you can

1. EXAMPLE: one goal per section.
"""),
        setup(f"""
%matplotlib inline
import torch

import linattn_ref as ref
from autograder.checks import check, check_answer
from linattn_ref.viz import nb{notebook} as viz

torch.manual_seed(0)
torch.set_printoptions(precision=4, sci_mode=False)
""", "setup"),
        md("## 1. EXAMPLE: the first idea\n\nEXAMPLE: one idea per section, the formula next to the code, a picture"
           " where a picture is clearer."),
        code("viz.plot_example()"),
        *_exercise_cells(name, points),
    ]


def _reference(name):
    return f'''

def {name}(x):
    """EXAMPLE: the sum of each row of x: [..., T, d] -> [..., T]."""
    return x.sum(-1)
'''


def _checks_functions(name):
    return f'''

{_rule(name + ' (EXAMPLE: replace it)')}


def _{name}_cases(gen):
    """The visible cases: every promise of the exercise (here leading dims, float32, a non-contiguous layout)."""
    return [Case({{"x": torch.tensor([[1.0, 2.0], [3.0, -4.0]], dtype=F64)}}, note="hand-checkable"),
            Case({{"x": randn(gen, 2, 3, 5)}}, note="leading dims"),
            Case({{"x": strided(randn(gen, 4, 3, dtype=F32))}}, note="float32, non-contiguous")]


def _{name}_hidden(gen):
    """Held-out cases: other values and sizes only (a visible case shows every behaviour)."""
    return [Case({{"x": randn(gen, 1, 7)}}), Case({{"x": randn(gen, 3, 2, 6, 4)}})]


def _{name}_mistakes():
    return (Mistake("the absolute values are summed: add the entries as they are, signs included",
                    lambda c: c.inputs["x"].abs().sum(-1)),)
'''


def _checks_entry(name, module, points):
    return (f"    exercise(\n"
            f"        {module}.{name},\n"
            f"        _{name}_cases,\n"
            f"        _{name}_hidden,\n"
            f"        points={points},\n"
            f"        time_dims=None,\n"
            f"        mistakes=_{name}_mistakes(),\n"
            f"        answers=({module}.{name},),\n"
            f"    ),\n")


def _checks_module(notebook, name, module, points):
    return f'''"""The exercises of notebook {notebook[:2]}: {notebook[3:].replace("_", " ")}."""
import torch

from linattn_ref import {module}

{STUB_IMPORTS}

NOTEBOOK = "{notebook}"
{_checks_functions(name)}

EXERCISES = [
{_checks_entry(name, module, points)}]
'''


def _bank_entries(name):
    return f'''

{_rule(name + ' (EXAMPLE: replace it)')}
# Three wrong answers at least, each named by the check (tests/test_checks.py), and a right one written
# differently, which every check must pass (tests/test_checks_solutions.py).


@wrong("{name}", "absolute values")
def {name}_of_absolute_values(x):
    return x.abs().sum(-1)


@wrong("{name}", "extra dimension of size 1")
def {name}_keeps_the_summed_axis(x):
    return x.sum(-1, keepdim=True)


@wrong("{name}", "wrong type")
def {name}_as_a_list(x):
    return x.sum(-1).tolist()


@right("{name}")
def {name}_one_column_at_a_time(x):
    total = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for c in range(x.shape[-1]):
        total = total + x[..., c]
    return total
'''


def _bank_module(notebook, name):
    return f'''"""Wrong answers to notebook {notebook[:2]} ({notebook[3:].replace("_", " ")}), and right ones written
differently."""
import torch

from . import right, wrong
{_bank_entries(name)}'''


def _viz_module(notebook):
    return f'''"""Notebook {notebook[:2]}'s pictures: data functions compute what a figure shows, `plot_*` return a
Figure.

EXAMPLE: replace plot_example with the notebook's own pictures (and their data functions, tested on their own).
"""
import torch
from matplotlib.figure import Figure


def example_data(T=8):
    """EXAMPLE: (positions, running sum of the positions) for T positions."""
    t = torch.arange(T, dtype=torch.float64)
    return t, t.cumsum(0)


def plot_example(T=8):
    """EXAMPLE: one picture of the notebook's idea."""
    t, total = example_data(T)
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.plot(t, total, marker="o")
    ax.set_xlabel("position t")
    ax.set_ylabel("running sum")
    return fig
'''


def _viz_test(notebook):
    return f'''"""The data behind notebook {notebook[:2]}'s pictures.

EXAMPLE: replace with tests of the notebook's own pictures.
"""
from linattn_ref.viz import nb{notebook} as viz


def test_example_data_is_the_running_sum_of_the_positions():
    t, total = viz.example_data(4)
    assert t.tolist() == [0, 1, 2, 3] and total.tolist() == [0, 1, 3, 6]


def test_plot_example_draws_one_line_with_labelled_axes():
    ax = viz.plot_example(4).axes[0]
    assert len(ax.lines) == 1 and ax.get_xlabel() == "position t"
'''


# ---------------------------------------------------------------- commands


def _check_names(notebook, name, root):
    if not NAME.fullmatch(notebook):
        raise ScaffoldError(f"notebook name {notebook!r}: expected NN_topic, two digits, an underscore and a"
                            " lower-case topic (letters, digits, underscores), like 11_sliding_window")
    if name is not None:
        if not name.isidentifier() or keyword.iskeyword(name) or name != name.lower():
            raise ScaffoldError(f"exercise name {name!r}: expected a lower-case Python name, the name of the function"
                                " the learner writes")
        defined = re.compile(rf"^(def {name}\(|{name} = )", re.M)  # a reference, or a checks module's own one
        places = [*(root / "linattn_ref").rglob("*.py"), *(root / "autograder" / "checks" / "notebooks").glob("*.py")]
        taken = [p.relative_to(root) for p in places if defined.search(p.read_text())]
        if taken:
            raise ScaffoldError(f"exercise name {name!r}: already defined in {taken[0]}")


def _paths(notebook, root, module):
    return {"notebook": root / "solutions" / notebook / f"{notebook}.ipynb",
            "reference": root / "linattn_ref" / f"{module}.py",
            "checks": root / "autograder" / "checks" / "notebooks" / f"nb{notebook}.py",
            "bank": root / "tests" / "mistakes" / f"nb{notebook}.py",
            "viz": root / "linattn_ref" / "viz" / f"nb{notebook}.py",
            "viz_test": root / "tests" / f"test_viz_nb{notebook}.py",
            "keys": root / "autograder" / "checks" / "answer_keys" / f"{notebook}.json"}


def _export(name, module, root):
    """Export the reference from linattn_ref (the checks and tests find it there), in isort order when ruff is
    installed."""
    init = root / "linattn_ref" / "__init__.py"
    text = init.read_text()
    anchor = text.index("\n__all__")
    init.write_text(text[:anchor] + f"from .{module} import {name}\n" + text[anchor:])
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--quiet", "--select", "I", str(init)],
                   cwd=root, capture_output=True)


def _tidy(root, *paths):
    """Imports sorted and unused ones dropped in the written modules, when ruff is installed (make setup does)."""
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--quiet", "--select", "I,F401",
                    *map(str, paths)], cwd=root, capture_output=True)


def _release(notebook, root):
    result = subprocess.run([sys.executable, "-m", "autograder", "release", notebook], cwd=root,
                            capture_output=True, text=True)
    if result.returncode:
        raise ScaffoldError(f"the release of {notebook} failed:\n{result.stderr.strip()}")


def new_notebook(notebook, name=None, points=1, root=REPO, release=True):
    """Create notebook `notebook` (NN_topic) with one EXAMPLE exercise `name` (default example_<topic>) and all its
    files; returns the paths written."""
    root = Path(root)
    number, topic = NAME.fullmatch(notebook).groups() if NAME.fullmatch(notebook) else (None, None)
    name = name or f"example_{topic}"
    _check_names(notebook, name, root)
    taken = [p.name for p in (root / "solutions").iterdir() if p.is_dir() and p.name[:2] == number]
    if taken:
        raise ScaffoldError(f"notebook number {number} is taken by solutions/{taken[0]}")
    paths = _paths(notebook, root, topic)
    existing = [str(p.relative_to(root)) for key, p in paths.items() if p.exists() and key != "reference"]
    if existing:
        raise ScaffoldError(f"already there: {', '.join(existing)}")
    if paths["reference"].exists():
        paths["reference"].write_text(paths["reference"].read_text().rstrip("\n") + "\n" + _reference(name))
    else:
        paths["reference"].write_text(f'"""{topic.replace("_", " ").capitalize()}: the reference of notebook'
                                      f' {number}. EXAMPLE: say what the module holds."""\n'
                                      + _reference(name))
    _export(name, topic, root)
    write_notebook(_notebook_cells(notebook, name, points), paths["notebook"])
    paths["checks"].write_text(_checks_module(notebook, name, topic, points))
    paths["bank"].write_text(_bank_module(notebook, name))
    paths["viz"].write_text(_viz_module(notebook))
    paths["viz_test"].write_text(_viz_test(notebook))
    paths["keys"].write_text("{}\n")
    _tidy(root, paths["checks"], paths["bank"], paths["viz"], paths["viz_test"])
    if release:
        _release(notebook, root)
    return sorted(paths.values())


def _reference_module(notebook, root):
    """The linattn_ref module that holds most of the notebook's references (for a new exercise's stub)."""
    checks = (root / "autograder" / "checks" / "notebooks" / f"nb{notebook}.py").read_text()
    modules = re.findall(r"exercise\(\s*(\w+)\.\w+,", checks)
    candidates = [m for m in modules if (root / "linattn_ref" / f"{m}.py").exists()]
    if not candidates:
        raise ScaffoldError(f"cannot tell which linattn_ref module holds notebook {notebook}'s references: name one"
                            " with --module")
    return max(set(candidates), key=candidates.count)


def new_exercise(notebook, name, points=1, module=None, root=REPO, release=True):
    """Add exercise `name` to notebook `notebook`: a stub reference, cases and a mistake, a wrong and a right answer
    in the bank, and its cells at the end of the notebook; returns the paths changed."""
    root = Path(root)
    _check_names(notebook, name, root)
    if not (root / "solutions" / notebook).is_dir():
        raise ScaffoldError(f"no notebook solutions/{notebook}: make it with new-notebook first")
    module = module or _reference_module(notebook, root)
    paths = _paths(notebook, root, module)
    for key in ("notebook", "checks", "bank"):
        if not paths[key].exists():
            raise ScaffoldError(f"{paths[key].relative_to(root)} is missing")
    checks = paths["checks"].read_text()
    if not checks.rstrip().endswith("]") or "\nEXERCISES = [" not in checks:
        raise ScaffoldError(f"{paths['checks'].relative_to(root)} must end with its EXERCISES = [...] list")
    if not paths["reference"].exists():
        raise ScaffoldError(f"no module linattn_ref/{module}.py")
    nb = nbformat.read(str(paths["notebook"]), as_version=4)

    paths["reference"].write_text(paths["reference"].read_text().rstrip("\n") + "\n" + _reference(name))
    _export(name, module, root)
    head, tail = checks.split("\nEXERCISES = [", 1)
    # the imports the stub needs, as lines of their own: _tidy merges them with the module's and drops the unused
    head = head.replace("\nNOTEBOOK = ", f"\nfrom linattn_ref import {module}\n\n{STUB_IMPORTS}\n\nNOTEBOOK = ", 1)
    body = tail.rstrip().removesuffix("]")
    paths["checks"].write_text(head.rstrip("\n") + "\n" + _checks_functions(name) + "\n\nEXERCISES = ["
                               + body.rstrip("\n") + "\n" + _checks_entry(name, module, points) + "]\n")
    bank = paths["bank"].read_text().replace("\nfrom . import ", "\nimport torch\n\nfrom . import right, wrong\n"
                                             "from . import ", 1)
    paths["bank"].write_text(bank.rstrip("\n") + "\n" + _bank_entries(name))
    nb.cells.extend(_exercise_cells(name, points))
    _write(nb, paths["notebook"])
    _tidy(root, paths["checks"], paths["bank"])
    if release:
        _release(notebook, root)
    return sorted({paths["reference"], root / "linattn_ref" / "__init__.py", paths["checks"], paths["bank"],
                   paths["notebook"]})
