"""The data behind notebook 04's pictures: the states against the KV cache, step by step and in bytes."""
import pytest
import torch

import linattn_ref as ref
from linattn_ref.viz import nb04_state_variables as viz


def test_state_and_cache_after_token_i():
    k, v = viz.random_sequence(T=9, d_k=3, d_v=5)
    for i in (0, 4, 8):
        data = viz.state_and_cache(k, v, i)
        kp = ref.elu_plus_one(k)
        # the state is the sum of the outer products so far, and of the keys so far
        mu = sum(torch.outer(kp[j], v[j]) for j in range(i + 1))
        torch.testing.assert_close(data["mu"], mu)
        torch.testing.assert_close(data["nu"], kp[: i + 1].sum(0))
        torch.testing.assert_close(data["k_cache"], k[: i + 1])
        torch.testing.assert_close(data["v_cache"], v[: i + 1])
        assert data["state_numel"] == 3 * 5 + 3  # the same at every position
        assert data["cache_numel"] == (i + 1) * (3 + 5)  # one key and one value more per token


def test_colour_limits_cover_every_position():
    k, v = viz.random_sequence(T=10)
    limits = viz.state_and_cache(k, v, 0)
    for i in range(10):
        data = viz.state_and_cache(k, v, i)
        assert data["mu"].abs().max() <= limits["mu_limit"] and data["nu"].max() <= limits["nu_limit"]
    assert limits["cache_limit"] == max(k.abs().max().item(), v.abs().max().item())


def test_positions_outside_the_sequence_are_refused():
    k, v = viz.random_sequence(T=4)
    with pytest.raises(ValueError, match="outside the sequence"):
        viz.state_and_cache(k, v, 4)


def test_plot_shows_the_state_and_only_the_cached_rows():
    k, v = viz.random_sequence(T=6, d_k=2, d_v=3)
    data = viz.state_and_cache(k, v, 2)
    fig = viz.plot_state_and_cache(data)
    mu_img, nu_img, cache_img = (ax.images[0] for ax in fig.axes if ax.images)
    torch.testing.assert_close(torch.as_tensor(mu_img.get_array()), data["mu"])
    torch.testing.assert_close(torch.as_tensor(nu_img.get_array()).squeeze(-1), data["nu"])
    cache = torch.as_tensor(cache_img.get_array().filled(float("nan")))
    assert cache.shape == (6, 5)
    torch.testing.assert_close(cache[:3], torch.cat([k[:3], v[:3]], dim=1))
    assert cache[3:].isnan().all()  # rows not written yet stay blank


def test_state_widget_steps_through_positions():
    k, v = viz.random_sequence(T=7)
    widget = viz.state_widget(k, v)
    slider = widget.children[0]
    assert slider.max == 6 and widget.result["i"] == 0
    slider.value = 5
    assert widget.result["i"] == 5 and widget.result["cache_numel"] == 6 * 8
    torch.testing.assert_close(widget.result["mu"], viz.state_and_cache(k, v, 5)["mu"])


def test_memory_against_length():
    data = viz.memory_vs_length(T_values=(1024, 2048, 131072), n_layers=32, n_heads=32, d_head=128)
    cache, state = data["kv_cache_bytes"], data["state_bytes"]
    assert cache == [ref.kv_cache_bytes(T, 32, 32, 128) for T in (1024, 2048, 131072)]
    assert cache[1] == 2 * cache[0] and cache[2] == 64 * 2**30  # linear in T; 64 GiB at 128k
    assert state == [32 * 32 * (128 * 128 + 128) * 2] * 3  # (mu, nu) per head, whatever T
    assert viz.state_bytes(1, 1, 4, bytes_per_element=4, batch_size=3) == 3 * (16 + 4) * 4
    fig = viz.plot_memory_vs_length(data)
    cache_line, state_line = fig.axes[0].lines
    assert list(cache_line.get_ydata()) == [b / 2**30 for b in cache]
    assert list(state_line.get_ydata()) == [b / 2**30 for b in state]
