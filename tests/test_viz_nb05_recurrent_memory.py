"""The data behind notebook 05's pictures: what each memory holds, its size, and the parallel scan's links."""
import matplotlib.pyplot as plt
import pytest
import torch

import linattn_ref as ref
from linattn_ref.viz import nb05_recurrent_memory as viz

T, D, W = 10, 3, 4


@pytest.fixture(scope="module")
def states():
    return viz.memory_states(T=T, d=D, window=W, seed=1)


@pytest.fixture(scope="module")
def qkv():
    return viz.random_sequence(T, D, seed=1)


def test_sizes_follow_what_each_memory_stores(states):
    sizes = viz.memory_sizes(states)
    tokens = range(1, T + 1)
    assert sizes["KV cache"] == [2 * D * t for t in tokens]  # one key and one value per token, forever
    assert sizes[f"window w={W}"] == [2 * D * min(t, W) for t in tokens]
    assert sizes["running sum"] == [D * D + D] * T  # mu and nu
    assert sizes["cumulative average"] == [1 + 2 * D] * T  # the count, k_bar, v_bar
    assert sizes[f"hybrid w={W}"] == [2 * D * min(t, W) + 1 + 2 * D for t in tokens]


def test_window_rows_are_the_last_pairs(states, qkv):
    _, k, v = qkv
    memory, seq = states[f"window w={W}"]
    for t in (0, W - 1, T - 1):
        first = max(0, t + 1 - W)
        assert torch.equal(viz.memory_slots(memory, seq[t]), torch.cat([k[first:t + 1], v[first:t + 1]], dim=1))


def test_running_sum_slots_are_mu_and_nu(states, qkv):
    _, k, v = qkv
    memory, seq = states["running sum"]
    mu, nu = ref.state_variables(ref.elu_plus_one(k), v)
    slots = viz.memory_slots(memory, seq[5])
    torch.testing.assert_close(slots[:, :D], mu[5])
    torch.testing.assert_close(slots[:, D], nu[5])


def test_average_and_hybrid_summary_rows_are_means(states, qkv):
    _, k, v = qkv
    memory, seq = states["cumulative average"]
    torch.testing.assert_close(viz.memory_slots(memory, seq[6]), torch.cat([k[:7].mean(0), v[:7].mean(0)])[None])
    memory, seq = states[f"hybrid w={W}"]
    slots = viz.memory_slots(memory, seq[T - 1])
    evicted = T - W  # pairs 0 .. T-W-1 have left the window for the summary
    torch.testing.assert_close(slots[0], torch.cat([k[:evicted].mean(0), v[:evicted].mean(0)]))
    torch.testing.assert_close(slots[1:], torch.cat([k[evicted:], v[evicted:]], dim=1))


def test_unknown_memory_is_refused():
    with pytest.raises(TypeError, match="no picture"):
        viz.memory_slots(object(), None)


def test_plot_memories_draws_the_states_and_sizes():
    fig = viz.plot_memories(tokens=5, T=T, d=D, window=W, seed=1)
    states = viz.memory_states(T, D, W, seed=1)
    panels = fig.axes[:len(states)]
    for ax, (memory, seq) in zip(panels, states.values()):
        assert torch.equal(torch.as_tensor(ax.images[0].get_array().data), viz.memory_slots(memory, seq[4]))
    size_ax = fig.axes[len(states)]
    curves = [line.get_ydata() for line in size_ax.lines if len(line.get_ydata()) == T]
    assert [list(c) for c in curves] == list(viz.memory_sizes(states).values())
    marker = [line for line in size_ax.lines if list(line.get_xdata()) == [5, 5]]
    assert marker, "the position marker is missing"
    plt.close(fig)


@pytest.mark.parametrize("tokens", [0, T + 1, 2.5, True])
def test_plot_memories_rejects_bad_positions(tokens):
    with pytest.raises(ValueError, match="tokens"):
        viz.plot_memories(tokens=tokens, T=T)


def test_widget_redraws_when_sliders_move():
    w = viz.memories_widget(T=T, d=D)
    tokens, window = w.children[0], w.children[1]
    before = w.result
    rows_before = before.axes[0].images[0].get_array().shape[0]
    tokens.value = tokens.value + 2
    assert w.result is not before
    assert w.result.axes[0].images[0].get_array().shape[0] == rows_before + 2  # the KV cache gained two rows
    window.value = 2
    assert w.result.axes[1].images[0].get_array().shape[0] == 2
    plt.close("all")


@pytest.mark.parametrize("length", [1, 2, 3, 7, 8, 9, 16, 33])
def test_scan_links_cover_every_step_in_scan_rounds(length):
    links = viz.scan_links(length)
    assert len(links) == ref.scan_rounds(length)
    coverage = viz.scan_coverage(length)
    assert coverage[-1] == [0] * length  # every position ends up holding S_t itself
    if length > 1:
        assert coverage[-2] != [0] * length  # and no round is wasted
    for r, round_links in enumerate(links):
        assert all(target - source == 2 ** r for source, target in round_links)


def test_plot_scan_draws_one_line_per_combination():
    fig = viz.plot_scan(8)
    blue = [line for line in fig.axes[0].lines if line.get_color() == "tab:blue"]
    assert len(blue) == sum(len(r) for r in viz.scan_links(8))
    plt.close(fig)
