"""CPU timings of the parallel, recurrent and chunk forms of linear attention, retention and GLA against T.

Run from the repository root:

    python -m benchmarks.cpu_forms            # T = 256 .. 4096; writes benchmarks/results/cpu_forms.{json,md}
    python -m benchmarks.cpu_forms --quick    # smoke run: short sequences, prints the table, writes nothing

One sequence (B = 1, H = 1), d_k = d_v = 64, float32, torch's default number of threads. Each time is the
median of several runs after one warm-up round. The parallel forms are the quadratic masked ones; GLA's keeps a
[T, T, d_k] tensor (three at once at its peak), so it is skipped where that would need more than ~2 GB.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

import linattn_ref as R

RESULTS = Path(__file__).resolve().parent / "results"
MEMORY_CAP_BYTES = 2 * 1024**3
GAMMA = float(R.multiscale_gammas(1)[0])  # RetNet's first head: 1 - 2^-5
FORMS = ("parallel", "recurrent", "chunk")
TARGET_SPEEDUP = 10.0  # linear attention's chunk form against its parallel form at the longest T


def make_inputs(T, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, 1, T, d, generator=gen) for _ in range(3))
    g = torch.nn.functional.logsigmoid(torch.randn(1, 1, T, d, generator=gen)) / 16  # GLA's usual gates
    return q, k, v, g


def form_call(family, form, inputs, chunk_size):
    q, k, v, g = inputs
    calls = {
        ("linear attention", "parallel"): lambda: R.linear_attention_parallel(q, k, v),
        ("linear attention", "recurrent"): lambda: R.linear_attention_recurrent(q, k, v),
        ("linear attention", "chunk"): lambda: R.linear_attention_chunk(q, k, v, chunk_size=chunk_size),
        ("retention", "parallel"): lambda: R.retention_parallel(q, k, v, GAMMA),
        ("retention", "recurrent"): lambda: R.retention_recurrent(q, k, v, GAMMA),
        ("retention", "chunk"): lambda: R.retention_chunk(q, k, v, GAMMA, chunk_size=chunk_size),
        ("GLA", "parallel"): lambda: R.gla_parallel(q, k, v, g),
        ("GLA", "recurrent"): lambda: R.gla_recurrent(q, k, v, g),
        ("GLA", "chunk"): lambda: R.gla_chunk(q, k, v, g, chunk_size=chunk_size),
    }
    return calls[family, form]


def gla_parallel_bytes(T, d_k, element_bytes=4):
    """Peak memory of gla_parallel: three [T, T, d_k] tensors live at once (b_i - b_j, its mask, its exp)."""
    return 3 * T * T * d_k * element_bytes


def elapsed_ms(fn):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def machine():
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def run(lengths, d, chunk_size, repeats):
    """Time every (family, form, T) `repeats` times after one warm-up round.

    The rounds go over all the cases in turn rather than repeating one case back to back, so a burst of
    load from another process spoils one run of many cases, not every run of one case; the median drops it.
    """
    rows, calls = [], {}
    inputs = {T: make_inputs(T, d) for T in lengths}
    for family in ("linear attention", "retention", "GLA"):
        for T in lengths:
            for form in FORMS:
                row = {"family": family, "form": form, "T": T}
                need = gla_parallel_bytes(T, d)
                if (family, form) == ("GLA", "parallel") and need > MEMORY_CAP_BYTES:
                    row["skipped"] = f"needs ~{need / 1024**3:.1f} GB"
                else:
                    row["runs_ms"] = []
                    calls[len(rows)] = form_call(family, form, inputs[T], chunk_size)
                rows.append(row)
    with tqdm(total=(repeats + 1) * len(calls), desc="cpu forms", unit="run") as bar:
        for round_ in range(repeats + 1):
            for i, fn in calls.items():
                ms = elapsed_ms(fn)
                if round_ > 0:  # round 0 warms up: first-call allocations are not what we measure
                    rows[i]["runs_ms"].append(ms)
                bar.update()
    for i in calls:
        rows[i]["median_ms"] = statistics.median(rows[i]["runs_ms"])
    return rows


def speedups(rows):
    """parallel / chunk time per family at the longest T where both forms ran."""
    times = {(r["family"], r["form"], r["T"]): r["median_ms"] for r in rows if "median_ms" in r}
    out = {}
    for family in dict.fromkeys(r["family"] for r in rows):
        both = [T for (f, form, T) in times if f == family and form == "parallel" and (f, "chunk", T) in times]
        if both:
            T = max(both)
            out[family] = {"T": T, "ratio": times[family, "parallel", T] / times[family, "chunk", T]}
    return out


def table(rows):
    """One markdown table: a row per T, a column per family and form, then parallel / chunk per family."""
    families = list(dict.fromkeys(r["family"] for r in rows))
    cell = {(r["family"], r["form"], r["T"]): r for r in rows}
    header = ["T"] + [f"{f} {form} (ms)" for f in families for form in FORMS]
    header += [f"{f} parallel / chunk" for f in families]
    lines = ["| " + " | ".join(header) + " |", "|" + " ---: |" * len(header)]
    for T in sorted({r["T"] for r in rows}):
        values = [str(T)]
        for f in families:
            for form in FORMS:
                r = cell[f, form, T]
                values.append(f"{r['median_ms']:.1f}" if "median_ms" in r else f"skipped ({r['skipped']})")
        for f in families:
            p, c = cell[f, "parallel", T], cell[f, "chunk", T]
            values.append(f"{p['median_ms'] / c['median_ms']:.1f}x" if "median_ms" in p else "-")
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def markdown(report):
    s, m = report["settings"], report["machine"]
    lines = [
        "# CPU timings of the parallel, recurrent and chunk forms",
        "",
        f"Made by `{report['command']}` (from the repository root).",
        "",
        f"Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}; torch {m['torch']} with {m['torch_threads']} threads "
        f"(the default); Python {m['python']}; {m['platform']}. Load average (1, 5, 15 min) at the start "
        f"{', '.join(map(str, m['load_average_at_start']))}, at the end "
        f"{', '.join(map(str, report['load_average_at_end']))}: the machine is shared, so timings are noisy.",
        "",
        f"Settings: B = {s['B']}, H = {s['H']}, d_k = d_v = {s['d']}, {s['dtype']}, chunk size {s['chunk_size']}, "
        f"retention gamma = {s['gamma']}, GLA gates log(sigmoid(x)) / 16. Each time is the median of "
        f"{s['repeats']} run{'s' if s['repeats'] != 1 else ''} after one warm-up round, in milliseconds "
        "(each round runs every case once, so a burst of load elsewhere spoils one run of many cases).",
        "",
        table(report["results"]),
        "",
        "GLA's parallel form holds three [T, T, d_k] float32 tensors at its peak (3 T^2 d_k 4 bytes; measured "
        f"about 0.78 GB at T = 1024): it is skipped where that is over {s['memory_cap_gb']} GB.",
        "",
        "Chunk form against the quadratic parallel form, at the longest T where both ran:",
        "",
    ]
    for family, r in report["chunk_speedup"].items():
        lines.append(f"- {family}: parallel / chunk time = {r['ratio']:.1f}x at T = {r['T']}")
    target = report["target"]
    lines += ["", f"Target: linear attention's chunk form at least {target['speedup']:.0f}x faster than its parallel "
              f"form at T = {target['T']}, d = {s['d']}: {'met' if target['met'] else 'NOT met'}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: T = 64, 128, one repeat, writes nothing")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--d", type=int, default=64, help="d_k = d_v")
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help=f"folder for the results (default {RESULTS}, "
                        "none with --quick)")
    args = parser.parse_args(argv)
    lengths, repeats = ([64, 128], 1) if args.quick else (args.lengths, args.repeats)
    out = args.out if args.out is not None or args.quick else RESULTS

    host = machine()  # before the runs: the load average at the start
    rows = run(lengths, args.d, args.chunk_size, repeats)
    ratio = speedups(rows)
    longest = max(lengths)
    linear = ratio.get("linear attention", {})
    report = {
        "command": " ".join([os.path.relpath(sys.executable), "-m", "benchmarks.cpu_forms", *sys.argv[1:]]),
        "machine": host,
        "settings": {"B": 1, "H": 1, "d": args.d, "dtype": "float32", "chunk_size": args.chunk_size,
                     "repeats": repeats, "gamma": GAMMA, "memory_cap_gb": MEMORY_CAP_BYTES / 1024**3},
        "results": rows,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "chunk_speedup": ratio,
        "target": {"speedup": TARGET_SPEEDUP, "T": longest,
                   "met": linear.get("T") == longest and linear.get("ratio", 0.0) >= TARGET_SPEEDUP},
    }
    print(table(rows))
    for family, r in ratio.items():
        print(f"{family}: parallel / chunk time = {r['ratio']:.1f}x at T = {r['T']}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "cpu_forms.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "cpu_forms.md").write_text(markdown(report))
        print(f"wrote {out / 'cpu_forms.json'} and {out / 'cpu_forms.md'}")


if __name__ == "__main__":
    main()
