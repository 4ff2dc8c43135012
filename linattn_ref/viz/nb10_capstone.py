"""Notebook 10: what a query retrieves from softmax attention and from a linear state, and the recall results.

`recall_view` computes, for one MQAR sequence with random unit keys, what one query gets back: softmax attention's
weights over the pairs, and the linear state's read-out q S = sum_i (q . k_i) v_i over the pairs' values (one-hot).
With more pairs than key dimensions the keys cannot all be orthogonal, and the read-out mixes in other pairs'
values (crosstalk); softmax attention keeps every key and still picks the right one.
"""
import json
from pathlib import Path

import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ..linear_attention import linear_attention_chunk
from ..softmax_attention import softmax_attention_parallel

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "capstone_mqar.json"
COLORS = {"softmax": "C0", "linear": "C1", "retnet": "C2", "gla": "C3"}


def recall_view(n_pairs=8, d_key=4, query=0, seed=0, sharpness=8.0):
    """One sequence of n_pairs pairs with random unit keys in R^d_key and one-hot values; the query asks for pair
    `query`. Returns {"softmax": weights over the pairs [n_pairs], "linear": the read-out q S [n_pairs] (the
    weight each pair's value gets), "answer": query, "crosstalk": the largest weight of a wrong pair relative to
    the right one in the linear read-out}. sharpness multiplies q for softmax (a trained model's large logits).
    """
    if not 0 <= query < n_pairs:
        raise ValueError(f"query must be one of the pairs 0..{n_pairs - 1}, got {query!r}")
    gen = torch.Generator().manual_seed(seed)
    keys = torch.nn.functional.normalize(torch.randn(n_pairs, d_key, generator=gen, dtype=torch.float64), dim=-1)
    values = torch.eye(n_pairs, dtype=torch.float64)
    q = keys[query].expand(n_pairs, d_key)  # the query token repeats its key; ask at every position, read the last
    soft = softmax_attention_parallel(q * sharpness, keys, values, scale=1.0)[-1]
    linear = linear_attention_chunk(q, keys, values, feature_map=None, normalize=False, scale=1.0)[-1]
    wrong = torch.cat([linear[:query], linear[query + 1:]])
    crosstalk = (wrong.abs().max() / linear[query]).item() if n_pairs > 1 else 0.0
    return {"softmax": soft, "linear": linear, "answer": query, "crosstalk": crosstalk}


def mean_crosstalk(n_pairs, d_key, seeds=range(20)):
    """The crosstalk of `recall_view` averaged over queries and seeds: it grows once n_pairs exceeds d_key."""
    values = [recall_view(n_pairs, d_key, q, s)["crosstalk"] for s in seeds for q in range(n_pairs)]
    return sum(values) / len(values)


def plot_recall_view(n_pairs=8, d_key=4, query=0, seed=0):
    view = recall_view(n_pairs, d_key, query, seed)
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    soft_ax, lin_ax = fig.subplots(1, 2, sharex=True)
    pairs = range(n_pairs)
    colors = ["C2" if i == query else "0.6" for i in pairs]
    soft_ax.bar(pairs, view["softmax"].numpy(), color=colors)
    soft_ax.set_title(f"softmax attention: weight on each pair (query: pair {query})")
    soft_ax.set_ylim(0, 1.02)
    lin_ax.bar(pairs, view["linear"].numpy(), color=colors)
    lin_ax.axhline(0, color="k", lw=0.5)
    lin_ax.set_title(f"linear state q S, d_key = {d_key} (crosstalk {view['crosstalk']:.2f})")
    for ax in (soft_ax, lin_ax):
        ax.set_xlabel("pair i (green: the right answer)")
    soft_ax.set_ylabel("weight")
    return fig


