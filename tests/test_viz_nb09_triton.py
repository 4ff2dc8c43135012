"""The data behind notebook 09's pictures: the environment check, the tile walk, the timings and their plot."""
import json
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the viz module defines its kernel

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from linattn_ref.viz import nb09_triton as viz  # noqa: E402

DEVICE = "cpu" if viz.interpreted() else "cuda"


# ---------------------------------------------------------------- the environment check


def test_known_answer_kernel_passes_here():
    report = viz.check_triton(DEVICE)
    assert report.startswith("Triton works: 4 programs added 1000 numbers correctly")
    assert f"triton {viz.triton.__version__}" in report


class _Launcher:
    """Stands in for a kernel: kernel[grid](*args) runs `body` on the arguments."""

    def __init__(self, body):
        self.body = body

    def __getitem__(self, grid):
        return lambda *args, **meta: self.body(*args)


def test_wrong_sums_are_an_environment_fault(monkeypatch):
    def zeros_except_first(x, y, out, n):  # what an interpreter returning zeros looks like
        out[0] = x[0] + y[0]

    monkeypatch.setattr(viz, "_add_kernel", _Launcher(zeros_except_first))
    with pytest.raises(RuntimeError, match=r"returns wrong results .*\(999 of 1000 sums are wrong\); this is not "
                                           r"your code, it is the environment \(triton "):
        viz.check_triton(DEVICE)


def test_a_kernel_that_cannot_run_is_an_environment_fault(monkeypatch):
    def no_driver(*args):
        raise RuntimeError("0 active drivers ([]). There should only be one.")

    monkeypatch.setattr(viz, "_add_kernel", _Launcher(no_driver))
    with pytest.raises(RuntimeError, match=r"cannot run a known-answer kernel \(RuntimeError: 0 active drivers.*"
                                           r"this is not your code.*TRITON_INTERPRET=1 must be set before"):
        viz.check_triton(DEVICE)


# ---------------------------------------------------------------- the tile walk


@pytest.mark.parametrize("program, chunk, T, C", [(0, 0, 64, 16), (1, 2, 64, 16), (3, 3, 56, 16), (2, 0, 5, 16)])
def test_tile_walk_rows(program, chunk, T, C):
    data = viz.tile_walk(program, chunk, batch=2, heads=2, T=T, chunk_size=C, d_k=32, d_v=16)
    rows = data["rows"]
    assert rows.shape == (4 * T,)
    mine = rows[program * T:(program + 1) * T]
    assert (rows == viz.OTHER).sum() == 3 * T and (mine != viz.OTHER).all()
    start, end = chunk * C, min(chunk * C + C, T)
    assert (data["start"], data["end"]) == (start, end)
    assert (mine[:start] == viz.DONE).all() and (mine[start:end] == viz.NOW).all()
    assert (mine[end:] == viz.AHEAD).all()
    assert data["state_keys"] == start and data["state_shape"] == (32, 16)
    assert (data["batch_index"], data["head"]) == divmod(program, 2)
    assert data["q_offset"] == program * T * 32 and data["v_offset"] == program * T * 16


def test_tile_walk_bytes():
    data = viz.tile_walk(program=0, chunk=3, batch=1, heads=1, T=64, chunk_size=16, d_k=32, d_v=32)
    assert data["bytes_per_program"] == 4 * 64 * 32 * 4  # q, k, v read and o written once, float32
    assert data["bytes_read"] == 3 * 64 * 32 * 4 and data["bytes_written"] == 64 * 32 * 4  # the last chunk done
    half = viz.tile_walk(program=0, chunk=1, batch=1, heads=1, T=64, chunk_size=16, d_k=32, d_v=32,
                          bytes_per_element=2)
    assert half["bytes_read"] == 3 * 32 * 32 * 2


def test_tile_walk_rejects_positions_outside_the_grid_and_the_loop():
    with pytest.raises(ValueError, match="outside the grid: programs 0..3"):
        viz.tile_walk(program=4, chunk=0)
    with pytest.raises(ValueError, match="outside the loop: chunks 0..3 of T=64"):
        viz.tile_walk(program=0, chunk=4)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        viz.tile_walk(chunk_size=0)


