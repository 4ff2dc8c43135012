"""The Triton chunk kernels against linattn_ref in float64.

Without a GPU they run in Triton's interpreter, which must be on before the kernels are defined, i.e.
before linattn_ref.triton is imported. The interpreter computes bfloat16 wrongly, so these tests use
float32 (and one float16 case); bfloat16 is checked on a GPU by benchmarks/triton_gpu.py.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import linattn_ref as ref  # noqa: E402
from linattn_ref import triton as lt  # noqa: E402

DEVICE = "cpu" if lt.interpreted() else "cuda"
ROOT = Path(__file__).resolve().parents[1]


def qkv(B, H, T, d_k, d_v, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, d, generator=gen) for d in (d_k, d_k, d_v))
    return [x.to(device=DEVICE, dtype=dtype) for x in (q, k, v)]


def log_gates(shape, seed, strength=1 / 16):
    """GLA-style log-gates log(sigmoid(2x)) * strength; 1/16 is GLA's usual temperature, more fades faster."""
    gen = torch.Generator().manual_seed(seed)
    return (F.logsigmoid(torch.randn(*shape, generator=gen) * 2) * strength).to(DEVICE)


def f64(*xs):
    return [x.double() for x in xs]


def on_device(gamma):
    """gamma for the float64 reference, on the device of its inputs (it builds its decays where gamma is)."""
    return torch.as_tensor(gamma, dtype=torch.float64).to(DEVICE)


def assert_close(out, expected, dtype=torch.float32):
    assert out.shape == expected.shape
    error = lt.relative_error(out, expected)
    assert error <= lt.tolerance(dtype, lt.interpreted()), f"relative error {error:.3g}"


@pytest.mark.parametrize("T, d_k, d_v, normalize", [
    (1, 16, 16, False), (37, 32, 16, True), (100, 64, 32, False), (100, 16, 64, True), (130, 64, 64, True),
])
def test_linear_attention_matches_reference(T, d_k, d_v, normalize):
    q, k, v = qkv(2, 3, T, d_k, d_v, seed=T + d_k)
    feature_map = ref.elu_plus_one if normalize else None  # the identity only without the denominator
    out = lt.linear_attention_chunk(q, k, v, feature_map=feature_map, normalize=normalize)
    assert out.dtype == q.dtype
    assert_close(out, ref.linear_attention_chunk(*f64(q, k, v), feature_map=feature_map, normalize=normalize))


@pytest.mark.parametrize("T, d_k, d_v, per_head", [(1, 16, 16, True), (37, 32, 16, False), (100, 64, 32, True)])
def test_retention_matches_reference(T, d_k, d_v, per_head):
    q, k, v = qkv(2, 4, T, d_k, d_v, seed=T)
    gamma = ref.multiscale_gammas(4).to(DEVICE) if per_head else 0.9  # the reference wants it on q's device
    assert_close(lt.retention_chunk(q, k, v, gamma), ref.retention_chunk(*f64(q, k, v), on_device(gamma)))


def test_retention_with_strong_and_no_decay():
    q, k, v = qkv(1, 2, 70, 16, 16, seed=1)
    for gamma in (1e-6, 1.0):  # gamma^(i-j) underflows to 0 / stays 1: neither may produce inf or NaN
        assert_close(lt.retention_chunk(q, k, v, gamma), ref.retention_chunk(*f64(q, k, v), on_device(gamma)))


@pytest.mark.parametrize("T, d_k, d_v", [(1, 16, 16), (37, 32, 16), (100, 64, 32)])
def test_gla_matches_reference(T, d_k, d_v):
    q, k, v = qkv(2, 3, T, d_k, d_v, seed=T)
    g = log_gates(k.shape, seed=T)
    expected = ref.gla_chunk(*f64(q, k, v, g))
    assert_close(lt.gla_chunk(q, k, v, g), expected)
    assert_close(lt.gla_chunk(q, k, v, g, validate_gates=False), expected)  # valid gates: the same, unchecked


@pytest.mark.parametrize("lowest", [-2.4, -4.9, -9.9])
def test_gla_strong_gates_take_smaller_chunks(lowest):
    """Half a chunk of log-gates must sum to >= -80: stronger gates make the kernel rerun with smaller chunks
    (here 64, 32 and 16), whose results still match the reference."""
    q, k, v = qkv(1, 2, 80, 32, 16, seed=2)
    g = log_gates(k.shape, seed=3, strength=2.0).clamp_min(lowest)
    assert g.min().item() == pytest.approx(lowest)
    assert_close(lt.gla_chunk(q, k, v, g), ref.gla_chunk(*f64(q, k, v, g)))


