"""Execute notebooks headless N times in a row and report run times and stalls.

    python -m benchmarks.headless_runs [NOTEBOOK_OR_FOLDER ...] [--runs 20] [--stall 15] [--json OUT]

Each run executes a notebook top to bottom in a fresh kernel through nbclient, as nbgrader's Validate and
autograde do (this is where a widget cell once stalled headless runs for the whole cell timeout; --unfixed runs
without autograder.execute.fix_lost_wakeups, to see the stall again). A cell that
takes longer than --stall seconds counts as a stall. Prints, per notebook, the distribution of run times
(min, median, 90th percentile, max) and every stall with its cell; exits 1 if there was a stall or an error.
Default: every solution notebook (solutions/NN_topic/NN_topic.ipynb).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder import nbgrader_ops as ops
from autograder.execute import fix_lost_wakeups


class TimedClient(NotebookClient):
    """NotebookClient that records how long each cell took."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cell_seconds = []

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        start = time.perf_counter()
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            self.cell_seconds.append((cell_index, time.perf_counter() - start))




def run_once(path, timeout):
    """(seconds, [(cell index, seconds)], error or None) of one headless run of the notebook at `path`."""
    nb = nbformat.read(path, as_version=4)
    client = TimedClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as err:  # a stall that hit the timeout, or a failing cell: reported, the runs go on
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return time.perf_counter() - start, client.cell_seconds, error


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks or folders (default: every solution notebook)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--stall", type=float, default=15.0, help="a cell slower than this many seconds is a stall")
    parser.add_argument("--timeout", type=int, default=ops.CELL_TIMEOUT, help="cell timeout (as in grading)")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--unfixed", action="store_true", help="without the fix for lost wake-ups")
    args = parser.parse_args(argv)
    if not args.unfixed:
        fix_lost_wakeups()  # as nbgrader_config.py does for Validate and autograde
    paths = []
    for p in args.paths or [ops.SOURCE]:
        paths += [p] if p.is_file() else sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
    report, bad = {}, 0
    print(f"{'notebook':<28} {'runs':>4} {'min s':>6} {'median':>6} {'p90':>6} {'max s':>6}  stalls / errors",
          flush=True)
    for path in paths:
        runs = [run_once(path, args.timeout) for _ in range(args.runs)]
        totals = [r[0] for r in runs]
        stalls = [(n, i, s) for n, (_, cells, _) in enumerate(runs) for i, s in cells if s > args.stall]
        errors = [(n, e) for n, (_, _, e) in enumerate(runs) if e]
        bad += len(stalls) + len(errors)
        print(f"{path.stem:<28} {len(runs):>4} {min(totals):>6.1f} {statistics.median(totals):>6.1f} "
              f"{percentile(totals, 90):>6.1f} {max(totals):>6.1f}  {len(stalls)} / {len(errors)}", flush=True)
        for n, i, s in stalls:
            print(f"    stall: run {n + 1}, cell {i}: {s:.1f} s", flush=True)
        for n, e in errors:
            print(f"    error: run {n + 1}: {e}", flush=True)
        report[path.stem] = {"seconds": totals, "stalls": stalls, "errors": errors}
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "stall_s": args.stall, "notebooks": report}, indent=1))
    print(f"\n{sum(len(r['seconds']) for r in report.values())} runs, {bad} stalls or errors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
