"""The data behind notebook 03's pictures: cost curves of both groupings, measured times, output sizes."""
import pytest
import torch

import linattn_ref as ref
from linattn_ref.viz import nb03_linear_attention as viz


def test_costs_follow_the_formulas_and_cross_at_T_equals_d():
    data = viz.attention_costs(d=64, T_max=4096)
    T = data["T"]
    assert T[0] == 16 and T[-1] == 4096 and (T.diff() > 0).all()
    torch.testing.assert_close(data["quadratic_macs"], 2 * T**2 * 64)
    torch.testing.assert_close(data["linear_macs"], 2 * T * 64**2)
    assert (data["linear_memory"] == 64 * 64).all()
    for key in ("macs", "memory"):
        quadratic, linear = data[f"quadratic_{key}"], data[f"linear_{key}"]
        assert (quadratic[T < 64] < linear[T < 64]).all()
        assert (quadratic[T > 64] > linear[T > 64]).all()
        assert quadratic[T == 64] == linear[T == 64]  # 64 is on the grid: the crossing itself


def test_the_notebooks_headline_numbers():
    data = viz.attention_costs(d=128, T_max=8192)
    assert data["T"][-1] == 8192
    assert data["quadratic_macs"][-1] / data["linear_macs"][-1] == 8192 / 128
    assert data["quadratic_memory"][-1] == 8192**2 and data["linear_memory"][-1] == 128**2


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="T_max"):
        viz.attention_costs(d=64, T_max=8)
    with pytest.raises(ValueError, match="d must"):
        viz.attention_costs(d=0)


def test_plot_cost_curves_draws_the_data():
    data = viz.attention_costs(d=32, T_max=1024)
    fig = viz.plot_cost_curves(data, mark_T=512)
    ax_time, ax_mem = fig.axes
    quadratic, linear = ax_time.lines[:2]
    torch.testing.assert_close(torch.as_tensor(quadratic.get_ydata()), data["quadratic_macs"])
    torch.testing.assert_close(torch.as_tensor(linear.get_ydata()), data["linear_macs"])
    torch.testing.assert_close(torch.as_tensor(ax_mem.lines[0].get_ydata()), data["quadratic_memory"])
    assert [line.get_xdata()[0] for line in ax_time.lines[2:]] == [32, 512]  # T = d and the marked length


def test_cost_widget_redraws_from_its_sliders():
    widget = viz.cost_widget()
    d_slider, T_slider = widget.children[:2]
    assert widget.result["d"] == 128 and widget.result["T"][-1] == 16384
    d_slider.value = 256
    assert widget.result["d"] == 256
    torch.testing.assert_close(widget.result["linear_macs"], 2 * widget.result["T"] * 256**2)
    T_slider.value = 10
    assert widget.result["T"][-1] == 1024 and widget.result["d"] == 256


def test_measured_times_cover_every_length_and_restore_the_threads():
    threads = torch.get_num_threads()
    data = viz.time_both_orders(T_values=(32, 64), d=8, repeats=1, progress=False)
    assert data["T"].tolist() == [32, 64]
    assert (data["quadratic_s"] > 0).all() and (data["linear_s"] > 0).all()
    assert torch.get_num_threads() == threads
    fig = viz.plot_timings(data)
    torch.testing.assert_close(torch.as_tensor(fig.axes[0].lines[0].get_ydata()), data["quadratic_s"] * 1e3)


def test_the_denominator_keeps_outputs_the_size_of_a_value():
    data = viz.output_norms(T=256, d=8)
    normalized, unnormalized = data["normalized"], data["unnormalized"]
    # normalized outputs are weighted averages of the values: never longer than the longest value
    assert (normalized <= data["largest_value"] + 1e-9).all()
    # without the denominator they are sums, and grow along the sequence
    assert unnormalized[-64:].mean() > 10 * unnormalized[:16].mean()
    assert unnormalized[-64:].mean() > 100 * normalized[-64:].mean()
    fig = viz.plot_output_norms(data)
    torch.testing.assert_close(torch.as_tensor(fig.axes[0].lines[0].get_ydata()), unnormalized)
    torch.testing.assert_close(torch.as_tensor(fig.axes[0].lines[1].get_ydata()), normalized)


def test_output_norms_are_the_reference_outputs():
    data = viz.output_norms(T=32, d=4, seed=3)
    gen = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 32, 4, generator=gen, dtype=torch.float64).unbind(0)
    v = torch.randn(32, 4, generator=gen, dtype=torch.float64) + 0.5
    torch.testing.assert_close(data["normalized"], ref.linear_attention_parallel(q, k, v).norm(dim=-1))
    torch.testing.assert_close(data["unnormalized"],
                               ref.linear_attention_parallel(q, k, v, normalize=False).norm(dim=-1))
