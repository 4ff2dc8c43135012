"""The instructor's and learner's command line: `python -m autograder COMMAND --help` says more.

    release                        regenerate course/ from solutions/ with nbgrader and check that nothing leaked
    grade SUBMISSIONS --out DIR    autograde a class into an nbgrader course root: gradebook, feedback, grades.csv
    progress [NOTEBOOK_DIR]        which exercises of your own notebooks pass (runs copies, changes nothing)
    new-notebook NN_topic          an author's new notebook with one example exercise and all its files
    new-exercise NN_topic NAME     one more exercise in a notebook (docs/authoring.md: what to edit next)
"""
import argparse
import signal
import sys
from pathlib import Path

from . import nbgrader_ops as ops


def release(args):
    names = args.assignments or None
    unknown = sorted(set(names or []) - set(ops.assignments(ops.SOURCE)))
    if unknown:
        print(f"error: no such assignment in {ops.SOURCE}: {', '.join(unknown)}", file=sys.stderr)
        return 1
    dest = Path(args.to)
    released = ops.generate_release(dest, names)
    problems = ops.release_problems(names, release=dest)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if problems:
        print(f"release check failed: {len(problems)} problem(s) in {dest}", file=sys.stderr)
        return 1
    print(f"released {len(names or released)} assignment(s) to {dest}: no solution or hidden test leaked, every"
          " graded cell kept its id and points")
    return 0


def grade(args):
    from .grading import grade

    if args.no_sandbox:
        print("warning: --no-sandbox: student code runs with the grader's rights (it can read solutions/ and change"
              " grades); use it only for trusted code", file=sys.stderr)
    return grade(args.submissions, args.out, jobs=args.jobs, timeout=args.timeout, memory_mb=args.memory_limit,
                 force=args.force, sandbox=not args.no_sandbox, wall_budget=args.wall_budget)


