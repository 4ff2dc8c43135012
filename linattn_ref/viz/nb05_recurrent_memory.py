"""Notebook 05: what each recurrent memory holds as the sequence goes on, and how a parallel scan combines steps.

Data functions compute what a figure shows (with `linattn_ref.memory`); `plot_*` return a matplotlib Figure
(not registered with pyplot, so it shows once, where the notebook displays it); `*_widget` build sliders
that redraw the plot.
"""
import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ..memory import CumulativeAverage, FixedWindow, HybridMemory, RunningSum, memory_numel, scan_memory, scan_rounds


def memory_zoo(T, window):
    """The memories compared, by name. The KV cache of softmax attention is a window as long as the sequence."""
    return {
        "KV cache": FixedWindow(T),
        f"window w={window}": FixedWindow(window),
        "running sum": RunningSum(),
        "cumulative average": CumulativeAverage(),
        f"hybrid w={window}": HybridMemory(window),
    }


def random_sequence(T, d, seed=0):
    """q, k, v: [T, d] float64, reproducible."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, T, d, generator=g, dtype=torch.float64).unbind(0)


def memory_states(T=24, d=4, window=4, seed=0):
    """Scan every memory of `memory_zoo` over one random sequence: {name: (memory, [Mem_0, ..., Mem_{T-1}])}."""
    q, k, v = random_sequence(T, d, seed)
    return {name: (memory, scan_memory(memory, q, k, v)[1]) for name, memory in memory_zoo(T, window).items()}


def memory_slots(memory, state):
    """A memory's contents as one matrix to draw, a row per stored vector.

    Windows: a row [k | v] per kept pair. Cumulative average: one row [k_bar | v_bar]. Hybrid: the summary
    row [k_bar | v_bar] of the evicted pairs, then the window. Running sum: mu (d_k x d_v) with nu as a last
    column. The count n of the averages is left out of the picture (it is one number, counted in the size).
    """
    if isinstance(memory, FixedWindow):
        keys, values = state
        return torch.cat([keys, values], dim=1)
    if isinstance(memory, RunningSum):
        mu, nu = state
        return torch.cat([mu, nu.unsqueeze(1)], dim=1)
    if isinstance(memory, CumulativeAverage):
        _, k_bar, v_bar = state
        return torch.cat([k_bar, v_bar]).unsqueeze(0)
    if isinstance(memory, HybridMemory):
        keys, values, _, k_bar, v_bar = state
        return torch.cat([torch.cat([k_bar, v_bar]).unsqueeze(0), torch.cat([keys, values], dim=1)])
    raise TypeError(f"no picture for a memory of type {type(memory).__name__}")


def memory_sizes(states):
    """{name: [numbers held after token 1, 2, ..., T]} for the output of `memory_states`."""
    return {name: [memory_numel(s) for s in seq] for name, (_, seq) in states.items()}


def _check_tokens(tokens, T):
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= T:
        raise ValueError(f"tokens must be an integer from 1 to T={T}, got {tokens!r}")


def plot_memories(tokens=12, T=24, d=4, window=4, seed=0):
    """Each memory's contents after `tokens` tokens (one panel each), and every memory's size against time."""
    _check_tokens(tokens, T)
    states = memory_states(T, d, window, seed)
    sizes = memory_sizes(states)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, len(states) + 1, width_ratios=[1] * len(states) + [2.2])
    for ax, (name, (memory, seq)) in zip(axes, states.items()):
        slots = memory_slots(memory, seq[tokens - 1])
        # colours per panel, fixed over time: the running sum grows far larger than any single k or v
        limit = max(float(memory_slots(memory, s).abs().max()) for s in seq)
        ax.imshow(slots.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                          extent=(-0.5, slots.shape[1] - 0.5, slots.shape[0] - 0.5, -0.5))
        ax.set_ylim(T - 0.5, -0.5)  # the same height for all: a growing memory visibly fills its panel
        ax.set_title(f"{name}\n{sizes[name][tokens - 1]} numbers", fontsize=10)
        ax.set_xlabel("k | v" if not isinstance(memory, RunningSum) else "mu | nu")
        ax.set_xticks([])
    axes[0].set_ylabel("stored rows (blue < 0 < red)")
    size_ax = axes[-1]
    steps = range(1, T + 1)
    for name, counts in sizes.items():
        size_ax.plot(steps, counts, marker=".", label=name)
    size_ax.axvline(tokens, color="k", linestyle="--", linewidth=1)
    size_ax.set_xlabel("tokens seen")
    size_ax.set_ylabel("numbers in memory")
    size_ax.set_title("memory size as the sequence grows", fontsize=10)
    size_ax.legend(fontsize=8)
    return fig


def memories_widget(T=24, d=4, seed=0):
    """Sliders for the number of tokens seen and the window size; redraws `plot_memories`."""
    def show(tokens, window):
        fig = plot_memories(tokens, T, d, window, seed)
        display(fig)
        return fig

    return widgets.interactive(
        show,
        tokens=widgets.IntSlider(value=T // 2, min=1, max=T, description="tokens seen"),
        window=widgets.IntSlider(value=4, min=1, max=8, description="window w"),
    )


def scan_links(T):
    """The combinations of the parallel scan, round by round: [[(source, target), ...] per round].

    In round r, position t >= 2^r composes its map with the one of position t - 2^r.
    """
    return [[(t - 2 ** r, t) for t in range(2 ** r, T)] for r in range(scan_rounds(T))]


def scan_coverage(T):
    """For every round (and before the first), the earliest step each position's composed map includes.

    Follows `scan_links`: a target takes over the coverage of its source. After the last round every position
    covers step 0, i.e. it holds S_t itself.
    """
    start = list(range(T))
    history = [start]
    for links in scan_links(T):
        start = list(start)
        for source, target in links:
            start[target] = history[-1][source]
        history.append(start)
    return history


def plot_scan(T=8):
    """The parallel scan as a circuit: positions across, rounds down, a line for each combination."""
    links, coverage = scan_links(T), scan_coverage(T)
    fig = Figure(figsize=(1 + 0.8 * T, 1.5 + 1.1 * len(links)), layout="constrained")
    ax = fig.subplots()
    for r, round_links in enumerate(links):
        for t in range(T):  # every position keeps its own map into the next round
            ax.plot([t, t], [r, r + 1], color="0.7", linewidth=1)
        for source, target in round_links:  # ... and a target composes it with the source's
            ax.plot([source, target], [r, r + 1], color="tab:blue", linewidth=1.5)
    for r, starts in enumerate(coverage):
        ax.scatter(range(T), [r] * T, s=260, color="white", edgecolors="k", zorder=3)
        for t, s in enumerate(starts):
            ax.text(t, r, f"{s}:{t}", ha="center", va="center", fontsize=7, zorder=4)
    ax.set_yticks(range(len(coverage)), ["input"] + [f"after round {r + 1}" for r in range(len(links))])
    ax.set_xticks(range(T), [f"t={t}" for t in range(T)])
    ax.set_ylim(len(coverage) - 0.5, -0.5)
    ax.set_title(f"parallel scan, T={T}: {len(links)} rounds; a node 's:t' holds the steps s..t composed")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    return fig
