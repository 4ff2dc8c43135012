"""Time `python -m autograder progress` end to end on the eleven notebooks of the course, completed.

    python -m benchmarks.progress_speed [--runs 5] [--modes fork,plain] [--json OUT]

A completed notebook is what a learner hands in after solving everything: their copy from course/ with every
solution cell as in solutions/ (so no hidden test runs, as in a learner's own copy). The eleven are written to a
temporary folder, laid out as in course/, and `progress` checks that folder as a learner would run it (a new
`python -m autograder progress FOLDER` each run: interpreter start, imports, workers, kernels, the table).
Modes: `fork` (kernels forked from a warm process, autograder.forkserver: the default) and `plain` (progress as
before: every kernel launched as grading launches it, `--plain-kernels`, with torch's default thread count), run
alternately. Prints each run's wall seconds and CPU seconds (all its processes: workers, servers, kernels) and,
per mode, min and median. Every run must report full marks: a run that does not is printed and counted, and the
benchmark exits 1. On a shared machine the wall time follows the other load; the CPU time much less.
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder import nbgrader_ops as ops

# mode: (arguments, environment). plain is progress as it was before forked kernels: each kernel launched as grading
# launches it, with torch's default thread count (the CPU count here; progress now gives each kernel its share).
MODES = {"fork": ([], {}), "plain": (["--plain-kernels"], {"OMP_NUM_THREADS": str(os.cpu_count())})}


def completed(name, source=ops.SOURCE, release=ops.RELEASE):
    """The learner's notebook of assignment `name` with each solution cell's source taken from `source`."""
    nb = nbformat.read(release / name / f"{name}.ipynb", as_version=4)
    solved = {c.get("id"): c.source for c in nbformat.read(source / name / f"{name}.ipynb", as_version=4).cells}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solved[cell.get("id")]
    return nb


def write_course(folder):
    """The completed notebooks of every assignment, with the files next to them, in folder/<assignment>/."""
    for name in ops.assignments(ops.RELEASE):
        (folder / name).mkdir(parents=True)
        for f in (ops.RELEASE / name).iterdir():
            if f.is_file() and f.suffix != ".ipynb":
                (folder / name / f.name).write_bytes(f.read_bytes())
        nbformat.write(completed(name), folder / name / f"{name}.ipynb")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_progress(folder, mode):
    """(seconds, CPU seconds of all its processes, printed table) of one `python -m autograder progress folder`."""
    args, extra_env = MODES[mode]
    env = {**os.environ, **extra_env,
           "PYTHONPATH": os.pathsep.join(p for p in [str(ops.REPO), os.environ.get("PYTHONPATH")] if p)}
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run([sys.executable, "-m", "autograder", "progress", str(folder), *args], env=env,
                          cwd=folder, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"progress failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, cpu, proc.stdout


def full_marks(table):
    got, total = re.search(r"total: ([\d.]+) / ([\d.]+) autograded points", table).groups()
    return float(got) == float(total)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each mode")
    parser.add_argument("--modes", default="fork,plain", help="comma-separated: fork, plain")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    seconds, cpu, short = ({mode: [] for mode in modes} for _ in range(3))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="progress-speed-") as tmp:
        folder = Path(tmp) / "course"
        write_course(folder)
        print(f"{len(ops.assignments(folder))} completed notebooks in {folder}; load average before:"
              f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
        for run in range(args.runs):
            for mode in modes:
                s, c, table = run_progress(folder, mode)
                if not full_marks(table):  # kept, and reported: a run that lost points is a bug to look at
                    short[mode].append(run + 1)
                    print(table)
                seconds[mode].append(s)
                cpu[mode].append(c)
                print(f"run {run + 1} {mode:<6} {s:6.1f} s  CPU {c:5.1f} s  load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\n{'mode':<6} {'runs':>4} {'min s':>6} {'median':>6} {'max s':>6}   CPU s: {'min':>5} {'median':>6}")
    for mode in modes:
        print(f"{mode:<6} {len(seconds[mode]):>4} {min(seconds[mode]):>6.1f} {statistics.median(seconds[mode]):>6.1f}"
              f" {max(seconds[mode]):>6.1f}          {min(cpu[mode]):>5.1f} {statistics.median(cpu[mode]):>6.1f}"
              + (f"   runs short of full marks: {short[mode]}" if short[mode] else ""))
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "cpus": os.cpu_count(),
                                         "load_before": load, "load_after": os.getloadavg(),
                                         "seconds": seconds, "cpu_seconds": cpu, "runs_short_of_full_marks": short},
                                        indent=1))
    return 1 if any(short.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
