"""Pictures and widgets for notebook 03, kernelized linear attention.

Data functions compute what a figure shows; plot_* draw it on a matplotlib Figure; cost_widget() redraws
the cost curves from sliders (its `.result` is the data behind the current picture).

Costs count one attention head with d_k = d_v = d, in multiply-adds, and the extra memory each order
holds besides q, k, v and the output:
    quadratic order (Q'K'^T) V:  T^2 d + T^2 d multiply-adds, a T x T score matrix;
    linear order    Q'(K'^T V):  T d^2 + T d^2 multiply-adds, a d x d summary K'^T V.
Softmax attention has the quadratic costs (its softmax forbids the other order).
"""
import math
import time

import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from ..feature_maps import elu_plus_one
from ..linear_attention import linear_attention_parallel


def _lengths(T_max, T_min=16, points_per_octave=4):
    """Whole sequence lengths from T_min to T_max, evenly spaced on a log scale."""
    if T_max < T_min:
        raise ValueError(f"T_max must be at least {T_min}, got {T_max}")
    steps = round(points_per_octave * math.log2(T_max / T_min)) + 1
    return torch.logspace(math.log2(T_min), math.log2(T_max), steps, base=2).round().unique()


def attention_costs(d=128, T_max=16384):
    """Multiply-adds and extra memory (numbers held) of both orders, for T from 16 to T_max.

    Returns {"d", "T", "quadratic_macs", "linear_macs", "quadratic_memory", "linear_memory"}; the tensors
    are float64 so that T^2 d does not overflow anything.
    """
    if d < 1:
        raise ValueError(f"d must be a positive integer, got {d}")
    T = _lengths(T_max).double()
    return {
        "d": d,
        "T": T,
        "quadratic_macs": 2 * T**2 * d,  # Q'K'^T, then (T x T) @ V
        "linear_macs": 2 * T * d**2,  # K'^T V, then Q' @ (d x d)
        "quadratic_memory": T**2,  # the score matrix
        "linear_memory": torch.full_like(T, float(d * d)),  # the summary K'^T V, whatever T
    }


def plot_cost_curves(data, mark_T=8192):
    """Left: multiply-adds against T. Right: extra memory against T. Both cross at T = d."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_time, ax_mem = fig.subplots(1, 2)
    T, d = data["T"], data["d"]
    panels = ((ax_time, "macs", "multiply-adds"), (ax_mem, "memory", "numbers held besides q, k, v, o"))
    for ax, key, label in panels:
        ax.loglog(T, data[f"quadratic_{key}"], label="softmax / quadratic order (Q'K'^T)V")
        ax.loglog(T, data[f"linear_{key}"], label="linear order Q'(K'^T V)")
        ax.axvline(d, color="k", ls="--", lw=0.8)
        ax.text(d, 0.97, f" T = d = {d}", va="top", fontsize=8, transform=ax.get_xaxis_transform())
        if T[0] <= mark_T <= T[-1]:
            ax.axvline(mark_T, color="tab:red", ls=":", lw=0.8)
            ax.text(mark_T, 0.03, f"T = {mark_T} ", ha="right", fontsize=8, color="tab:red",
                    transform=ax.get_xaxis_transform())
        ax.set(xlabel="sequence length T", ylabel=label)
    ax_time.set_title(f"time: 2T^2d against 2Td^2 (d = {d})")
    ax_mem.set_title("memory: T^2 scores against a d x d summary")
    ax_time.legend(fontsize=8, loc="lower right")
    return fig


def cost_widget(d=128, T_max=16384):
    """Sliders for the head size d and the longest sequence; the cost curves follow."""

    def draw(d, log2_T_max):
        data = attention_costs(d=d, T_max=2**log2_T_max)
        display(plot_cost_curves(data))
        return data

    d_slider = widgets.IntSlider(value=d, min=16, max=512, step=16, description="d")
    T_slider = widgets.IntSlider(value=T_max.bit_length() - 1, min=8, max=20, description="log2 T_max")
    return widgets.interactive(draw, d=d_slider, log2_T_max=T_slider)


def _best_time(fn, repeats):
    fn()  # warm up: the first call pays for allocations and thread start-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_both_orders(T_values=(256, 512, 1024, 2048, 4096), d=64, repeats=5, seed=0, progress=True):
    """Measured seconds of (Q'K'^T) V and Q'(K'^T V) on this CPU (float32, no mask), best of `repeats`.

    Both give the same matrix (checked here); only the grouping of the two products differs. One thread,
    so that other work on a shared machine disturbs the measurement less.
    """
    gen = torch.Generator().manual_seed(seed)
    quadratic, linear = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for T in tqdm(list(T_values), desc="timing both orders", disable=not progress):
            qp, kp = elu_plus_one(torch.randn(2, T, d, generator=gen)).unbind(0)
            v = torch.randn(T, d, generator=gen)
            if not torch.allclose((qp @ kp.T) @ v, qp @ (kp.T @ v), rtol=1e-4, atol=1e-2):
                raise RuntimeError("the two orders disagree: matrix products are not behaving as expected")
            quadratic.append(_best_time(lambda: (qp @ kp.T) @ v, repeats))
            linear.append(_best_time(lambda: qp @ (kp.T @ v), repeats))
    finally:
        torch.set_num_threads(threads)
    return {"T": torch.tensor(list(T_values)), "d": d, "quadratic_s": torch.tensor(quadratic),
            "linear_s": torch.tensor(linear)}


def plot_timings(data):
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.loglog(data["T"], data["quadratic_s"] * 1e3, "o-", label="(Q'K'^T) V")
    ax.loglog(data["T"], data["linear_s"] * 1e3, "o-", label="Q'(K'^T V)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(data["T"].tolist(), [str(T) for T in data["T"].tolist()])
    ax.set(xlabel="sequence length T", ylabel="milliseconds (best of a few runs)",
           title=f"Measured on this CPU (one thread), d = {data['d']}")
    ax.legend()
    return fig


def output_norms(T=512, d=16, seed=0):
    """Size of each causal output o_i, with and without the denominator q'_i . nu_i.

    Values have a non-zero mean (as real values often do), keys and queries go through elu + 1.
    Returns {"i", "normalized", "unnormalized"}: the Euclidean norm of every output row, and
    "largest_value": the longest value vector (no weighted average of the values can be longer).
    """
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, T, d, generator=gen, dtype=torch.float64).unbind(0)
    v = torch.randn(T, d, generator=gen, dtype=torch.float64) + 0.5
    with_denominator = linear_attention_parallel(q, k, v)
    without_denominator = linear_attention_parallel(q, k, v, normalize=False)
    return {"i": torch.arange(T), "normalized": with_denominator.norm(dim=-1),
            "unnormalized": without_denominator.norm(dim=-1), "largest_value": v.norm(dim=-1).max().item()}


def plot_output_norms(data):
    fig = Figure(figsize=(6, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(data["i"], data["unnormalized"], label="o_i = q'_i mu_i (no denominator)")
    ax.plot(data["i"], data["normalized"], label="o_i = q'_i mu_i / q'_i nu_i")
    ax.axhline(data["largest_value"], color="k", ls="--", lw=0.8, label="the longest value v_j")
    ax.set(xlabel="position i", ylabel="||o_i||", yscale="log", title="What the denominator does")
    ax.legend()
    return fig
