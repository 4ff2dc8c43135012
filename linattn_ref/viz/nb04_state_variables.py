"""Pictures and widgets for notebook 04, the state variables mu and nu.

Data functions compute what a figure shows with linattn_ref; plot_* draw it on a matplotlib Figure;
state_widget() steps through the positions of a sequence (its `.result` is the data behind the picture).
"""
import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ..feature_maps import elu_plus_one
from ..linear_attention import state_variables
from ..memory import RunningSum, memory_numel
from ..softmax_attention import kv_cache_bytes


def random_sequence(T=12, d_k=4, d_v=4, seed=0):
    """Keys k [T, d_k] and values v [T, d_v] of a small example sequence."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(T, d_k, generator=gen), torch.randn(T, d_v, generator=gen)


def state_and_cache(k, v, i, feature_map=elu_plus_one):
    """What each kind of attention keeps after reading tokens 0..i.

    Linear attention keeps mu_i [d_k, d_v] and nu_i [d_k] (of k' = phi(k)); softmax attention keeps
    the KV cache, every key and value so far: [i + 1, d_k] and [i + 1, d_v]. The colour limits cover the
    whole sequence, so that stepping through it shows the state grow.
    """
    T = k.shape[0]
    if not 0 <= i < T:
        raise ValueError(f"position i={i} is outside the sequence 0..{T - 1}")
    mu, nu = state_variables(feature_map(k), v)
    return {"i": i, "T": T, "mu": mu[i], "nu": nu[i], "k_cache": k[: i + 1], "v_cache": v[: i + 1],
            "state_numel": mu[i].numel() + nu[i].numel(), "cache_numel": k[: i + 1].numel() + v[: i + 1].numel(),
            "mu_limit": mu.abs().max().item(), "nu_limit": nu.max().item(),
            "cache_limit": max(k.abs().max().item(), v.abs().max().item())}


def plot_state_and_cache(data):
    """mu_i and nu_i beside the KV cache, drawn on a canvas as tall as the whole sequence."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_mu, ax_nu, ax_cache = fig.subplots(1, 3, width_ratios=[4, 1, 4])
    im = ax_mu.imshow(data["mu"].numpy(), cmap="PuOr", vmin=-data["mu_limit"], vmax=data["mu_limit"])
    d_k, d_v = data["mu"].shape
    ax_mu.set(title=f"mu_{data['i']}  (d_k x d_v)", xlabel="value dimension", ylabel="key dimension",
              xticks=range(d_v), yticks=range(d_k))
    fig.colorbar(im, ax=ax_mu, shrink=0.8)
    im = ax_nu.imshow(data["nu"].unsqueeze(-1).numpy(), cmap="Greens", vmin=0.0, vmax=data["nu_limit"])
    ax_nu.set(title=f"nu_{data['i']}", xticks=[], yticks=range(d_k), ylabel="key dimension")
    fig.colorbar(im, ax=ax_nu, shrink=0.8)
    T = data["T"]
    cache = torch.full((T, d_k + d_v), float("nan"))  # rows not yet written stay blank
    cache[: data["i"] + 1] = torch.cat([data["k_cache"], data["v_cache"]], dim=1)
    ax_cache.imshow(cache.numpy(), cmap="coolwarm", aspect="auto", vmin=-data["cache_limit"], vmax=data["cache_limit"])
    ax_cache.axvline(d_k - 0.5, color="k", lw=1)
    ax_cache.set(title=f"KV cache: {data['i'] + 1} key(s) | {data['i'] + 1} value(s)", xlabel="k | v",
                 ylabel="position j")
    fig.suptitle(f"after token {data['i']}: the state holds {data['state_numel']} numbers, "
                 f"the KV cache {data['cache_numel']}")
    return fig


def state_widget(k=None, v=None):
    """A slider over the positions i; the picture shows mu_i, nu_i and the KV cache after token i."""
    if k is None or v is None:
        k, v = random_sequence()

    def draw(i):
        data = state_and_cache(k, v, i)
        display(plot_state_and_cache(data))
        return data

    slider = widgets.IntSlider(value=0, min=0, max=k.shape[0] - 1, description="position i")
    return widgets.interactive(draw, i=slider)


def state_bytes(n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
    """Bytes of linear attention's (mu, nu) for a whole model: one RunningSum memory per head and layer."""
    per_head = memory_numel(RunningSum().init(d_head, d_head))
    return batch_size * n_layers * n_heads * per_head * bytes_per_element


def memory_vs_length(T_values=(1024, 4096, 16384, 32768, 65536, 131072), n_layers=32, n_heads=32, d_head=128,
                     bytes_per_element=2):
    """KV cache bytes (softmax attention) and state bytes (linear attention) of one sequence at each T."""
    cache = [kv_cache_bytes(T, n_layers, n_heads, d_head, bytes_per_element) for T in T_values]
    state = state_bytes(n_layers, n_heads, d_head, bytes_per_element)
    return {"T": list(T_values), "kv_cache_bytes": cache, "state_bytes": [state] * len(T_values),
            "model": f"{n_layers} layers x {n_heads} heads of {d_head}, {8 * bytes_per_element}-bit numbers"}


def plot_memory_vs_length(data):
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    gib = 2**30
    ax.loglog(data["T"], [b / gib for b in data["kv_cache_bytes"]], "o-", label="KV cache (softmax attention)")
    ax.loglog(data["T"], [b / gib for b in data["state_bytes"]], "o-", label="mu, nu (linear attention)")
    ax.set_xticks(data["T"], [f"{T // 1024}k" if T % 1024 == 0 else str(T) for T in data["T"]])
    ax.minorticks_off()
    ax.set(xlabel="tokens in the context T", ylabel="GiB per sequence", title=data["model"])
    ax.legend()
    return fig