def test_plot_tile_walk_draws_the_rows():
    data = viz.tile_walk(program=2, chunk=1)
    fig = viz.plot_tile_walk(data)
    q_image = fig.axes[0].images[0].get_array()
    assert (torch.as_tensor(q_image[:, 0]) == data["rows"]).all()
    assert (torch.as_tensor(q_image) == data["rows"].view(-1, 1)).all()  # every column of a row alike
    assert fig.get_suptitle().startswith("program 2 of 4 (batch 1, head 0), chunk 1 of 0..3")
    assert fig.axes[4].get_xlabel() == "keys 0..15"
    plt.close(fig)


def test_tile_walk_widget_follows_its_sliders():
    widget = viz.tile_walk_widget(batch=2, heads=2, T=64, chunk_size=16)
    program, chunk = widget.children[:2]
    assert (widget.result["program"], widget.result["chunk"]) == (1, 2)
    assert (program.max, chunk.max) == (3, 3)
    before = widget.result["rows"].clone()
    program.value = 3
    assert widget.result["program"] == 3 and not torch.equal(widget.result["rows"], before)
    chunk.value = 0
    assert widget.result["state_keys"] == 0 and widget.result["bytes_read"] == 16 * 96 * 4
    plt.close("all")


# ---------------------------------------------------------------- timings


def _cases():
    def matmul(T):
        a = torch.randn(T, 8)
        return (lambda: a @ a.T), 2 * T * 8 * 4

    def broken(T):
        if T > 16:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return (lambda: None), 100

    return {"matmul": matmul, "broken": broken}


def test_benchmark_times_every_case_and_keeps_going_after_a_failure():
    calls = []

    def timer(fn):
        fn()
        calls.append(fn)
        return 0.5

    data = viz.benchmark(_cases(), lengths=(16, 32), timer=timer, floor_bytes=lambda T: 1000 * T, copy_GBps=2.0,
                          progress=False)
    assert data["T"] == [16, 32] and len(calls) == 3
    assert data["ms"]["matmul"] == [0.5, 0.5]
    assert data["GBps"]["matmul"] == pytest.approx([2 * 16 * 8 * 4 / 0.5 / 1e6, 2 * 32 * 8 * 4 / 0.5 / 1e6])
    assert data["ms"]["broken"] == [0.5, None] and data["GBps"]["broken"][1] is None
    assert data["errors"] == {"broken": "T=32: OutOfMemoryError: CUDA out of memory"}
    assert data["ms"]["memory floor (q,k,v,o)"] == pytest.approx([16000 / 2e6, 32000 / 2e6])
    assert data["copy_GBps"] == 2.0


def _gpu_json(path):
    rows = [{"T": T, "method": m, "ms": ms * T / 1024, "GBps": 1000.0 * 1024 / T}
            for T in (1024, 2048) for m, ms in (("triton linear", 0.05), ("torch sdpa (causal)", 0.4),
                                                ("memory floor (q,k,v,o)", 0.02))]
    rows = [r for r in rows if not (r["method"] == "torch sdpa (causal)" and r["T"] == 2048)]  # one missing point
    path.write_text(json.dumps({"device": "NVIDIA H100 80GB HBM3", "B": 4, "H": 16, "d": 128, "dtype": "bfloat16",
                                "ceilings": {"copy_TBps": 3.0, "bf16_matmul_TFLOPs": 700.0}, "timings": rows}))
    return path


