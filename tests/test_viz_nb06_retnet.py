"""The data behind notebook 06's pictures: forgetting curves, horizons, the state's size and the decay mask."""
import math

import matplotlib.pyplot as plt
import pytest
import torch

import linattn_ref as ref
from linattn_ref.viz import nb06_retnet as viz


def test_impulse_response_is_the_decay_masks_first_column():
    gammas = torch.tensor([0.5, 0.9, 1.0], dtype=torch.float64)
    weights = viz.impulse_response(gammas, 12)
    assert weights.shape == (3, 12)
    torch.testing.assert_close(weights, ref.decay_mask(12, gammas)[:, :, 0])
    assert weights[0, 3].item() == pytest.approx(0.125)


@pytest.mark.parametrize("bad", [[0.0], [1.5], [-0.2], []])
def test_impulse_response_rejects_bad_decays(bad):
    with pytest.raises(ValueError, match="decays"):
        viz.impulse_response(bad, 4)


def test_horizon_marks_of_the_multiscale_heads():
    marks = viz.horizon_marks(torch.cat([ref.multiscale_gammas(4), torch.ones(1, dtype=torch.float64)]))
    assert len(marks) == 4  # gamma = 1 never forgets: no horizon to mark
    for h, (horizon, weight) in enumerate(marks):
        assert horizon == pytest.approx(2 ** (5 + h))
        assert abs(weight - math.exp(-1)) < 0.01  # at the horizon about 1/e of the weight is left


def test_state_grows_without_decay_and_levels_off_with_it():
    norms = viz.state_norms(T=400, gammas=(1.0, 0.9), d=4)
    linear, decayed = norms[1.0], norms[0.9]
    assert linear[-1] > 2 * linear[199]  # keeps growing
    assert linear[-1] > 10 * decayed[-1]
    late, middle = decayed[300:].mean(), decayed[100:200].mean()
    assert 0.75 < late / middle < 1.33  # levelled off after about 1/(1-gamma) = 10 steps


def test_plot_state_norms_draws_the_norms():
    fig = viz.plot_state_norms(T=50, gammas=(1.0, 0.8), d=4)
    norms = viz.state_norms(T=50, gammas=(1.0, 0.8), d=4)
    for line, expected in zip(fig.axes[0].lines, norms.values()):
        torch.testing.assert_close(torch.as_tensor(line.get_ydata()), expected)
    plt.close(fig)


def test_plot_decay_draws_the_mask_and_one_curve_per_head():
    fig = viz.plot_decay(gamma=0.8, n_heads=3, T=6)
    mask_ax, curve_ax = fig.axes[0], fig.axes[1]
    torch.testing.assert_close(torch.as_tensor(mask_ax.images[0].get_array().data), ref.decay_mask(6, 0.8))
    curves = [line for line in curve_ax.lines if len(line.get_xdata()) > 1]
    assert len(curves) == 3 + 1  # three heads and the slider's gamma
    for curve, gamma in zip(curves, [*ref.multiscale_gammas(3).tolist(), 0.8]):
        distance = torch.as_tensor(curve.get_xdata(), dtype=torch.float64)
        torch.testing.assert_close(torch.as_tensor(curve.get_ydata()), gamma ** distance)
    dots = [line for line in curve_ax.lines if len(line.get_xdata()) == 1]
    assert [(d.get_xdata()[0], d.get_ydata()[0]) for d in dots] == viz.horizon_marks([0.8])  # at 5 tokens
    plt.close(fig)


def test_no_horizon_dot_without_decay():
    fig = viz.plot_decay(gamma=1.0, n_heads=2, T=4)
    assert all(len(line.get_xdata()) > 1 for line in fig.axes[1].lines)
    plt.close(fig)


@pytest.mark.parametrize("gamma", [0.0, 1.01, -0.5])
def test_plot_decay_rejects_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        viz.plot_decay(gamma=gamma)


def test_widget_redraws_when_sliders_move():
    w = viz.decay_widget(T=6)
    gamma, heads = w.children[0], w.children[1]
    before = torch.as_tensor(w.result.axes[0].images[0].get_array().data).clone()
    gamma.value = 0.6
    after = torch.as_tensor(w.result.axes[0].images[0].get_array().data)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, ref.decay_mask(6, 0.6))
    lines_before = len(w.result.axes[1].lines)
    heads.value = heads.value + 2
    assert len(w.result.axes[1].lines) == lines_before + 2  # a curve per new head
    plt.close("all")
