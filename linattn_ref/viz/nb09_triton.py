"""Notebook 09: a known-answer kernel for the environment, the tiles a chunk kernel walks, and GPU timings.

This module defines a Triton kernel, so on a machine without a GPU it must be imported after
TRITON_INTERPRET=1 is set (the notebook's first cell does both, in that order).

    check_triton       runs a tiny kernel with a known answer; an installation fault is named as such
    tile_walk          what one program of the chunk kernel reads, holds and writes at one step of its loop
    attention_cases    the methods the notebook times: your kernel, the course's kernels, torch's baselines
    benchmark          times functions against T (on a GPU, with triton.testing.do_bench)
    load_gpu_results   the committed results of benchmarks/triton_gpu.py, in benchmark's format
Data functions return plain dicts; plot_* return a matplotlib Figure; tile_walk_widget() redraws from sliders
(its `.result` is the data behind the current picture).
"""
import json
import os
import sys
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from IPython.display import display
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter
from tqdm.auto import tqdm

from .._validate import check_chunk_size, check_length
from ..chunk import chunk_gated_linear_attention
from ..linear_attention import linear_attention_parallel
from ..retnet import multiscale_gammas
from ..triton import families

GPU_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "triton_gpu.json"

# ---------------------------------------------------------------- the environment


@triton.jit
def _add_kernel(x, y, out, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out + offsets, tl.load(x + offsets, mask=mask) + tl.load(y + offsets, mask=mask), mask=mask)


def interpreted():
    """True when this module's kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1 when it was imported)."""
    return not isinstance(_add_kernel, triton.runtime.JITFunction)


def _environment():
    return (f"triton {triton.__version__}, numpy {np.__version__}, torch {torch.__version__}, python "
            f"{sys.version.split()[0]}, TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '(unset)')}, "
            f"kernels {'interpreted on the CPU' if interpreted() else 'compiled for the GPU'}")


def check_triton(device="cpu", n=1000, block=256):
    """Add two vectors with a 4-line kernel and compare with the known sum; returns a one-line report.

    Raises RuntimeError when Triton fails or gets the sum wrong: that is the installation, not the learner.
    """
    x = torch.arange(n, dtype=torch.float32, device=device)
    y = 2 * x
    out = torch.zeros_like(x)
    fault = ("Your Triton installation {what}; this is not your code, it is the environment ({env}). "
             "Restart the notebook's kernel and run the first cell before anything else (TRITON_INTERPRET=1 must "
             "be set before triton defines a kernel); if that does not help, install the course's pinned "
             "versions (pip install -e . in a fresh environment: some triton / numpy pairs make the interpreter "
             "return zeros).")
    try:
        _add_kernel[(triton.cdiv(n, block),)](x, y, out, n, BLOCK=block)
    except Exception as err:
        raise RuntimeError(fault.format(what=f"cannot run a known-answer kernel ({type(err).__name__}: {err})",
                                        env=_environment())) from err
    if not torch.equal(out, 3 * x):
        wrong = int((out != 3 * x).sum())
        raise RuntimeError(fault.format(what=f"returns wrong results on a known-answer kernel ({wrong} of {n} sums"
                                             " are wrong)", env=_environment()))
    return f"Triton works: {triton.cdiv(n, block)} programs added {n} numbers correctly ({_environment()})."


# ---------------------------------------------------------------- the tile walk

# What a row of q, k, v or o is for one program at one step of its loop over the chunks.
OTHER, AHEAD, DONE, NOW = 0, 1, 2, 3
ROW_COLORS = ListedColormap(["#eeeeee", "#c6dbef", "#4292c6", "tab:orange"])
ROW_WORDS = {OTHER: "other programs' sequences", AHEAD: "this program, later chunks",
             DONE: "read earlier (k, v: now inside S) / o written", NOW: "the chunk loaded (o: written) now"}


