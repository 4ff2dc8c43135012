"""Notebook 01: the causal mask, the query-key pairs it allows, and what a leaky mask lets through.

Data functions compute what a figure shows (with `linattn_ref.masks`); `plot_*` return a matplotlib Figure;
`mask_explorer_widget` redraws the mask explorer from sliders (its `.result` is the data behind the picture).
"""
import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..masks import causal_mask, masked_scores, num_visible_keys, qk_pairs

MAX_T = 64  # tokens are drawn once for this many positions, so token j is the same whatever T is shown


def random_qk(T, d=4, seed=0):
    """q, k: [T, d] float64, reproducible; the first T of one fixed longer sequence, so growing T only
    appends tokens and never changes the earlier ones (as causality promises)."""
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, max(T, MAX_T), d, generator=gen, dtype=torch.float64).unbind(0)
    return q[:T], k[:T]


def mask_explorer_data(T=8, i=3, d=4, seed=0):
    """What query i of a length-T sequence computes: its pairs, its masked scores and its softmax weights.

    Returns mask [T, T] (bool), pairs [(i, 0), ..., (i, i)], scores [T] (q_i . k_j * d**-0.5, -inf for j > i),
    weights [T] (softmax of the scores: zero on the future) and keys_met = i + 1.
    """
    q, k = random_qk(T, d, seed)
    scores = masked_scores(q, k)[i]
    return {"T": T, "i": i, "mask": causal_mask(T), "pairs": [p for p in qk_pairs(T) if p[0] == i],
            "scores": scores, "weights": torch.softmax(scores, dim=-1), "keys_met": num_visible_keys(T, i)}


def plot_mask_explorer(data):
    """Left: the mask, query i's row framed. Right: query i's scores and softmax weights over the keys."""
    T, i = data["T"], data["i"]
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_mask, ax_row = fig.subplots(1, 2, width_ratios=[1, 1.3])
    ax_mask.imshow(data["mask"].int().numpy(), cmap=ListedColormap(["0.92", "tab:green"]), vmin=0, vmax=1)
    ax_mask.add_patch(Rectangle((-0.5, i - 0.5), T, 1, fill=False, edgecolor="k", linewidth=2))  # query i's row
    for _, j in data["pairs"]:
        ax_mask.text(j, i, f"q{i}k{j}", ha="center", va="center", fontsize=7 if T <= 8 else 5, color="white")
    ax_mask.set(title=f"causal mask, T={T}: green = computed", xlabel="key j", ylabel="query i",
                xticks=range(T), yticks=range(T))

    keys = range(T)
    ax_row.bar(keys, data["weights"].numpy(), color=["tab:green" if j <= i else "0.8" for j in keys])
    for j, s in zip(keys, data["scores"].tolist()):
        label = f"{s:.2f}" if s != float("-inf") else "-inf"
        ax_row.text(j, float(data["weights"][j]) + 0.02, label, ha="center", fontsize=7)
    ax_row.set(title=f"query {i} meets {data['keys_met']} keys: softmax weights (scores above)",
               xlabel="key j", ylabel="weight", xticks=keys, ylim=(0, 1.12))
    return fig


def mask_explorer_widget(T=8, i=3, max_T=12):
    """Sliders for the sequence length T and the query position i (kept inside 0..T-1)."""
    length = widgets.IntSlider(value=T, min=1, max=max_T, description="length T")
    query = widgets.IntSlider(value=i, min=0, max=T - 1, description="query i")

    def follow_length(change):
        query.max = change["new"] - 1  # ipywidgets clamps the value into the new range

    length.observe(follow_length, names="value")

    def draw(T, i):
        data = mask_explorer_data(T, min(i, T - 1))
        display(plot_mask_explorer(data))
        return data

    return widgets.interactive(draw, T=length, i=query)


def future_weight(scores_fn, T=8, d=4, seed=0):
    """For each query i, the total softmax weight that `scores_fn(q, k)` puts on keys j > i.

    A causal score function gives zeros; anything above zero is information flowing back from the future.
    """
    q, k = random_qk(T, d, seed)
    weights = torch.softmax(scores_fn(q, k), dim=-1)
    return weights.masked_fill(causal_mask(T), 0.0).sum(-1)


def plot_future_weight(named):
    """Bars of `future_weight` per query position, one group per score function {name: [T] tensor}."""
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(named)
    for n, (name, weight) in enumerate(named.items()):
        positions = torch.arange(len(weight)) + (n - (len(named) - 1) / 2) * width
        ax.bar(positions.numpy(), weight.numpy(), width=width, label=name)
    ax.set(title="weight each query puts on future keys (must be 0)", xlabel="query i",
           ylabel="weight on keys j > i", ylim=(0, 1))
    ax.legend()
    return fig
