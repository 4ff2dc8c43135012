"""The data behind notebook 08's pictures (chunk partition of the score matrix, cost model, CPU timings)."""
import matplotlib.pyplot as plt
import pytest
import torch

import linattn_ref as ref
from linattn_ref.viz import nb08_chunkwise as viz


@pytest.mark.parametrize("T, C", [(32, 8), (30, 7), (10, 1), (12, 12), (5, 16)])
def test_partition_covers_the_causal_pairs_once(T, C):
    data = viz.chunk_partition(T, C, query=T - 1)
    labels = data["labels"]
    causal = ref.causal_mask(T)
    assert ((labels == viz.FUTURE) == ~causal).all()
    sizes = [end - start for start, end in ref.chunk_boundaries(T, C)]
    assert data["intra_pairs"] == sum(c * (c + 1) // 2 for c in sizes) == int((labels == viz.INTRA).sum())
    assert data["state_pairs"] + data["intra_pairs"] == T * (T + 1) // 2
    if C >= T:
        assert data["state_pairs"] == 0  # one chunk: the chunked form is the parallel form


def test_query_row_reads_earlier_chunks_from_the_state_and_its_own_chunk_directly():
    data = viz.chunk_partition(T=32, chunk_size=8, query=13)
    assert (data["chunk"], data["chunk_start"], data["chunk_end"]) == (1, 8, 16)
    row = data["labels"][13]
    assert (row[:8] == viz.STATE).all()
    assert (row[8:14] == viz.INTRA).all()
    assert (row[14:] == viz.FUTURE).all()


def test_partition_matches_the_chunked_computation():
    """Query i's output is q_i (sum of k_j^T v_j over its STATE keys) + the INTRA keys' scores times values."""
    T, C, i = 20, 6, 15
    gen = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(3, T, 4, dtype=torch.float64, generator=gen).unbind(0)
    labels = viz.chunk_partition(T, C, i)["labels"][i]
    state = k[labels == viz.STATE].T @ v[labels == viz.STATE]
    intra = (q[i] @ k[labels == viz.INTRA].T) @ v[labels == viz.INTRA]
    o = ref.chunk_gated_linear_attention(q, k, v, None, 1.0, C)
    torch.testing.assert_close(o[i], q[i] @ state + intra)


def test_partition_rejects_bad_arguments():
    with pytest.raises(ValueError, match="outside the sequence"):
        viz.chunk_partition(T=8, chunk_size=4, query=8)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        viz.chunk_partition(T=8, chunk_size=0, query=3)


def test_plot_partition_draws_the_labels():
    data = viz.chunk_partition(T=16, chunk_size=4, query=6)
    fig = viz.plot_chunk_partition(data)
    assert (torch.as_tensor(fig.axes[0].images[0].get_array()) == data["labels"]).all()
    assert "chunk 1" in fig.axes[0].get_title()
    plt.close(fig)


def test_partition_widget_follows_its_sliders():
    widget = viz.partition_widget(T=32)
    chunk_size, query = widget.children[:2]
    assert widget.result["chunk_size"] == 8 and widget.result["query"] == 13
    before = widget.result["labels"].clone()
    chunk_size.value = 16
    assert widget.result["chunk_size"] == 16
    assert not (widget.result["labels"] == before).all()
    assert widget.result["state_pairs"] == viz.chunk_partition(32, 16, 13)["state_pairs"]
    query.value = 20
    assert (widget.result["query"], widget.result["chunk"]) == (20, 1)
    plt.close("all")


def test_cost_model_terms():
    cost = viz.cost_model(T=8192, chunk_size=64, d=128)
    assert cost == {"intra": 8192 * 64 * 128, "state": 8192 * 128 ** 2, "parallel": 8192 ** 2 * 128}
    balanced = viz.cost_model(T=100, chunk_size=32, d=32)
    assert balanced["intra"] == balanced["state"]  # the two terms meet at C = d
    fig = viz.plot_cost_model(T=1024, d=64, chunk_sizes=(16, 64, 256))
    assert len(fig.axes[0].lines) == 4
    plt.close(fig)


def test_time_forms_times_every_form_at_every_length():
    data = viz.time_forms(lengths=(16, 48), d=4, chunk_size=8, repeats=1)
    assert data["T"] == [16, 48]
    assert set(data["seconds"]) == {"parallel", "recurrent", "chunk"}
    for seconds in data["seconds"].values():
        assert len(seconds) == 2 and all(0 < s < 10 for s in seconds)
    fig = viz.plot_timings(data)
    lines = fig.axes[0].lines
    assert len(lines) == 3
    assert list(lines[2].get_ydata()) == pytest.approx([1e3 * s for s in data["seconds"]["chunk"]])
    plt.close(fig)