def progress(args):
    from .progress import progress

    try:
        return progress(args.notebook_dir, timeout=args.timeout, fork=not args.plain_kernels)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _scaffold(make, *args, **kw):
    from .scaffold import REPO, ScaffoldError

    try:
        paths = make(*args, **kw)
    except ScaffoldError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("written (edit every EXAMPLE, then run make test; docs/authoring.md goes step by step):")
    for path in paths:
        print(f"  {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


def new_notebook(args):
    from .scaffold import new_notebook

    return _scaffold(new_notebook, args.notebook, args.exercise, points=args.points)


def new_exercise(args):
    from .scaffold import new_exercise

    return _scaffold(new_exercise, args.notebook, args.name, points=args.points, module=args.module)


def parser():
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = commands.add_parser("release", help="regenerate course/ from solutions/ and check it",
                            description="Run nbgrader generate_assignment for every assignment (or the named ones),"
                            " then check that no solution or hidden test leaked and every graded cell kept its id and"
                            " points. Exits 1, naming each problem, if anything is wrong.")
    r.add_argument("assignments", nargs="*", help="assignment names (default: every folder in solutions/)")
    r.add_argument("--to", default=str(ops.RELEASE), help="where the learner notebooks go (default: %(default)s)")
    r.set_defaults(run=release)

    g = commands.add_parser("grade", help="autograde a class's submissions",
                            description="Grade every student folder or zip in SUBMISSIONS (<student>/NN_topic/"
                            "NN_topic.ipynb, <student>/NN_topic.ipynb, renamed copies, or an nbgrader course root with"
                            " submitted/<student>/<assignment>/). OUT becomes an nbgrader course root: gradebook,"
                            " autograded/, feedback/, grades.csv, report.txt. Run it again after new submissions or"
                            " hand grading: only changed submissions are graded again, hand-entered scores stay, and"
                            " feedback is regenerated where grades changed. Exit status 1 if a submission could not"
                            " be graded by the machinery (it is retried next run); problems with students' files are"
                            " reported, not fatal. Each student kernel runs in a bubblewrap sandbox (see"
                            " docs/instructors.md); where bubblewrap cannot run, grade stops and says how to enable"
                            " it.")
    g.add_argument("submissions", help="folder of student folders or zips, or an nbgrader course root")
    g.add_argument("--out", required=True, help="the grading folder (created if missing)")
    g.add_argument("--jobs", type=int, default=None, help="notebooks graded side by side (default: CPU count)")
    g.add_argument("--timeout", type=int, default=None,
                   help=f"seconds a cell may run (default: the course's c.Execute.timeout, {ops.CELL_TIMEOUT})")
    g.add_argument("--memory-limit", type=int, default=4096, metavar="MB",
                   help="memory a student's notebook may use, all its processes together, in MiB (default:"
                   " %(default)s; 0: no limit)")
    g.add_argument("--wall-budget", type=int, default=None, metavar="S",
                   help="seconds one notebook may take, kernel restarts included (default: 10 x the cell timeout)")
    g.add_argument("--no-sandbox", action="store_true",
                   help="run student kernels without the bubblewrap sandbox, with the grader's rights (reported"
                   " loudly; only for trusted code)")
    g.add_argument("--force", action="store_true", help="grade every submission again, changed or not")
    g.set_defaults(run=grade)

    pr = commands.add_parser("progress", help="check your own notebooks: which exercises pass",
                             description="Run a copy of each notebook in NOTEBOOK_DIR (your files are not changed;"
                             " save them first) and print which graded checks pass, with points. Hidden tests are"
                             " not in your notebooks: the final grade may still differ.")
    pr.add_argument("notebook_dir", nargs="?", default=None,
                    help="a folder of notebooks, or one notebook (default: the folder you are in when it holds"
                         f" notebooks, else {ops.RELEASE})")
    pr.add_argument("--timeout", type=int, default=None,
                    help=f"seconds a cell may run (default: {ops.CELL_TIMEOUT})")
    pr.add_argument("--plain-kernels", action="store_true",
                    help="start each kernel from scratch, as grading does, instead of forking it from a process that"
                    " has already imported torch and the course's modules (slower; to compare)")
    pr.set_defaults(run=progress)

    nn = commands.add_parser("new-notebook", help="an author's new notebook, with one example exercise",
                             description="Create solutions/NN_topic/NN_topic.ipynb (a setup cell, a picture, one"
                             " EXAMPLE exercise with its graded test cell), its reference in linattn_ref/<topic>.py,"
                             " checks module, mistake bank, viz module and test, and answer-key file, then release"
                             " it to course/. Everything passes make test as written; docs/authoring.md says what"
                             " to edit.")
    nn.add_argument("notebook", metavar="NN_topic", help="the assignment folder's name, like 11_sliding_window")
    nn.add_argument("--exercise", default=None, help="the example exercise's name (default: example_<topic>)")
    nn.add_argument("--points", type=int, default=1, help="points of the example exercise (default: %(default)s)")
    nn.set_defaults(run=new_notebook)

    ne = commands.add_parser("new-exercise", help="one more exercise in a notebook",
                             description="Add exercise NAME to notebook NN_topic: a stub reference (exported from"
                             " linattn_ref), its cases and a named mistake in the checks module, a wrong and a right"
                             " answer in the mistake bank, and its cells (prose, solution, graded test) at the end of"
                             " the notebook; then release the notebook. The stubs pass make test as written.")
    ne.add_argument("notebook", metavar="NN_topic", help="an existing assignment, like 08_chunkwise")
    ne.add_argument("name", help="the exercise id: the name of the function the learner writes")
    ne.add_argument("--points", type=int, default=1, help="points (default: %(default)s)")
    ne.add_argument("--module", default=None, help="the linattn_ref module for the reference (default: the one"
                    " holding most of the notebook's references)")
    ne.set_defaults(run=new_exercise)
    return p


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    from .submissions import GradingError  # (not .grading: it imports torch, 3 s that progress need not wait for)

    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)  # a polite kill stops workers and kernels like Ctrl-C does
    try:
        return args.run(args)
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to go on where it stopped", file=sys.stderr)
        return 130
