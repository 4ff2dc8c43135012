"""Notebook 06: RetNet's decay as a mask, as per-head forgetting curves, and its effect on the state's size.

Data functions compute what a figure shows (with `linattn_ref`); `plot_*` return a matplotlib Figure (not
registered with pyplot, so it shows once, where the notebook displays it); `decay_widget` builds sliders
that redraw the decay picture.
"""
import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ..memory import linear_scan_parallel
from ..retnet import decay_mask, effective_horizon, multiscale_gammas


def _gammas(gammas):
    gammas = torch.as_tensor(gammas, dtype=torch.float64).reshape(-1)
    if gammas.numel() == 0 or (gammas <= 0).any() or (gammas > 1).any():
        raise ValueError(f"decays must lie in (0, 1], got {gammas.tolist()}")
    return gammas


def impulse_response(gammas, length):
    """weights [H, length]: what is left of one token's contribution 0, 1, ..., length-1 steps later.

    It is the recurrence S_t = gamma S_{t-1} + b_t fed a single 1 at t = 0, so row h is gamma_h^j:
    the weight the decay mask gives a token j positions back.
    """
    gammas = _gammas(gammas)
    impulse = torch.zeros(length, gammas.numel(), dtype=torch.float64)
    impulse[0] = 1.0
    return linear_scan_parallel(gammas.expand(length, -1), impulse).T


def horizon_marks(gammas):
    """(horizon, weight there) per head, for every gamma < 1: the weight is gamma^(1/(1-gamma)), close to 1/e."""
    marks = []
    for gamma in _gammas(gammas).tolist():
        if gamma < 1:
            horizon = effective_horizon(gamma)
            marks.append((horizon, gamma ** horizon))
    return marks


def state_norms(T=512, gammas=(1.0, 0.99, 0.9), d=8, seed=0):
    """{gamma: ||S_t|| for t = 0..T-1} for S_t = gamma S_{t-1} + k_t^T v_t on one random sequence.

    With gamma = 1 (linear attention) the state keeps growing; with gamma < 1 it levels off near the size
    of about 1/(1-gamma) recent updates.
    """
    g = torch.Generator().manual_seed(seed)
    k, v = torch.randn(2, T, d, generator=g, dtype=torch.float64).unbind(0)
    k, v = k + 1.0, v + 1.0  # a shared direction, as real keys and values have, so the sum does not cancel out
    updates = k.unsqueeze(-1) * v.unsqueeze(-2)  # k_t^T v_t: [T, d, d]
    norms = {}
    for gamma in _gammas(gammas).tolist():
        a = torch.full((T, 1, 1), gamma, dtype=torch.float64)
        norms[gamma] = linear_scan_parallel(a, updates).flatten(1).norm(dim=1)
    return norms


def plot_state_norms(T=512, gammas=(1.0, 0.99, 0.9), d=8, seed=0):
    """The size of the state over time, with and without decay."""
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    for gamma, norms in state_norms(T, gammas, d, seed).items():
        label = "gamma = 1 (no decay)" if gamma == 1 else f"gamma = {gamma:g}"
        ax.plot(range(T), norms.numpy(), label=label)
    ax.set_xlabel("position t")
    ax.set_ylabel("||S_t||")
    ax.set_title("the state with and without decay")
    ax.legend()
    return fig


def plot_decay(gamma=0.9, n_heads=4, T=12):
    """Left: the decay mask D for one gamma. Right: the forgetting curves of RetNet's multi-scale heads and of
    that gamma, with a dot at its effective horizon."""
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must lie in (0, 1], got {gamma!r}")
    D = decay_mask(T, gamma)
    heads = multiscale_gammas(n_heads)
    length = 2 ** (6 + n_heads)  # twice the longest head's horizon
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    mask_ax, curve_ax = fig.subplots(1, 2, width_ratios=[1, 1.5])
    image = mask_ax.imshow(D.numpy(), cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(image, ax=mask_ax, shrink=0.85)
    if T <= 12:  # small enough to print every weight
        for i in range(T):
            for j in range(i + 1):
                mask_ax.text(j, i, f"{float(D[i, j]):.2f}", ha="center", va="center", fontsize=6,
                             color="w" if D[i, j] < 0.5 else "k")
    mask_ax.set_title(f"decay mask D_ij = gamma^(i-j), gamma = {gamma:g}")
    mask_ax.set_xlabel("key position j")
    mask_ax.set_ylabel("query position i")

    distance = torch.arange(1, length + 1)
    curves = impulse_response(torch.cat([heads, torch.tensor([gamma], dtype=torch.float64)]), length + 1)
    for h, weights in enumerate(curves[:-1]):
        curve_ax.plot(distance.numpy(), weights[1:].numpy(), label=f"head {h}: gamma={float(heads[h]):.6g}")
    curve_ax.plot(distance.numpy(), curves[-1, 1:].numpy(), "k--", label=f"slider gamma={gamma:g}")
    for horizon, weight in horizon_marks([gamma]):
        curve_ax.plot([horizon], [weight], "ko", label=f"its horizon 1/(1-gamma) = {horizon:.4g}")
    curve_ax.set_xscale("log", base=2)
    curve_ax.set_ylim(0, 1.02)
    curve_ax.set_xlabel("distance i - j (tokens back)")
    curve_ax.set_ylabel("weight gamma^(i-j)")
    curve_ax.set_title("forgetting curves of the multi-scale heads and of the slider's gamma")
    curve_ax.legend(fontsize=8, loc="lower left")
    return fig


def decay_widget(T=12):
    """Sliders for gamma and the number of heads; redraws `plot_decay`."""
    def show(gamma, n_heads):
        fig = plot_decay(gamma, n_heads, T)
        display(fig)
        return fig

    return widgets.interactive(
        show,
        gamma=widgets.FloatSlider(value=0.9, min=0.5, max=1.0, step=0.005, readout_format=".3f",
                                  description="gamma"),
        n_heads=widgets.IntSlider(value=4, min=1, max=8, description="heads"),
    )
