"""Run the whole test suite in stages, in the order a reviewer reads them, then print one summary.

    python tests/suite.py            every stage
    python tests/suite.py ref nbval  only the named stages

Each stage is one pytest (or ruff) run; neighbours in SIDE_BY_SIDE run at the same time, each printed whole as it
ends. The summary lists each stage's counts and seconds, the time of the whole run, and ends with a single line
"suite: N passed, N failed". The exit status is non-zero if any stage failed.
"""
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
# pytest-xdist, one worker per core of the CI machine (2): without it these stages keep one core busy and the other
# idle. nbval and autograde add --dist loadfile, which keeps each file (so each notebook's cells, sharing one kernel,
# and each grading fixture) in one worker.
XDIST = ["-n", "2"]

# (name, what it proves, command)
STAGES = [
    ("ref", "reference math, checks, kernels, widgets' data",
     PYTEST + XDIST + ["tests", "--ignore=tests/test_release.py", "--ignore=tests/test_learner_notebooks.py",
                       "--ignore=tests/test_notebooks_autograde.py", "--ignore=tests/test_grading.py",
                       "--ignore=tests/test_hostile_class.py", "--ignore=tests/test_grading_verdict.py",
                       "--ignore=tests/test_progress.py", "--ignore=tests/test_browser.py",
                       "--ignore=tests/test_jupyterhub.py", "--ignore=tests/test_scaffold.py"]),
    ("nbval", "every solution notebook runs clean under nbval",
     PYTEST + XDIST + ["--dist", "loadfile", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=120",
                       "solutions"]),
    ("learner", "learner notebooks fail their checks cleanly, untouched",
     PYTEST + ["tests/test_learner_notebooks.py"]),
    ("release", "course/ is what nbgrader generates from solutions/, with nothing leaked",
     PYTEST + ["tests/test_release.py"]),
    ("autograde", "nbgrader autograding end to end",
     # Each file's grading runs are fixtures of its own; the files go to the workers in this order, the longest
     # first, so that both workers end at about the same time.
     PYTEST + XDIST + ["--dist", "loadfile", "--no-loadscope-reorder", "tests/test_grading.py",
                       "tests/test_notebooks_autograde.py", "tests/test_hostile_class.py",
                       "tests/test_grading_verdict.py", "tests/test_progress.py"]),
    ("browser", "JupyterLab in a real browser",
     PYTEST + ["tests/test_browser.py"]),
    ("scaffold", "a new notebook and new exercises, scaffolded in a copy, pass their tests as written",
     PYTEST + ["tests/test_scaffold.py"]),
    ("hub", "the nbgrader exchange end to end on a real JupyterHub",
     PYTEST + ["tests/test_jupyterhub.py"]),
    ("ruff", "lint", [sys.executable, "-m", "ruff", "check", "."]),
]

# Neighbouring stages in this set run at the same time. The hub test mostly waits (on servers to spawn, pages to
# render, one nbgrader process after another: about one core of two in use), and the scaffold's keeps one core
# busy, so the two take little more than the hub alone. (The browser test beside the hub was slower: two Chromiums.)
SIDE_BY_SIDE = {"scaffold", "hub"}
COUNT = re.compile(r"(\d+) (passed|failed|error|errors|skipped|xfailed|xpassed)")


def existing(cmd):
    """Drop test files that do not exist (yet), so a stage never errors on a missing path; None if it named test
    files and none exists."""
    kept = [arg for arg in cmd if not arg.startswith("tests/test_") or (ROOT / arg).exists()]
    named = [arg for arg in cmd if arg.startswith("tests/test_")]
    return None if named and not any(arg in kept for arg in named) else kept


def run(name, what, cmd):
    """Run one stage: (name, what, exit status, output, seconds)."""
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "LINATTN_FAST": "1"})  # notebook 10 trains a few steps only
    return name, what, proc.returncode, proc.stdout, time.time() - start


def counts_of(name, status, output):
    """{"passed": N, "failed": N, ...} from the last line pytest printed (ruff: one check)."""
    if name == "ruff":
        return {"passed": 1} if status == 0 else {"failed": 1}
    counts = {}
    for n, kind in COUNT.findall(output.strip().splitlines()[-1] if output.strip() else ""):
        counts[kind.rstrip("s") if kind == "errors" else kind] = int(n)
    return counts


def groups(stages):
    """The stages in order, as lists run one after another; neighbours in SIDE_BY_SIDE share a list."""
    found = []
    for stage in stages:
        if found and stage[0] in SIDE_BY_SIDE and found[-1][-1][0] in SIDE_BY_SIDE:
            found[-1].append(stage)
        else:
            found.append([stage])
    return found


def main(selected):
    todo = [(name, what, existing(cmd)) for name, what, cmd in STAGES if not selected or name in selected]
    todo = [stage for stage in todo if stage[2] is not None]  # none of the stage's test files exist
    results, start = {}, time.time()
    for group in groups(todo):
        if len(group) == 1:
            print(f"\n=== {group[0][0]}: {group[0][1]}", flush=True)
        else:
            print(f"\n=== {', '.join(name for name, _, _ in group)}: side by side, each printed as it ends", flush=True)
        with ThreadPoolExecutor(len(group)) as pool:
            for done in as_completed([pool.submit(run, *stage) for stage in group]):
                name, what, status, output, seconds = done.result()
                if len(group) > 1:
                    print(f"\n=== {name}: {what}")
                sys.stdout.write(output)
                sys.stdout.flush()
                results[name] = (status == 0, counts_of(name, status, output), seconds)
    print("\n=== summary")
    print(f"{'stage':<10} {'result':<7} {'passed':>7} {'failed':>7} {'skipped':>8} {'seconds':>8}")
    total_pass = total_fail = 0
    for name, _, _ in todo:
        ok, c, s = results[name]
        failed = c.get("failed", 0) + c.get("error", 0) + (0 if ok or c.get("failed") or c.get("error") else 1)
        total_pass += c.get("passed", 0)
        total_fail += failed
        print(f"{name:<10} {'ok' if ok else 'FAILED':<7} {c.get('passed', 0):>7} {failed:>7} "
              f"{c.get('skipped', 0):>8} {s:>8.1f}")
    print(f"total time {time.time() - start:.0f} s")
    print(f"suite: {total_pass} passed, {total_fail} failed")
    return 0 if all(ok for ok, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
