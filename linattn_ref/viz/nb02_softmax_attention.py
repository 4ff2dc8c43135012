"""Notebook 02: what decoding with a KV cache costs as the sequence grows.

Data functions compute what a figure shows (with `linattn_ref`); `plot_cache_growth` returns a matplotlib
Figure; `cache_growth_widget` redraws it from sliders (its `.result` is the data behind the picture).
"""
import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ..masks import num_visible_keys
from ..softmax_attention import kv_cache_bytes

GIB = 2 ** 30


def cache_growth(T=16384, n_layers=24, n_heads=16, d_head=64, bytes_per_element=2, batch_size=1, points=65):
    """The cost of decoding token t = 1..T (sampled at about `points` lengths, spaced evenly in log t).

    Returns tokens [points] (sequence length after the step), cache_gib (KV cache size then),
    keys_met (dot products the newest query computes: one per cached key) and
    products (all dot products computed so far, the sum of keys_met over every earlier step).
    """
    tokens = torch.logspace(0, torch.log10(torch.tensor(float(T))), points).round().long().unique()
    keys_met_each = torch.tensor([num_visible_keys(T, i) for i in range(T)], dtype=torch.float64)
    products_so_far = keys_met_each.cumsum(0)
    cache = [kv_cache_bytes(int(t), n_layers, n_heads, d_head, bytes_per_element, batch_size) for t in tokens]
    return {"tokens": tokens, "cache_gib": torch.tensor(cache, dtype=torch.float64) / GIB,
            "keys_met": keys_met_each[tokens - 1], "products": products_so_far[tokens - 1],
            "model": dict(n_layers=n_layers, n_heads=n_heads, d_head=d_head, bytes_per_element=bytes_per_element,
                          batch_size=batch_size)}


def plot_cache_growth(data):
    """Left: KV cache size against sequence length. Right: dot products of the newest token and in total."""
    m = data["model"]
    tokens = data["tokens"].numpy()
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax_cache, ax_cost = fig.subplots(1, 2)
    ax_cache.plot(tokens, data["cache_gib"].numpy(), color="tab:red")
    ax_cache.set(xlabel="tokens in the sequence", ylabel="KV cache (GiB)",
                 title=(f"KV cache: {m['n_layers']} layers x {m['n_heads']} heads x d={m['d_head']}, "
                        f"{8 * m['bytes_per_element']}-bit, batch {m['batch_size']}"))
    ax_cost.plot(tokens, data["keys_met"].numpy(), color="tab:blue", label="keys met by the newest token")
    ax_cost.set(xlabel="tokens in the sequence", ylabel="dot products per head", xscale="log", yscale="log",
                title="per token: linear (slope 1); in total: quadratic (slope 2)")
    ax_cost.plot(tokens, data["products"].numpy(), color="tab:orange", label="all dot products so far")
    ax_cost.legend()
    return fig


def cache_growth_widget():
    """Sliders for the model's shape, the precision, the batch and the sequence length."""
    def draw(T, n_layers, n_heads, d_head, bytes_per_element, batch_size):
        data = cache_growth(T, n_layers, n_heads, d_head, bytes_per_element, batch_size)
        display(plot_cache_growth(data))
        return data

    return widgets.interactive(
        draw,
        T=widgets.IntSlider(value=16384, min=1024, max=131072, step=1024, description="tokens T"),
        n_layers=widgets.IntSlider(value=24, min=1, max=96, description="layers"),
        n_heads=widgets.IntSlider(value=16, min=1, max=64, description="KV heads"),
        d_head=widgets.Dropdown(options=[32, 64, 128, 256], value=64, description="d_head"),
        bytes_per_element=widgets.Dropdown(options=[("8-bit", 1), ("16-bit", 2), ("32-bit", 4)], value=2,
                                           description="precision"),
        batch_size=widgets.IntSlider(value=1, min=1, max=64, description="batch"),
    )