@pytest.mark.parametrize("chunk_size", [16, 32, 128])
def test_chunk_size_does_not_change_the_result(chunk_size):
    q, k, v = qkv(1, 2, 45, 32, 32, seed=4)
    g = log_gates(k.shape, seed=5)
    assert_close(lt.gla_chunk(q, k, v, g, chunk_size=chunk_size), ref.gla_chunk(*f64(q, k, v, g)))
    assert_close(lt.linear_attention_chunk(q, k, v, chunk_size=chunk_size), ref.linear_attention_chunk(*f64(q, k, v)))


def test_value_blocks_split_like_one_block():
    """Several programs per sequence (value blocks of 16) give what one program gives."""
    q, k, v = qkv(1, 2, 40, 16, 48, seed=6)
    out = lt.retention_chunk(q, k, v, 0.8, block_v=16, output_final_state=True)
    expected = ref.retention_chunk(*f64(q, k, v), on_device(0.8), output_final_state=True)
    for a, b in zip(out, expected):
        assert_close(a, b)


@pytest.mark.parametrize("tma", [False, True])
def test_tiles_through_descriptors_or_pointers(tma):
    """Both ways of reading tiles (tensor descriptors, masked pointers) match the reference, with states and a
    short last chunk; rows of 10 floats (40 bytes) cannot be described, so there the kernel reads by pointers."""
    assert lt.kernel.tma_usable(torch.zeros(2, 16, device=DEVICE))
    assert not lt.kernel.tma_usable(torch.zeros(2, 10, device=DEVICE))
    for d_v in (16, 10):
        q, k, v = qkv(1, 2, 70, 32, d_v, seed=15)
        g, init = log_gates(k.shape, seed=16), torch.randn(1, 2, 32, d_v, device=DEVICE)
        out = lt.gla_chunk(q, k, v, g, initial_state=init, output_final_state=True, tma=tma)
        expected = ref.gla_chunk(*f64(q, k, v, g), initial_state=init, output_final_state=True)
        for a, b in zip(out, expected):
            assert_close(a, b)
        assert_close(lt.retention_chunk(q, k, v, 0.9, tma=tma), ref.retention_chunk(*f64(q, k, v), on_device(0.9)))
        assert_close(lt.linear_attention_chunk(q, k, v, tma=tma), ref.linear_attention_chunk(*f64(q, k, v)))


def split_run(fn, q, k, v, extra, split, **kwargs):
    """Run positions [0, split) and [split, T) with the state carried between: must equal one run."""
    head = [x[..., :split, :] for x in (q, k, v, *extra)]
    tail = [x[..., split:, :] for x in (q, k, v, *extra)]
    o1, state = fn(*head, output_final_state=True, **kwargs)
    o2, final = fn(*tail, initial_state=state, output_final_state=True, **kwargs)
    return torch.cat([o1, o2], dim=-2), final


@pytest.mark.parametrize("normalize", [False, True])
def test_linear_attention_states(normalize):
    q, k, v = qkv(2, 2, 75, 32, 16, seed=7)
    out, final = split_run(lt.linear_attention_chunk, q, k, v, [], 37, normalize=normalize)
    expected, expected_final = ref.linear_attention_chunk(*f64(q, k, v), normalize=normalize,
                                                          output_final_state=True)
    assert_close(out, expected)
    if normalize:
        assert isinstance(final, tuple) and final[0].dtype == final[1].dtype == torch.float32
        assert_close(final[0], expected_final[0])
        assert_close(final[1], expected_final[1])
    else:
        assert final.dtype == torch.float32
        assert_close(final, expected_final)


def test_retention_and_gla_states():
    q, k, v = qkv(1, 3, 100, 32, 64, seed=8)
    gamma = ref.multiscale_gammas(3).to(DEVICE)
    out, final = split_run(lt.retention_chunk, q, k, v, [], 64, gamma=gamma)
    expected, expected_final = ref.retention_chunk(*f64(q, k, v), on_device(gamma), output_final_state=True)
    assert_close(out, expected)
    assert_close(final, expected_final)
    g = log_gates(k.shape, seed=9)
    out, final = split_run(lt.gla_chunk, q, k, v, [g], 1)
    expected, expected_final = ref.gla_chunk(*f64(q, k, v, g), output_final_state=True)
    assert_close(out, expected)
    assert_close(final, expected_final)


