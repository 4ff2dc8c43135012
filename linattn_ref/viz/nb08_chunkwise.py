"""Pictures and widgets for notebook 08, the chunkwise parallel form.

Data functions compute what a figure shows with linattn_ref; plot_* draw it on a matplotlib Figure;
partition_widget() redraws the chunk picture from sliders (its `.result` is the data behind the current picture).
"""
import time

import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter
from tqdm.auto import tqdm

from .._validate import check_chunk_size, check_length
from ..chunk import chunk_boundaries
from ..masks import causal_mask
from ..retnet import retention_chunk, retention_parallel, retention_recurrent

# What each (query i, key j) pair of the T x T score matrix is in the chunked form.
FUTURE, STATE, INTRA = 0, 1, 2
PAIR_COLORS = ListedColormap(["white", "tab:blue", "tab:orange"])


def chunk_partition(T=32, chunk_size=8, query=13):
    """Label every pair (i, j): FUTURE (j > i, masked), STATE (j in an earlier chunk than i: reaches query i
    only through the state carried into i's chunk) or INTRA (same chunk, j <= i: an explicit score in the
    chunk's small masked attention).

    Also returns the chunk holding `query`, its bounds, and how many pairs each part covers.
    """
    check_length(T)
    check_chunk_size(chunk_size)
    if not 0 <= query < T:
        raise ValueError(f"query={query} is outside the sequence 0..{T - 1}")
    bounds = chunk_boundaries(T, chunk_size)
    chunk_of = torch.empty(T, dtype=torch.long)
    for n, (start, end) in enumerate(bounds):
        chunk_of[start:end] = n
    same_chunk = chunk_of.view(-1, 1) == chunk_of.view(1, -1)
    visible = causal_mask(T)
    labels = torch.full((T, T), FUTURE)
    labels[visible & ~same_chunk] = STATE
    labels[visible & same_chunk] = INTRA
    n = int(chunk_of[query])
    return {"T": T, "chunk_size": chunk_size, "query": query, "labels": labels, "bounds": bounds,
            "chunk": n, "chunk_start": bounds[n][0], "chunk_end": bounds[n][1],
            "state_pairs": int((labels == STATE).sum()), "intra_pairs": int((labels == INTRA).sum())}


def plot_chunk_partition(data):
    start, end, i = data["chunk_start"], data["chunk_end"], data["query"]
    fig = Figure(figsize=(6.2, 5.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(data["labels"].numpy(), cmap=PAIR_COLORS, vmin=0, vmax=2, interpolation="nearest")
    for s, _ in data["bounds"][1:]:  # chunk borders on both axes
        ax.axhline(s - 0.5, color="k", lw=0.6)
        ax.axvline(s - 0.5, color="k", lw=0.6)
    ax.add_patch(Rectangle((-0.5, i - 0.5), i + 1, 1, fill=False, ec="red", lw=2))
    ax.add_patch(Rectangle((start - 0.5, start - 0.5), end - start, end - start, fill=False, ec="k", lw=2))
    via_state = f"keys 0..{start - 1} via the state S_[{data['chunk']}]" if start > 0 else "no earlier chunk"
    ax.set(xlabel="key j", ylabel="query i",
           title=f"C = {data['chunk_size']}: query {i} is in chunk {data['chunk']} ({start}..{end - 1})\n"
                 f"{via_state}; keys {start}..{i} inside the chunk")
    ax.legend(handles=[Rectangle((0, 0), 1, 1, color="tab:blue", label=f"through the state ({data['state_pairs']})"),
                       Rectangle((0, 0), 1, 1, color="tab:orange",
                                 label=f"intra-chunk scores ({data['intra_pairs']})"),
                       Rectangle((0, 0), 1, 1, fill=False, ec="red", lw=2, label=f"query {i}")],
              loc="upper right", fontsize=8)
    return fig


def partition_widget(T=32):
    """Sliders for the chunk size C and the query position i; the partition of the score matrix follows."""

    def draw(chunk_size, query):
        data = chunk_partition(T, chunk_size, query)
        display(plot_chunk_partition(data))
        return data

    chunk_size = widgets.IntSlider(value=8, min=1, max=T, description="C")
    query = widgets.IntSlider(value=13, min=0, max=T - 1, description="query i")
    return widgets.interactive(draw, chunk_size=chunk_size, query=query)


def cost_model(T, chunk_size, d):
    """Multiply-adds, up to constant factors, of the chunked form: T*C*d inside the chunks + T*d^2 for the states;
    against T^2*d for the parallel form (T*d^2 for the recurrent one, but in T sequential steps)."""
    return {"intra": T * chunk_size * d, "state": T * d * d, "parallel": T * T * d}


def plot_cost_model(T=8192, d=128, chunk_sizes=(16, 32, 64, 128, 256, 512, 1024)):
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    costs = [cost_model(T, c, d) for c in chunk_sizes]
    ax.loglog(chunk_sizes, [c["intra"] for c in costs], "o-", label="intra-chunk: T C d")
    ax.loglog(chunk_sizes, [c["state"] for c in costs], "s-", label="states: T d^2")
    ax.loglog(chunk_sizes, [c["intra"] + c["state"] for c in costs], "k-", lw=2, label="chunked total")
    ax.axhline(costs[0]["parallel"], color="tab:red", ls="--", label="parallel: T^2 d")
    ax.set(xlabel="chunk size C", ylabel="multiply-adds", title=f"Cost model, T = {T}, d = {d}")
    ax.set_xticks(chunk_sizes, [str(c) for c in chunk_sizes], minor=False)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)
    return fig


def time_forms(lengths=(256, 512, 1024, 2048, 4096), d=32, chunk_size=64, gamma=0.99, repeats=3, seed=0):
    """CPU wall-clock seconds (best of `repeats`) of parallel, recurrent and chunked retention as T grows."""
    gen = torch.Generator().manual_seed(seed)
    forms = {
        "parallel": lambda q, k, v: retention_parallel(q, k, v, gamma),
        "recurrent": lambda q, k, v: retention_recurrent(q, k, v, gamma),
        "chunk": lambda q, k, v: retention_chunk(q, k, v, gamma, chunk_size=chunk_size),
    }
    seconds = {name: [] for name in forms}
    with tqdm(total=len(lengths) * len(forms), desc="timing") as bar:
        for T in lengths:
            q, k, v = torch.randn(3, T, d, generator=gen).unbind(0)
            for name, form in forms.items():
                best = float("inf")
                for _ in range(repeats):
                    begin = time.perf_counter()
                    form(q, k, v)
                    best = min(best, time.perf_counter() - begin)
                seconds[name].append(best)
                bar.update()
    return {"T": list(lengths), "d": d, "chunk_size": chunk_size, "seconds": seconds}


def plot_timings(data):
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    for name, secs in data["seconds"].items():
        ax.loglog(data["T"], [1e3 * s for s in secs], "o-", label=name)
    ax.set(xlabel="sequence length T", ylabel="milliseconds (CPU)",
           title=f"Retention on this CPU, d = {data['d']}, C = {data['chunk_size']}")
    ax.set_xticks(data["T"], [str(t) for t in data["T"]], minor=False)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend()
    return fig
