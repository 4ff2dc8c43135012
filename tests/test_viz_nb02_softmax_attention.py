"""The data behind notebook 02's cache picture, and its widget."""
import matplotlib.pyplot as plt
import torch

from linattn_ref.viz import nb02_softmax_attention as viz


def test_cache_grows_by_one_key_and_value_per_token():
    data = viz.cache_growth(T=1000, n_layers=2, n_heads=3, d_head=4, bytes_per_element=2, batch_size=5)
    tokens = data["tokens"]
    assert tokens[0] == 1 and tokens[-1] == 1000 and (tokens.diff() > 0).all()
    per_token = 2 * 5 * 2 * 3 * 4 * 2  # K and V, batch, layers, heads, d_head, bytes
    torch.testing.assert_close(data["cache_gib"] * viz.GIB, tokens.double() * per_token)


def test_per_token_cost_is_linear_and_the_total_quadratic():
    data = viz.cache_growth(T=4096)
    t = data["tokens"].double()
    assert torch.equal(data["keys_met"], t)  # the newest query meets every cached key, itself included
    assert torch.equal(data["products"], t * (t + 1) / 2)


def test_default_picture_matches_its_data():
    data = viz.cache_growth()
    fig = viz.plot_cache_growth(data)
    ax_cache, ax_cost = fig.axes
    torch.testing.assert_close(torch.tensor(ax_cache.lines[0].get_ydata()), data["cache_gib"])
    torch.testing.assert_close(torch.tensor(ax_cost.lines[1].get_ydata()), data["products"])
    assert ax_cost.get_xscale() == ax_cost.get_yscale() == "log"
    plt.close(fig)


def test_widget_redraws_from_its_sliders():
    widget = viz.cache_growth_widget()
    controls = {c.description: c for c in widget.children[:-1]}
    before = widget.result["cache_gib"][-1].item()
    controls["layers"].value *= 2
    assert widget.result["cache_gib"][-1].item() == 2 * before
    controls["precision"].value = 4  # 32-bit
    assert widget.result["cache_gib"][-1].item() == 4 * before
    controls["tokens T"].value = 2048
    assert widget.result["tokens"][-1] == 2048