def test_load_gpu_results(tmp_path):
    assert viz.load_gpu_results(tmp_path / "missing.json") is None
    data = viz.load_gpu_results(_gpu_json(tmp_path / "triton_gpu.json"))
    assert data["T"] == [1024, 2048]
    assert list(data["ms"]) == ["triton linear", "torch sdpa (causal)", "memory floor (q,k,v,o)"]
    assert data["ms"]["triton linear"] == pytest.approx([0.05, 0.1])
    assert data["ms"]["torch sdpa (causal)"] == [0.4, None]
    assert data["copy_GBps"] == pytest.approx(3000.0)
    assert data["title"].startswith("NVIDIA H100 80GB HBM3: B=4, H=16, d=128, bfloat16")
    (tmp_path / "empty.json").write_text(json.dumps({"device": "x", "checks": []}))
    with pytest.raises(ValueError, match="holds no timings"):
        viz.load_gpu_results(tmp_path / "empty.json")


def test_committed_gpu_results_load_when_present():
    data = viz.load_gpu_results()
    if data is not None:  # benchmarks/results/triton_gpu.json is written on a GPU machine
        assert data["T"] == sorted(data["T"]) and data["ms"]
        assert all(len(v) == len(data["T"]) for v in data["ms"].values())


def test_plot_benchmark_draws_times_and_bandwidths(tmp_path):
    data = viz.load_gpu_results(_gpu_json(tmp_path / "triton_gpu.json"))
    fig = viz.plot_benchmark(data)
    ax_t, ax_bw = fig.axes
    by_label = {line.get_label(): line for line in ax_t.lines}
    assert set(by_label) == set(data["ms"])
    assert list(by_label["torch sdpa (causal)"].get_ydata()) == [0.4]  # the missing point is left out
    assert by_label["memory floor (q,k,v,o)"].get_linestyle() == "--"
    bw_labels = [line.get_label() for line in ax_bw.lines]
    assert "memory floor (q,k,v,o)" not in bw_labels and "copy bandwidth" in bw_labels
    assert list(by_label["triton linear"].get_ydata()) == pytest.approx(data["ms"]["triton linear"])
    plt.close(fig)


def test_attention_cases_run_every_method_and_agree():
    """The methods the notebook times on a GPU, here at a tiny size in float32 (on the interpreter without a GPU)."""
    import linattn_ref as ref

    def your_kernel(q, k, v, chunk_size=16):
        return ref.linear_attention_chunk(q, k, v, feature_map=None, normalize=False, scale=1.0, chunk_size=chunk_size)

    cases = viz.attention_cases(your_kernel, batch=1, heads=2, d=16, device=DEVICE, dtype=torch.float32,
                                 chunk_size=16)
    assert list(cases) == ["your kernel (float32, C=16)", "triton linear", "triton retention", "triton gla",
                           "torch sdpa (causal)", "torch masked quadratic", "torch chunk (linear)"]
    outputs = {}
    for name, setup in cases.items():
        fn, moved = setup(40)
        outputs[name] = fn().float()
        assert outputs[name].shape == (1, 2, 40, 16)
        assert moved == viz.io_bytes(40, 1, 2, 16, 4) * (5 / 4 if name == "triton gla" else 1)
    scale = 16 ** -0.5
    torch.testing.assert_close(outputs["triton linear"], outputs["torch masked quadratic"])
    torch.testing.assert_close(outputs["torch chunk (linear)"], outputs["torch masked quadratic"])
    torch.testing.assert_close(outputs["your kernel (float32, C=16)"] * scale, outputs["torch masked quadratic"])
    q, k, v, g = viz.attention_inputs(40, 1, 2, 16, DEVICE, torch.float32)
    torch.testing.assert_close(outputs["triton gla"], ref.gla_chunk(q, k, v, g, chunk_size=16))
    torch.testing.assert_close(outputs["triton retention"], ref.retention_chunk(q, k, v, ref.multiscale_gammas(2)))


def test_copy_bandwidth_counts_a_read_and_a_write():
    def timer(fn):
        fn()
        return 2.0

    assert viz.copy_bandwidth_GBps(timer, n=1000, device=DEVICE) == 2 * 4 * 1000 / 2.0 / 1e6
    assert viz.io_bytes(8192, 4, 16, 128, 2) == 4 * 4 * 16 * 8192 * 128 * 2
