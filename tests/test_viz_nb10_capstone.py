"""The data behind notebook 10's pictures: what a query retrieves, and the results plots' inputs."""
import pytest

from linattn_ref.viz import nb10_capstone as viz


def test_softmax_picks_the_queried_pair():
    view = viz.recall_view(n_pairs=8, d_key=4, query=3)
    assert int(view["softmax"].argmax()) == 3
    assert view["softmax"].sum().item() == pytest.approx(1.0)


def test_linear_readout_is_exact_with_orthogonal_room_and_crosstalk_without():
    assert viz.mean_crosstalk(n_pairs=2, d_key=16) < viz.mean_crosstalk(n_pairs=12, d_key=4)
    view = viz.recall_view(n_pairs=1, d_key=4, query=0)
    assert view["linear"][0].item() == pytest.approx(1.0) and view["crosstalk"] == 0.0
    assert viz.mean_crosstalk(n_pairs=12, d_key=4) > 0.5  # more pairs than dimensions: other values leak in


def test_recall_view_rejects_a_query_outside_the_pairs():
    with pytest.raises(ValueError, match="query"):
        viz.recall_view(n_pairs=4, query=4)


def test_committed_results_have_every_mixer_and_the_sweep():
    results = viz.load_results()
    assert results is not None, "run benchmarks/capstone_mqar.py"
    assert [r["kind"] for r in results["mixers"]] == ["softmax", "linear", "retnet", "gla"]
    sizes = [p[0] for p in viz.state_points(results["feature_sweep"], 10)]
    assert sizes == sorted(sizes) and len(sizes) == len(results["config"]["feature_dims"])
    curves = viz.accuracy_curves(results["mixers"])
    assert all(pairs == list(results["config"]["train_pairs"]) for pairs, _ in curves.values())
    fig = viz.plot_results(results["mixers"], results["feature_sweep"], results)
    assert len(fig.axes) == 2