def tile_walk(program=1, chunk=2, batch=2, heads=2, T=64, chunk_size=16, d_k=32, d_v=32, bytes_per_element=4):
    """What program `program` of the state-carrying chunk kernel touches at step `chunk` of its loop.

    The kernel runs one program per sequence (batch x heads of them); inputs are stored as [B*H, T, d], so
    program n's rows are n*T .. n*T + T - 1, and its q pointer starts n*T*d_k elements into q. At step c it
    loads rows c*C .. c*C + C - 1 of its sequence from q, k and v, writes the same rows of o, and holds the
    state S [d_k, d_v] (the sum of k_j^T v_j over the keys of chunks 0..c-1) in registers.
    """
    check_length(T)
    check_chunk_size(chunk_size)
    n_seq, n_chunks = batch * heads, -(-T // chunk_size)
    if not 0 <= program < n_seq:
        raise ValueError(f"program={program} is outside the grid: programs 0..{n_seq - 1} (batch x heads)")
    if not 0 <= chunk < n_chunks:
        raise ValueError(f"chunk={chunk} is outside the loop: chunks 0..{n_chunks - 1} of T={T}")
    start, end = chunk * chunk_size, min((chunk + 1) * chunk_size, T)
    labels = torch.full((n_seq * T,), OTHER)
    mine = slice(program * T, (program + 1) * T)
    labels[mine] = AHEAD
    labels[program * T:program * T + start] = DONE
    labels[program * T + start:program * T + end] = NOW
    read_per_row, written_per_row = (2 * d_k + d_v) * bytes_per_element, d_v * bytes_per_element
    return {"program": program, "batch_index": program // heads, "head": program % heads, "chunk": chunk,
            "batch": batch, "heads": heads, "T": T, "chunk_size": chunk_size, "d_k": d_k, "d_v": d_v,
            "n_programs": n_seq, "n_chunks": n_chunks, "rows": labels, "start": start, "end": end,
            "q_offset": program * T * d_k, "v_offset": program * T * d_v, "state_keys": start,
            "state_shape": (d_k, d_v), "bytes_read": end * read_per_row, "bytes_written": end * written_per_row,
            "bytes_per_program": T * (read_per_row + written_per_row)}


def plot_tile_walk(data):
    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    widths = [data["d_k"], data["d_k"], data["d_v"], data["d_v"], data["d_v"]]
    axes = fig.subplots(1, 5, width_ratios=widths)
    n_rows = data["n_programs"] * data["T"]
    for ax, name, d in zip(axes[:4], ("q", "k", "v", "o"), widths):
        image = data["rows"].view(-1, 1).expand(n_rows, d).numpy()
        ax.imshow(image, cmap=ROW_COLORS, vmin=0, vmax=3, aspect="auto", interpolation="nearest")
        for n in range(1, data["n_programs"]):
            ax.axhline(n * data["T"] - 0.5, color="k", lw=0.8)
        first = data["program"] * data["T"]
        for s in range(data["chunk_size"], data["T"], data["chunk_size"]):  # this program's chunk borders
            ax.axhline(first + s - 0.5, color="white", lw=0.6)
        ax.set_title(f"{name}  [B*H*T, {'d_k' if name in 'qk' else 'd_v'}]", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([n * data["T"] + data["T"] / 2 for n in range(data["n_programs"])],
                      [f"program {n}" for n in range(data["n_programs"])] if name == "q" else [])
    state = axes[4]
    d_k, d_v = data["state_shape"]
    filled = data["state_keys"] > 0
    state.imshow(np.full((d_k, d_v), DONE if filled else OTHER), cmap=ROW_COLORS, vmin=0, vmax=3,
                 interpolation="nearest")
    state.set_xticks([])
    state.set_yticks([])
    state.set_title(f"S [{d_k}, {d_v}]\nin registers", fontsize=9)
    state.set_xlabel(f"keys 0..{data['state_keys'] - 1}" if filled else "zeros (no keys yet)", fontsize=8)
    fig.suptitle(f"program {data['program']} of {data['n_programs']} (batch {data['batch_index']}, head "
                 f"{data['head']}), chunk {data['chunk']} of 0..{data['n_chunks'] - 1}: rows {data['start']}.."
                 f"{data['end'] - 1} of its sequence; its q starts {data['q_offset']} elements in.\n"
                 f"So far it has read {data['bytes_read']:,} bytes and written {data['bytes_written']:,}, of the "
                 f"{data['bytes_per_program']:,} it moves in all", fontsize=9)
    fig.legend(handles=[Patch(color=ROW_COLORS(n), label=ROW_WORDS[n]) for n in (OTHER, AHEAD, DONE, NOW)],
               loc="outside lower center", ncols=4, fontsize=8)
    return fig


def tile_walk_widget(batch=2, heads=2, T=64, chunk_size=16, d_k=32, d_v=32):
    """Sliders for the program id and the step of its loop; the picture of the tiles follows."""

    def draw(program, chunk):
        data = tile_walk(program, chunk, batch, heads, T, chunk_size, d_k, d_v)
        display(plot_tile_walk(data))
        return data

    program = widgets.IntSlider(value=1, min=0, max=batch * heads - 1, description="program")
    chunk = widgets.IntSlider(value=2, min=0, max=-(-T // chunk_size) - 1, description="chunk")
    return widgets.interactive(draw, program=program, chunk=chunk)


# ---------------------------------------------------------------- timings


def do_bench_ms(fn):
    """Median milliseconds of fn on the GPU (triton.testing.do_bench: warm-up, cache flushes, CUDA events)."""
    from triton.testing import do_bench
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def io_bytes(T, batch=4, heads=16, d=128, element_bytes=2):
    """Bytes a forward pass must move at least: q, k and v read once and o written once."""
    return 4 * batch * heads * T * d * element_bytes


def copy_bandwidth_GBps(timer=do_bench_ms, n=1 << 28, device="cuda"):
    """The device's copy bandwidth in GB/s: n float32 numbers read and written once."""
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    return 2 * 4 * n / timer(lambda: dst.copy_(src)) / 1e6


def attention_inputs(T, batch=4, heads=16, d=128, device="cuda", dtype=torch.bfloat16):
    """q, k, v [B, H, T, d] and GLA log-gates logsigmoid(x) / 16 (the usual temperature), seeded by T."""
    gen = torch.Generator(device=device).manual_seed(T)
    q, k, v = (torch.randn(batch, heads, T, d, device=device, generator=gen).to(dtype) for _ in range(3))
    g = F.logsigmoid(torch.randn(batch, heads, T, d, device=device, generator=gen)) / 16
    return q, k, v, g.to(dtype)


def attention_cases(your_kernel=None, batch=4, heads=16, d=128, device="cuda", dtype=torch.bfloat16,
                    chunk_size=64, your_chunk_size=16):
    """{name: setup(T) -> (fn, bytes)} for benchmark: one forward pass of each method on [B, H, T, d] inputs.

    your_kernel(q, k, v, chunk_size) runs in float32 (the notebook's kernels multiply in full float32); the
    course's kernels and torch's baselines run in `dtype`. bytes is io_bytes (GLA also reads its gates).
    """
    gammas = multiscale_gammas(heads)
    autocast = device == "cuda" and dtype in (torch.bfloat16, torch.float16)

    def case(run, dt=dtype, reads_gates=False):
        def setup(T):
            q, k, v, g = attention_inputs(T, batch, heads, d, device, dt)
            moved = io_bytes(T, batch, heads, d, torch.finfo(dt).bits // 8)
            return (lambda: run(q, k, v, g)), moved * (5 / 4 if reads_gates else 1)
        return setup

    def quadratic(q, k, v, g):
        with torch.autocast(device, dtype=dtype, enabled=autocast):  # its matrix products in dtype, as a model's
            return linear_attention_parallel(q, k, v, feature_map=None, normalize=False)

    cases = {}
    if your_kernel is not None:
        cases[f"your kernel (float32, C={your_chunk_size})"] = case(
            lambda q, k, v, g: your_kernel(q, k, v, chunk_size=your_chunk_size), torch.float32)
    cases.update({
        "triton linear": case(lambda q, k, v, g: families.linear_attention_chunk(
            q, k, v, feature_map=None, normalize=False, chunk_size=chunk_size)),
        "triton retention": case(lambda q, k, v, g: families.retention_chunk(q, k, v, gammas, chunk_size=chunk_size)),
        "triton gla": case(lambda q, k, v, g: families.gla_chunk(q, k, v, g, chunk_size=chunk_size), reads_gates=True),
        "torch sdpa (causal)": case(lambda q, k, v, g: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
        "torch masked quadratic": case(quadratic),
        "torch chunk (linear)": case(lambda q, k, v, g: chunk_gated_linear_attention(q, k, v, None, d ** -0.5,
                                                                                      chunk_size)),
    })
    return cases


def benchmark(cases, lengths, timer=do_bench_ms, floor_bytes=None, copy_GBps=None, progress=True):
    """Time each case at each sequence length.

    cases: {name: setup(T) -> (fn, bytes)}: fn runs the method once, bytes is what it must move at least
    (inputs read once, output written once). timer(fn) -> milliseconds. With floor_bytes(T) and copy_GBps
    the result also holds the memory floor: those bytes moved at the device's copy bandwidth.
    Returns {"T": [...], "ms": {name: [...]}, "GBps": {name: [...]}, "errors": {name: message}}; a method that
    fails at some length (out of memory, a kernel that does not compile) gets None there and its error.
    """
    data = {"T": list(lengths), "ms": {}, "GBps": {}, "errors": {}}
    with tqdm(total=len(cases) * len(lengths), desc="timing", disable=not progress) as bar:
        for name, setup in cases.items():
            data["ms"][name], data["GBps"][name] = [], []
            for T in lengths:
                try:
                    fn, moved = setup(T)
                    ms = timer(fn)
                except Exception as err:  # one failing method must not stop the others
                    data["errors"][name] = f"T={T}: {type(err).__name__}: {str(err)[:200]}"
                    ms = moved = None
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                data["ms"][name].append(ms)
                data["GBps"][name].append(None if ms is None else moved / ms / 1e6)
                bar.update()
    if floor_bytes is not None and copy_GBps is not None:
        name = "memory floor (q,k,v,o)"
        data["ms"][name] = [floor_bytes(T) / copy_GBps / 1e6 for T in lengths]
        data["GBps"][name] = [copy_GBps] * len(lengths)
        data["copy_GBps"] = copy_GBps
    return data


def load_gpu_results(path=GPU_RESULTS):
    """The timings of benchmarks/triton_gpu.py (its JSON) in benchmark's format, or None if the file is absent."""
    path = Path(path)
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    rows = result.get("timings")
    if not rows:
        raise ValueError(f"{path} holds no timings (keys: {sorted(result)})")
    lengths = sorted({r["T"] for r in rows})
    cell = {(r["method"], r["T"]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    data = {"T": lengths, "errors": {},
            "ms": {m: [cell[m, T]["ms"] if (m, T) in cell else None for T in lengths] for m in methods},
            "GBps": {m: [cell[m, T]["GBps"] if (m, T) in cell else None for T in lengths] for m in methods},
            "title": f"{result.get('device', 'GPU')}: B={result.get('B')}, H={result.get('H')}, d={result.get('d')}, "
                     f"{result.get('dtype')}"}
    if "ceilings" in result:
        data["copy_GBps"] = result["ceilings"]["copy_TBps"] * 1e3
    return data


def plot_benchmark(data, title=None):
    """Forward time against T (log-log) and the achieved bandwidth, bytes that must move / time."""
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_t, ax_bw = fig.subplots(1, 2)
    for name in data["ms"]:
        points = [(T, ms, bw) for T, ms, bw in zip(data["T"], data["ms"][name], data["GBps"][name]) if ms is not None]
        if not points:
            continue
        Ts, ms, bw = zip(*points)
        floor = name.startswith("memory floor")
        ax_t.plot(Ts, ms, "k--" if floor else "o-", label=name, markersize=3)
        if not floor:
            ax_bw.plot(Ts, bw, "o-", label=name, markersize=3)
    if data.get("copy_GBps"):
        ax_bw.axhline(data["copy_GBps"], color="k", ls="--", label="copy bandwidth")
    for ax, what, unit in ((ax_t, "forward time", "ms"), (ax_bw, "achieved bandwidth (bytes that must move)",
                                                             "GB/s")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(data["T"], [str(T) for T in data["T"]], minor=False)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="sequence length T", ylabel=unit, title=what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax_t.set_yscale("log")
    fig.suptitle(title or data.get("title", ""), fontsize=10)
    return fig