def test_other_leading_dimensions_and_float16():
    q, k, v = qkv(1, 1, 50, 32, 16, seed=10)
    q, k, v = q[0, 0], k[0, 0], v[0, 0]  # [T, d]: no batch, no heads
    assert_close(lt.retention_chunk(q, k, v, 0.95), ref.retention_chunk(*f64(q, k, v), on_device(0.95)))
    q, k, v = qkv(2, 2, 50, 32, 16, seed=11, dtype=torch.float16)
    out = lt.linear_attention_chunk(q, k, v)
    assert out.dtype == torch.float16
    assert_close(out, ref.linear_attention_chunk(*f64(q, k, v)), dtype=torch.float16)


def test_bad_input_raises():
    q, k, v = qkv(1, 2, 20, 16, 16, seed=12)
    g = log_gates(k.shape, seed=13)
    with pytest.raises(ValueError, match="same feature size"):
        lt.linear_attention_chunk(q, k[..., :8], v)
    with pytest.raises(TypeError, match="float64"):
        lt.linear_attention_chunk(*f64(q, k, v))
    with pytest.raises(ValueError, match="at most 128"):
        lt.linear_attention_chunk(q.repeat(1, 1, 1, 9), k.repeat(1, 1, 1, 9), v)
    with pytest.raises(ValueError, match="chunk_size"):
        lt.retention_chunk(q, k, v, 0.9, chunk_size=48)
    with pytest.raises(ValueError, match="gamma"):
        lt.retention_chunk(q, k, v, 1.5)
    with pytest.raises(ValueError, match="per-head"):
        lt.retention_chunk(q, k, v, ref.multiscale_gammas(3))
    nan_gates = torch.where(g < -0.04, float("nan"), g)
    for bad, message in ((-g, "log-gates"), (g - 50, "too strong"), (nan_gates, "NaN or inf")):
        with pytest.raises(ValueError, match=message):
            lt.gla_chunk(q, k, v, bad)
            lt.raise_gate_errors()  # on a GPU the check is read after the call (on the CPU it raised already)
    with pytest.raises(ValueError, match="shape"):
        lt.gla_chunk(q, k, v, g[..., :8])
    with pytest.raises(ValueError, match="initial_state"):
        lt.retention_chunk(q, k, v, 0.9, initial_state=torch.zeros(1, 2, 16, 8, device=DEVICE))
    with pytest.raises(TypeError, match="pair"):
        lt.linear_attention_chunk(q, k, v, initial_state=torch.zeros(1, 2, 16, 16, device=DEVICE))


@pytest.mark.skipif(not lt.interpreted(), reason="the interpreter's bfloat16 fault exists only on the CPU")
def test_bfloat16_is_refused_on_the_interpreter():
    q, k, v = qkv(1, 1, 8, 16, 16, seed=14, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="bfloat16"):
        lt.linear_attention_chunk(q, k, v)


def test_cpu_tensors_without_the_interpreter_say_what_to_set():
    code = ("import torch; from linattn_ref import triton as lt; x = torch.randn(1, 4, 16)\n"
            "try:\n    lt.linear_attention_chunk(x, x, x)\nexcept RuntimeError as e:\n    print(e)")
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TRITON_INTERPRET=1" in result.stdout and "before importing" in result.stdout


def test_gla_half_chunk_decays_whose_product_leaves_float32_take_the_second_pass():
    """Log-gates near -1.75 with chunks of 64: each half chunk decays the state by about exp(-56), within the
    factors' exp(80) but with a product below float32's range. The first pass multiplies the two into one vector,
    so it must leave such chunks to the second pass."""
    q, k, v = qkv(1, 2, 300, 32, 16, seed=23)
    g = -2.0 + 0.5 * torch.rand(1, 2, 300, 32, generator=torch.Generator().manual_seed(24)).to(DEVICE)
    assert_close(lt.gla_chunk(q, k, v, g), ref.gla_chunk(*f64(q, k, v, g)))