def recall_widget(seed=0):
    """Sliders for the queried pair, the number of pairs and the key dimension; redraws `plot_recall_view`."""
    def show(n_pairs, d_key, query):
        fig = plot_recall_view(n_pairs, d_key, min(query, n_pairs - 1), seed)
        display(fig)
        return fig
    return widgets.interactive(
        show,
        n_pairs=widgets.IntSlider(value=8, min=2, max=16, description="pairs"),
        d_key=widgets.IntSlider(value=4, min=2, max=16, description="d_key"),
        query=widgets.IntSlider(value=0, min=0, max=15, description="query"),
    )


def load_results(path=RESULTS):
    """The committed full run (benchmarks/capstone_mqar.py), or None where the file is missing."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def accuracy_curves(records):
    """{kind: (pair counts, accuracies)} of the main comparison (records at the default d_key)."""
    curves = {}
    for r in records:
        pairs = sorted(int(n) for n in r["accuracy"])
        curves[r["kind"]] = (pairs, [r["accuracy"][n] if n in r["accuracy"] else r["accuracy"][str(n)]
                                     for n in pairs])
    return curves


def state_points(records, n_pairs):
    """[(state size, accuracy at n_pairs, label)] of every record, for the accuracy-against-state-size plot."""
    out = []
    for r in records:
        acc = r["accuracy"].get(n_pairs, r["accuracy"].get(str(n_pairs)))
        if acc is not None:
            out.append((r["state_size"], acc, f"{r['kind']} d_key={r['d_key']}"))
    return sorted(out)


def plot_results(mixers, sweep, committed=None, label="this run"):
    """Left: accuracy against the number of pairs, per mixer. Right: accuracy at the most pairs against the state
    size (linear attention with a growing d_key, and each mixer). Solid: this run; faded dashed: the committed run."""
    fig = Figure(figsize=(13, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    runs = [(label, mixers, sweep, "-", 1.0)] if mixers else []
    if committed:
        runs.append(("committed run", committed["mixers"], committed["feature_sweep"], "--", 0.45))
    most = max((int(n) for _, mix, *_ in runs for r in mix for n in r["accuracy"]), default=0)
    for label, mix, swp, style, alpha in runs:
        for kind, (pairs, accs) in accuracy_curves(mix).items():
            left.plot(pairs, accs, style, marker="o", color=COLORS[kind], alpha=alpha, label=f"{kind} ({label})")
        linear = [p for p in state_points(swp, most) if p[2].startswith("linear")]
        right.plot([p[0] for p in linear], [p[1] for p in linear], style, marker="s", color=COLORS["linear"],
                   alpha=alpha, label=f"linear, d_key growing ({label})")
        for size, acc, name in state_points(mix, most):
            right.plot([size], [acc], marker="o", color=COLORS[name.split()[0]], alpha=alpha, linestyle="none")
            if alpha == 1.0:
                right.annotate(name.split()[0], (size, acc), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set_xlabel("key-value pairs in the sequence")
    left.set_ylabel("recall accuracy (held-out)")
    left.set_ylim(-0.02, 1.02)
    left.set_title("recall against the number of pairs")
    if runs:
        left.legend(fontsize=7)
        right.legend(fontsize=7)
    right.set_xscale("log", base=2)
    right.set_xlabel("numbers kept to generate the next token (all layers; softmax: the KV cache)")
    right.set_ylabel(f"accuracy with {most} pairs")
    right.set_ylim(-0.02, 1.02)
    right.set_title("recall against state size")
    return fig


def plot_losses(records):
    """Training loss against step, one line per model (a running mean over 20 steps)."""
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.subplots()
    for r in records:
        loss = torch.tensor(r["loss"])
        smooth = loss.unfold(0, min(20, len(loss)), 1).mean(-1) if len(loss) else loss
        ax.plot(smooth.numpy(), color=COLORS.get(r["kind"]), label=f"{r['kind']} d_key={r['d_key']}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross entropy at the queries")
    ax.set_yscale("log")
    if records:
        ax.legend(fontsize=8)
    return fig
