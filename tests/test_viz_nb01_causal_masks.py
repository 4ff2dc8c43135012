"""The data behind notebook 01's pictures, and the mask explorer widget."""
import math

import matplotlib.pyplot as plt
import pytest
import torch

import linattn_ref as ref
from linattn_ref.viz import nb01_causal_masks as viz


@pytest.mark.parametrize("T,i", [(1, 0), (8, 3), (8, 7), (12, 0)])
def test_explorer_shows_what_query_i_computes(T, i):
    data = viz.mask_explorer_data(T, i)
    assert data["pairs"] == [(i, j) for j in range(i + 1)]
    assert data["keys_met"] == len(data["pairs"]) == i + 1
    assert torch.equal(data["mask"], torch.ones(T, T, dtype=torch.bool).tril())
    assert torch.isinf(data["scores"][i + 1:]).all() and torch.isfinite(data["scores"][: i + 1]).all()
    assert data["weights"][i + 1:].abs().sum() == 0
    assert math.isclose(data["weights"].sum().item(), 1.0, rel_tol=1e-12)
    q, k = viz.random_qk(T)
    expected = (q[i] @ k[: i + 1].T) / math.sqrt(q.shape[-1])
    torch.testing.assert_close(data["scores"][: i + 1], expected)


def test_explorer_plot_draws_query_rows_pairs():
    data = viz.mask_explorer_data(6, 2)
    fig = viz.plot_mask_explorer(data)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["q2k0", "q2k1", "q2k2"]
    assert len(fig.axes[1].patches) == 6  # a bar per key, masked ones included
    plt.close(fig)


def test_widget_follows_its_sliders():
    widget = viz.mask_explorer_widget(T=8, i=5)
    length, query = widget.children[:2]
    assert (widget.result["T"], widget.result["i"]) == (8, 5)
    length.value = 4
    assert query.max == 3 and widget.result["T"] == 4 and widget.result["i"] == 3
    query.value = 1
    assert widget.result["pairs"] == [(1, 0), (1, 1)]


def test_future_weight_tells_a_leak_from_a_mask():
    def zero_filled(q, k):  # the classic leak: zeros are not "no weight" once exponentiated
        return ref.masked_scores(q, k).nan_to_num(neginf=0.0)

    assert torch.equal(viz.future_weight(ref.masked_scores), torch.zeros(8))
    leak = viz.future_weight(zero_filled)
    assert (leak[:-1] > 0.05).all() and leak[-1] == 0  # the last query has no future
    fig = viz.plot_future_weight({"leaky": leak, "causal": viz.future_weight(ref.masked_scores)})
    heights = [p.get_height() for p in fig.axes[0].patches]
    torch.testing.assert_close(torch.tensor(heights[:8], dtype=leak.dtype), leak)
    plt.close(fig)


def test_growing_the_sequence_keeps_earlier_tokens():
    """The widget's tokens are a prefix of one fixed sequence: moving the T slider must not change the
    scores a query computes (causality: later tokens never affect earlier ones)."""
    short = viz.mask_explorer_data(T=6, i=3)
    long = viz.mask_explorer_data(T=9, i=3)
    torch.testing.assert_close(short["scores"][:4], long["scores"][:4])
