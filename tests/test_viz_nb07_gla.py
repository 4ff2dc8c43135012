"""The data behind notebook 07's pictures (gates, cumulative decay, state norms, the naive form's breakdown)."""
import math

import matplotlib.pyplot as plt
import pytest
import torch

import linattn_ref as ref
from linattn_ref.viz import nb07_gla as viz


def test_gate_data_is_the_reference_gate_and_its_running_product():
    data = viz.gate_data(tau=8.0, bias=0.5, T=20, d_k=6)
    x, w_down, w_up = viz.random_gate_inputs(T=20, d_k=6)
    g = ref.gla_gates(x, w_down, w_up, torch.full((6,), 0.5), tau=8.0)
    torch.testing.assert_close(data["alpha"], g.exp())
    assert ((data["alpha"] > 0) & (data["alpha"] < 1)).all()
    # log10 of prod_{1<=s<=t} alpha_s: token 0 is whole after step 0, then every later gate scales it
    alpha_after_0 = torch.cat([torch.ones(1, 6), g[1:].exp()])
    torch.testing.assert_close(10 ** data["log10_decay"], torch.cumprod(alpha_after_0, dim=0))
    assert (data["log10_decay"][0] == 0).all()
    assert (data["log10_decay"].diff(dim=0) < 0).all()


def test_a_higher_temperature_or_bias_opens_the_gates():
    base = viz.gate_data(tau=4.0, bias=0.0)["alpha"]
    assert (viz.gate_data(tau=16.0, bias=0.0)["alpha"] > base).all()
    assert (viz.gate_data(tau=4.0, bias=2.0)["alpha"] > base).all()


def test_plot_gates_shows_the_gates_and_the_clipped_decay():
    data = viz.gate_data(tau=1.0, bias=-2.0)
    fig = viz.plot_gates(data, decay_floor=-6.0)
    gate_img, decay_img = fig.axes[0].images[0], fig.axes[1].images[0]
    torch.testing.assert_close(torch.as_tensor(gate_img.get_array()), data["alpha"].T)
    torch.testing.assert_close(torch.as_tensor(decay_img.get_array()), data["log10_decay"].clamp(min=-6.0).T)
    assert data["log10_decay"].min() < -6.0  # strong gates: the clipping matters here
    plt.close(fig)


def test_gates_widget_redraws_from_its_sliders():
    widget = viz.gates_widget()
    tau, bias = widget.children[:2]
    torch.testing.assert_close(widget.result["alpha"], viz.gate_data(tau=16.0, bias=0.0)["alpha"])
    before = widget.result["alpha"]
    tau.value = 2.0
    assert widget.result["tau"] == 2.0
    assert (widget.result["alpha"] < before).all()
    bias.value = 3.0
    assert widget.result["bias"] == 3.0
    torch.testing.assert_close(widget.result["alpha"], viz.gate_data(tau=2.0, bias=3.0)["alpha"])
    plt.close("all")


def test_state_norms_grow_without_a_gate_and_stay_bounded_with_one():
    data = viz.state_norm_data(T=160, d=6, gamma=0.9, tau=8.0)
    plain, retnet, gla = data["norms"].values()
    assert len(plain) == len(data["t"]) == 160
    # step 1 starts from a zero state, so the gate does not matter yet
    assert plain[0] == pytest.approx(retnet[0]) == pytest.approx(gla[0])
    assert plain[-1] > 1.5 * plain[39]  # zero-mean values: a random walk that grows like sqrt(t), never stops
    for gated in (retnet, gla):
        assert gated[80:].max() < 2 * gated[40:80].max()  # a plateau, not growth
        assert gated[-1] < plain[-1] / 2
    fig = viz.plot_state_norms(data)
    assert len(fig.axes[0].lines) == 3
    plt.close(fig)


def test_state_norm_of_retnet_matches_the_retention_recurrence():
    data = viz.state_norm_data(T=30, d=4, gamma=0.8)
    gen = torch.Generator().manual_seed(0)
    q, k = ref.elu_plus_one(torch.randn(2, 30, 4, generator=gen)).unbind(0)
    v = torch.randn(30, 4, generator=gen)
    _, state = ref.retention_recurrent(q, k, v, 0.8, output_final_state=True)
    assert data["norms"]["RetNet (gamma = 0.8)"][-1].item() == pytest.approx(torch.linalg.matrix_norm(state).item(),
                                                                            rel=1e-5)


def test_naive_parallel_form_breaks_where_one_over_b_overflows():
    tau = 1.0  # gate 0.5 per step: float32 breaks after about 128 steps, so the test stays small
    data = viz.naive_breakdown_data(T=200, d=4, tau=tau)
    assert data["predicted"] == ref.naive_breakdown_length(math.log(0.5) / tau) == 128
    first = data["first_broken"]
    assert first is not None and data["predicted"] - 16 <= first <= data["predicted"]
    assert torch.isinf(data["error"][first:]).all()
    assert data["error"][: first - 16].max() < 1e-3  # correct before the overflow
    fig = viz.plot_naive_breakdown(data)
    assert len(fig.axes[0].lines) == 2
    plt.close(fig)


def test_naive_form_is_fine_for_short_sequences():
    data = viz.naive_breakdown_data(T=300, d=4, tau=16.0)
    assert data["first_broken"] is None
    assert data["error"].max() < 1e-3
