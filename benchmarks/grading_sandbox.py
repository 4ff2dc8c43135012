"""What the sandbox costs: one full submission (every solution notebook) graded with --jobs 1, sandboxed and not.

    PYTHONPATH=$PWD PATH=$PWD/.venv/bin:$PATH .venv/bin/python benchmarks/grading_sandbox.py [--repeats N]

Each run grades into a fresh folder, so nothing is skipped as unchanged; the runs alternate (sandboxed first) to
spread the machine's noise. Writes benchmarks/results/grading_sandbox.{json,md}. Exit status 1 if the sandboxed
time is more than 20% above the unsandboxed one.
"""
import argparse
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import grading  # noqa: E402
from autograder import nbgrader_ops as ops  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ALLOWED = 1.20  # the sandboxed time may be at most 20% above the unsandboxed one


def one_run(sandbox):
    """Seconds to grade one student's every notebook, and the autograded score (a check that all went through)."""
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        subs = Path(tmp) / "subs" / "student"
        for assignment in ops.assignments():
            shutil.copytree(ops.SOURCE / assignment, subs / assignment)
        start = time.perf_counter()
        status = grading.grade(subs.parent, Path(tmp) / "out", jobs=1, sandbox=sandbox, stream=io.StringIO())
        seconds = time.perf_counter() - start
        state = grading.load_state(Path(tmp) / "out")["submissions"]
        graded = sum(e["status"] == "graded" for e in state.values())
        return seconds, status, graded, sum(e.get("seconds") or 0 for e in state.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    runs, load = {"sandboxed": [], "unsandboxed": []}, [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name in runs:
            seconds, status, graded, autograde = one_run(name == "sandboxed")
            assert status == 0 and graded == len(ops.assignments()), (name, status, graded)
            runs[name].append({"seconds": round(seconds, 1), "autograde_seconds": round(autograde, 1)})
            load.append(os.getloadavg()[0])
            print(f"{name}: {seconds:.1f} s ({autograde:.1f} s in autograde)", flush=True)
    mean = {name: statistics.mean(r["seconds"] for r in rs) for name, rs in runs.items()}
    ratio = mean["sandboxed"] / mean["unsandboxed"]
    result = {"command": "PYTHONPATH=$PWD PATH=$PWD/.venv/bin:$PATH .venv/bin/python benchmarks/grading_sandbox.py"
                         f" --repeats {args.repeats}",
              "what": "one submission of every solution notebook, grade --jobs 1, whole run (collect to export)",
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              "runs": runs, "mean_seconds": {k: round(v, 1) for k, v in mean.items()}, "ratio": round(ratio, 3),
              "allowed_ratio": ALLOWED, "load_average_1min": [round(x, 1) for x in load]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "grading_sandbox.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "grading_sandbox.md").write_text(
        "# Cost of the grading sandbox\n\n"
        f"`{result['command']}`\n\n{result['what']}; {result['machine']}; load average (1 min) before and after"
        f" each run: {', '.join(map(str, result['load_average_1min']))}.\n\n"
        "| kernels | runs (s) | mean (s) |\n|---|---|---|\n"
        + "".join(f"| {name} | {', '.join(str(r['seconds']) for r in rs)} | {mean[name]:.1f} |\n"
                  for name, rs in runs.items())
        + f"\nsandboxed / unsandboxed = {ratio:.2f} (allowed: {ALLOWED:.2f})\n")
    print(f"sandboxed / unsandboxed = {ratio:.2f}")
    return 0 if ratio <= ALLOWED else 1


if __name__ == "__main__":
    sys.exit(main())
