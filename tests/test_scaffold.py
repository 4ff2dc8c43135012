"""The authoring scaffold: `new-notebook` and `new-exercise` write stubs that pass the suite as they are, and an
exercise is added by hand in four files (docs/authoring.md). Runs in a copy of the repository."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(cwd), "LINATTN_FAST": "1"}  # the copy's packages, in kernels too
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the checkout as it is (tracked files and new ones git does not ignore, course/ included)."""
    copy = tmp_path_factory.mktemp("author") / "repo"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    files = listed.stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


def _autograder(repo, *args):
    return _run([sys.executable, "-m", "autograder", *args], repo)


def test_bad_names_are_refused_and_nothing_is_written(repo):
    before = sorted(p for p in repo.rglob("*") if p.is_file())
    for args, why in [(("new-notebook", "11-Example"), "expected NN_topic"),
                      (("new-notebook", "08_other"), "number 08 is taken by solutions/08_chunkwise"),
                      (("new-exercise", "08_chunkwise", "decay_mask"), "already defined in linattn_ref/retnet.py"),
                      (("new-exercise", "08_chunkwise", "gla_triton"),
                       "already defined in autograder/checks/notebooks/nb09_triton.py"),
                      (("new-exercise", "08_chunkwise", "Bad-Name"), "lower-case Python name"),
                      (("new-exercise", "12_missing", "fresh_one"), "make it with new-notebook first")]:
        result = _autograder(repo, *args)
        assert result.returncode == 1 and why in result.stderr, (args, result.stderr)
    assert sorted(p for p in repo.rglob("*") if p.is_file()) == before


NOTEBOOK = "11_sliding_window_variants"  # long names: the written code must still pass ruff
LONG = "a_second_exercise_with_a_rather_long_name"


def test_a_scaffold_passes_the_tests_as_written(repo):
    made = _autograder(repo, "new-notebook", NOTEBOOK)
    assert made.returncode == 0, made.stderr
    for path in (f"solutions/{NOTEBOOK}/{NOTEBOOK}.ipynb", f"course/{NOTEBOOK}/{NOTEBOOK}.ipynb",
                 "linattn_ref/sliding_window_variants.py", f"autograder/checks/notebooks/nb{NOTEBOOK}.py",
                 f"tests/mistakes/nb{NOTEBOOK}.py", f"linattn_ref/viz/nb{NOTEBOOK}.py",
                 f"tests/test_viz_nb{NOTEBOOK}.py",
                 f"autograder/checks/answer_keys/{NOTEBOOK}.json"):
        assert (repo / path).exists(), path
    added = _autograder(repo, "new-exercise", NOTEBOOK, LONG)
    assert added.returncode == 0, added.stderr
    # an exercise in a notebook that exists: four files to edit by hand, plus the export the tool writes
    extra = _autograder(repo, "new-exercise", "08_chunkwise", "chunk_example")
    assert extra.returncode == 0, extra.stderr
    written = {line.strip() for line in extra.stdout.splitlines()[1:]}
    assert written == {"linattn_ref/__init__.py", "linattn_ref/chunk.py", "solutions/08_chunkwise/08_chunkwise.ipynb",
                       "autograder/checks/notebooks/nb08_chunkwise.py", "tests/mistakes/nb08_chunkwise.py"}
    ids = f"example_sliding_window_variants or {LONG} or chunk_example or {NOTEBOOK} or 08_chunkwise"
    tests = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_checks.py",
                  "tests/test_checks_solutions.py", "tests/test_release.py", f"tests/test_viz_nb{NOTEBOOK}.py",
                  "-k", f"({ids} or registry or named_after or every_exercise or bank_has) and not committed_release"],
                 repo)  # (the release itself was checked by `autograder release`, which the scaffold runs)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout.splitlines()[-1] and "failed" not in tests.stdout.splitlines()[-1]
    notebooks = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                      "--nbval-current-env", f"solutions/{NOTEBOOK}"], repo)
    assert notebooks.returncode == 0, notebooks.stdout[-3000:]
    lint = _run([sys.executable, "-m", "ruff", "check", "."], repo)
    assert lint.returncode == 0, lint.stdout[-3000:]
