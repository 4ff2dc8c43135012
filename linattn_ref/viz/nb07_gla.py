"""Pictures and widgets for notebook 07, gated linear attention.

Data functions compute what a figure shows with linattn_ref; plot_* draw it on a matplotlib Figure;
gates_widget() redraws the gate picture from sliders (its `.result` is the data behind the current picture).
"""
import math

import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ..feature_maps import elu_plus_one
from ..gla import gla_chunk, gla_gates, gla_parallel_naive, gla_recurrent, naive_breakdown_length


def random_gate_inputs(T=64, d_model=32, rank=4, d_k=16, seed=0):
    """A token sequence x [T, d_model] and low-rank gate weights w_down [d_model, r], w_up [r, d_k].

    Scaled so that x W_down W_up has entries of about unit size: the bias then sets where the sigmoid sits.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, d_model, generator=gen)
    w_down = torch.randn(d_model, rank, generator=gen) / math.sqrt(d_model)
    w_up = torch.randn(rank, d_k, generator=gen) / math.sqrt(rank)
    return x, w_down, w_up


def gate_data(tau=16.0, bias=0.0, T=64, d_k=16, seed=0):
    """The gates alpha_t = exp(g_t) [T, d_k] and the cumulative decay log10 prod_{1<=s<=t} alpha_s [T, d_k].

    The decay is the share of token 0's contribution k_0^T v_0 still in row c of the state after step t:
    it enters the state at step 0 (after alpha_0 has acted) and is scaled by every later gate.
    """
    x, w_down, w_up = random_gate_inputs(T=T, d_k=d_k, seed=seed)
    g = gla_gates(x, w_down, w_up, torch.full((d_k,), float(bias)), tau=tau)
    log_decay = torch.cat([torch.zeros_like(g[:1]), g[1:].cumsum(0)])
    return {"tau": tau, "bias": bias, "alpha": g.exp(), "log10_decay": log_decay / math.log(10)}


def plot_gates(data, decay_floor=-6.0):
    """Left: gate values over time and key dimension. Right: the cumulative decay they imply (log10)."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_gate, ax_decay = fig.subplots(1, 2)
    im = ax_gate.imshow(data["alpha"].T.numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    ax_gate.set(title=f"gates alpha_t (tau={data['tau']:.3g}, bias={data['bias']:.2g})",
                xlabel="step t", ylabel="key dimension c")
    fig.colorbar(im, ax=ax_gate)
    im = ax_decay.imshow(data["log10_decay"].clamp(min=decay_floor).T.numpy(), aspect="auto", cmap="magma",
                         vmin=decay_floor, vmax=0.0)
    ax_decay.set(title="log10 of prod_{1<=s<=t} alpha_s: what is left of token 0", xlabel="step t",
                 ylabel="key dimension c")
    fig.colorbar(im, ax=ax_decay)
    return fig


def gates_widget():
    """Sliders for the temperature tau and the gate bias; the picture follows."""

    def draw(tau, bias):
        data = gate_data(tau=tau, bias=bias)
        display(plot_gates(data))
        return data

    tau = widgets.FloatLogSlider(value=16.0, base=2, min=0, max=6, step=0.25, description="tau")
    bias = widgets.FloatSlider(value=0.0, min=-4.0, max=4.0, step=0.25, description="bias")
    return widgets.interactive(draw, tau=tau, bias=bias)


def state_norm_data(T=200, d=8, gamma=0.95, tau=16.0, seed=0):
    """Frobenius norm of the state S_t after each step, for three gates on the same keys and values.

    All three are S_t = Diag(exp(g_t)) S_{t-1} + k_t^T v_t: g = 0 (linear attention, no forgetting),
    g = log(gamma) (RetNet's fixed decay) and g from the low-rank gate (GLA). Without a gate every k_t^T v_t
    stays in the sum, so the state keeps growing (like a random walk for zero-mean values).
    """
    gen = torch.Generator().manual_seed(seed)
    q, k = elu_plus_one(torch.randn(2, T, d, generator=gen)).unbind(0)
    v = torch.randn(T, d, generator=gen)
    x, w_down, w_up = random_gate_inputs(T=T, d_k=d, seed=seed)
    gates = {
        "linear attention (no gate)": torch.zeros(T, d),
        f"RetNet (gamma = {gamma})": torch.full((T, d), math.log(gamma)),
        f"GLA (tau = {tau})": gla_gates(x, w_down, w_up, torch.zeros(d), tau=tau),
    }
    norms = {}
    for name, g in gates.items():
        state, trace = None, []
        for t in range(T):  # one step at a time, carrying the state, to see it after every step
            _, state = gla_recurrent(q[t:t + 1], k[t:t + 1], v[t:t + 1], g[t:t + 1], initial_state=state,
                                     output_final_state=True)
            trace.append(torch.linalg.matrix_norm(state).item())
        norms[name] = torch.tensor(trace)
    return {"t": torch.arange(1, T + 1), "norms": norms}


def plot_state_norms(data):
    fig = Figure(figsize=(6, 3.4), layout="constrained")
    ax = fig.subplots()
    for name, norm in data["norms"].items():
        ax.plot(data["t"].numpy(), norm.numpy(), label=name)
    ax.set(xlabel="step t", ylabel="||S_t|| (Frobenius)", title="Does the state forget?")
    ax.legend()
    return fig


def naive_breakdown_data(T=2400, d=8, tau=16.0, seed=0):
    """Per-row error of the naive parallel form O = (((Q*B)(K/B)^T) * M) V in float32.

    Gates are sigmoid(0) ** (1/tau) everywhere. The truth is the same computation in float64 done
    chunkwise in log space. Rows where the float32 output is NaN or inf get error = inf.
    """
    gen = torch.Generator().manual_seed(seed)
    q, k, v = torch.randn(3, T, d, generator=gen).unbind(0)
    log_gate = math.log(0.5) / tau
    g = torch.full((T, d), log_gate)
    naive = gla_parallel_naive(q, k, v, g).double()
    truth = gla_chunk(q.double(), k.double(), v.double(), g.double())
    error = (naive - truth).abs().amax(-1)
    broken = ~torch.isfinite(naive).all(-1)
    error[broken] = math.inf
    first_broken = int(broken.nonzero()[0, 0]) if broken.any() else None
    return {"t": torch.arange(T), "error": error, "first_broken": first_broken,
            "predicted": naive_breakdown_length(log_gate), "log_gate": log_gate}


def plot_naive_breakdown(data):
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.subplots()
    finite = torch.isfinite(data["error"])
    ax.semilogy(data["t"][finite].numpy(), data["error"][finite].clamp(min=1e-12).numpy(), lw=0.8,
                label="|naive - exact|, float32")
    ax.axvline(data["predicted"], color="k", ls="--", label="1/B_t overflows (naive_breakdown_length)")
    if data["first_broken"] is not None:
        ax.axvspan(data["first_broken"], int(data["t"][-1]), color="tab:red", alpha=0.2, label="output is NaN / inf")
    ax.set(xlabel="position t", ylabel="max error in row t",
           title=f"Naive parallel GLA, log-gate {data['log_gate']:.4f} per step")
    ax.legend(loc="upper left")
    return fig