def test_gla_gates_at_the_limit_of_chunks_of_16():
    """Every log-gate near -9.9: half a chunk of 16 sums to about -79, so the state takes two decays near
    exp(-80) between one chunk's middle row and the next one's. Applied one after the other each is fine;
    multiplied together first they fall below float32's range, and the first row of every chunk went wrong."""
    q, k, v = qkv(1, 2, 300, 32, 16, seed=21)  # 5 blocks of 64 rows: second-pass programs take several each
    g = -9.9 + 0.9 * torch.rand(1, 2, 300, 32, generator=torch.Generator().manual_seed(22)).to(DEVICE)
    init = torch.randn(1, 2, 32, 16, device=DEVICE)
    out = lt.gla_chunk(q, k, v, g, initial_state=init, output_final_state=True)
    expected = ref.gla_chunk(*f64(q, k, v, g), initial_state=init, output_final_state=True)
    for a, b in zip(out, expected):
        assert_close(a, b)


@pytest.mark.parametrize("chunk_size", [32, 64, 128])
def test_gla_second_pass_with_chunks_of_16_matches_reference(chunk_size):
    """Gates too strong for the chunk: the kernels themselves redo the work with chunks of 16, no host wait;
    with a final state and an initial one, and a length that is no multiple of any chunk."""
    q, k, v = qkv(1, 2, 150, 32, 16, seed=17)
    g = log_gates(k.shape, seed=18, strength=2.0).clamp_min(-4.9)
    init = torch.randn(1, 2, 32, 16, device=DEVICE)
    out = lt.gla_chunk(q, k, v, g, chunk_size=chunk_size, initial_state=init, output_final_state=True)
    expected = ref.gla_chunk(*f64(q, k, v, g), initial_state=init, output_final_state=True)
    for a, b in zip(out, expected):
        assert_close(a, b)


@pytest.mark.parametrize("fault", ["positive", "nan", "-inf", "too strong"])
def test_gla_bad_gates_give_nan_and_the_reference_message(fault):
    """The kernels flag bad gates and fill the output and final state with NaN (never wrong numbers); the
    wrapper raises the reference's own message (on the CPU at once, on a GPU via raise_gate_errors)."""
    q, k, v = qkv(1, 2, 40, 16, 16, seed=19)
    g = log_gates(k.shape, seed=20)
    bad = {"positive": g.abs() + 0.25, "nan": torch.where(g < -0.04, float("nan"), g),
           "-inf": torch.where(g < -0.04, float("-inf"), g), "too strong": g - 50}[fault]
    status = torch.zeros(3, dtype=torch.int32, device=DEVICE)
    out, state, _ = lt.chunk_gated_forward(q, k, v, lt.kernel.GATE_VECTOR, bad, status=status, output_final_state=True)
    assert out.isnan().all() and state.isnan().all()
    if fault == "too strong":
        expected = "log-gates too strong for the Triton GLA kernel"
    else:
        with pytest.raises(ValueError) as reference_error:
            ref.gla_chunk(*f64(q, k, v, bad))
        expected = str(reference_error.value)
    with pytest.raises(ValueError) as error:
        lt.gla_chunk(q, k, v, bad)
        lt.raise_gate_errors()
    assert str(error.value).startswith(expected)
    lt.raise_gate_errors()  # reported once: nothing is left pending


def test_normalizer_on_tensor_cores_or_as_sums():
    """The normalizer as tensor-core products (the default but for float16) or as row and column sums: both
    match the reference, final normalizer included."""
    q, k, v = qkv(1, 2, 90, 32, 16, seed=21)
    q, k = ref.elu_plus_one(q), ref.elu_plus_one(k)
    init = (torch.rand(1, 2, 32, 16, device=DEVICE), torch.rand(1, 2, 32, device=DEVICE))
    expected = ref.linear_attention_chunk(*f64(q, k, v), feature_map=None, initial_state=init,
                                          output_final_state=True)
    for norm_tc in (True, False):
        o, mu, nu = lt.chunk_gated_forward(q, k, v, lt.kernel.GATE_NONE, scale=32 ** -0.5, initial_state=init[0],
                                           initial_nu=init[1], normalize=True, output_final_state=True,
                                           norm_tc=norm_tc)
        for a, b in zip((o, mu, nu), (expected[0], *expected[1])):
            assert_close(a, b)
