"""The general recurrent memory Mem_i = f((k_i, v_i), Mem_{i-1}) and the linear scan S_t = a_t S_{t-1} + b_t."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import linattn_ref as R

F64 = dict(rtol=1e-9, atol=1e-9)


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


@st.composite
def sequences(draw, max_T=20):
    """q, k [T, d_k] and v [T, d_v] in float64, with the window size w a memory may use."""
    T, d_k, d_v = draw(st.integers(1, max_T)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    q, k, v = randn(gen, T, d_k), randn(gen, T, d_k), randn(gen, T, d_v)
    return q, k, v, draw(st.integers(1, 6))


@pytest.mark.parametrize("feature_map", [R.elu_plus_one, R.taylor_exp])
@given(seq=sequences())
def test_running_sum_is_linear_attention(seq, feature_map):
    q, k, v, _ = seq
    outputs, states = R.scan_memory(R.RunningSum(feature_map), q, k, v)
    expected = R.linear_attention_recurrent(q, k, v, feature_map=feature_map, scale=1.0)
    torch.testing.assert_close(outputs, expected, **F64)
    mu, nu = R.state_variables(feature_map(k), v)
    for t, (mu_t, nu_t) in enumerate(states):  # the memory after step t is (mu_t, nu_t)
        torch.testing.assert_close(mu_t, mu[t], **F64)
        torch.testing.assert_close(nu_t, nu[t], **F64)


@given(seq=sequences())
def test_cumulative_average_is_the_running_mean(seq):
    q, k, v, _ = seq
    outputs, states = R.scan_memory(R.CumulativeAverage(), q, k, v)
    for t, (n, k_bar, v_bar) in enumerate(states):
        assert n == t + 1
        torch.testing.assert_close(k_bar, k[: t + 1].mean(0), **F64)
        torch.testing.assert_close(v_bar, v[: t + 1].mean(0), **F64)
        torch.testing.assert_close(outputs[t], v[: t + 1].mean(0), **F64)


def band_softmax_attention(q, k, v, w, scale):
    """Softmax attention in which query i sees keys i-w+1 .. i only, computed with a band mask."""
    i = torch.arange(q.shape[0])
    band = (i.view(1, -1) <= i.view(-1, 1)) & (i.view(1, -1) > i.view(-1, 1) - w)
    scores = (q @ k.T * scale).masked_fill(~band, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("scale", [1.0, 0.5])
@given(seq=sequences())
def test_fixed_window_is_softmax_attention_over_the_last_w_keys(seq, scale):
    q, k, v, w = seq
    outputs, states = R.scan_memory(R.FixedWindow(w, scale=scale), q, k, v)
    torch.testing.assert_close(outputs, band_softmax_attention(q, k, v, w, scale), **F64)
    for t, (keys, values) in enumerate(states):
        assert torch.equal(keys, k[max(0, t + 1 - w): t + 1]) and torch.equal(values, v[max(0, t + 1 - w): t + 1])


def test_a_window_as_long_as_the_sequence_is_full_softmax_attention():
    gen = torch.Generator().manual_seed(0)
    q, k, v = randn(gen, 7, 3), randn(gen, 7, 3), randn(gen, 7, 2)
    outputs, _ = R.scan_memory(R.FixedWindow(7, scale=3 ** -0.5), q, k, v)
    torch.testing.assert_close(outputs, R.softmax_attention_parallel(q, k, v), **F64)


@given(seq=sequences())
def test_hybrid_memory_keeps_w_pairs_and_the_mean_of_the_evicted_ones(seq):
    q, k, v, w = seq
    outputs, states = R.scan_memory(R.HybridMemory(w), q, k, v)
    for t, (keys, values, n, k_bar, v_bar) in enumerate(states):
        start = max(0, t + 1 - w)  # pairs before `start` have left the window
        assert keys.shape[0] <= w and n == start
        assert torch.equal(keys, k[start: t + 1]) and torch.equal(values, v[start: t + 1])
        if n:
            torch.testing.assert_close(k_bar, k[:start].mean(0), **F64)
            torch.testing.assert_close(v_bar, v[:start].mean(0), **F64)
            keys, values = torch.cat([k_bar[None], keys]), torch.cat([v_bar[None], values])  # the summary slot
        expected = torch.softmax(keys @ q[t], dim=0) @ values
        torch.testing.assert_close(outputs[t], expected, **F64)


def test_memory_updates_by_hand():
    k, v = torch.tensor([2.0, 4.0]), torch.tensor([6.0])
    n, k_bar, v_bar = R.average_update((0, torch.zeros(2), torch.zeros(1)), k, v)
    assert n == 1 and torch.equal(k_bar, k) and torch.equal(v_bar, v)
    n, k_bar, v_bar = R.average_update((n, k_bar, v_bar), torch.tensor([4.0, 0.0]), torch.tensor([0.0]))
    assert n == 2 and torch.equal(k_bar, torch.tensor([3.0, 2.0])) and torch.equal(v_bar, torch.tensor([3.0]))
    keys, values = torch.tensor([[1.0], [2.0]]), torch.tensor([[10.0], [20.0]])
    keys, values = R.window_update((keys, values), torch.tensor([3.0]), torch.tensor([30.0]), size=2)
    assert torch.equal(keys, torch.tensor([[2.0], [3.0]])) and torch.equal(values, torch.tensor([[20.0], [30.0]]))


MEMORIES = {
    "running_sum": lambda w: R.RunningSum(),
    "cumulative_average": lambda w: R.CumulativeAverage(),
    "fixed_window": lambda w: R.FixedWindow(w),
    "hybrid": lambda w: R.HybridMemory(w),
}


@pytest.mark.parametrize("memory", MEMORIES)
def test_fixed_size_memories_stop_growing(memory):
    gen = torch.Generator().manual_seed(1)
    w, d_k, d_v = 4, 3, 2
    sizes = {}
    for T in (10, 40):
        q, k, v = randn(gen, T, d_k), randn(gen, T, d_k), randn(gen, T, d_v)
        _, states = R.scan_memory(MEMORIES[memory](w), q, k, v)
        sizes[T] = [R.memory_numel(mem) for mem in states]
    steady = sizes[40][w - 1:]  # once the window is full nothing is added any more
    assert steady == [steady[0]] * len(steady), f"memory size keeps changing: {steady}"
    assert max(sizes[10]) == max(sizes[40]), "the memory holds more for a longer sequence"
    assert sizes[40] == sorted(sizes[40])
    if memory in ("running_sum", "cumulative_average"):
        assert sizes[40] == [sizes[40][0]] * 40  # fixed from the first token on


def test_memory_numel_counts_a_growing_kv_cache():
    k, v = torch.zeros(6, 3), torch.zeros(6, 2)
    assert [R.memory_numel((k[: t + 1], v[: t + 1])) for t in range(6)] == [5 * (t + 1) for t in range(6)]
    assert R.memory_numel((3, torch.zeros(2, 2), [torch.zeros(4)])) == 1 + 4 + 4


STATE_SHAPES = {"vector": ((5,), (1,)), "vector_per_entry": ((5,), (5,)), "matrix_row_gates": ((3, 4), (3, 1)),
                "matrix_scalar": ((3, 4), (1, 1))}


@pytest.mark.parametrize("with_initial", [False, True])
@pytest.mark.parametrize("state", STATE_SHAPES)
def test_parallel_scan_equals_the_sequential_recurrence(state, with_initial):
    state_shape, gate_shape = STATE_SHAPES[state]
    gen = torch.Generator().manual_seed(len(state) + with_initial)
    for T in range(1, 101):
        a = torch.rand(T, *gate_shape, generator=gen, dtype=torch.float64) * 1.2  # some |a| > 1 too
        b = randn(gen, T, *state_shape)
        initial = randn(gen, *state_shape) if with_initial else None
        sequential = R.linear_scan_sequential(a, b, initial)
        assert sequential.shape == (T, *state_shape)
        torch.testing.assert_close(R.linear_scan_parallel(a, b, initial), sequential, **F64, msg=f"T = {T}")


def test_sequential_scan_by_hand():
    a = torch.tensor([[0.5], [2.0], [1.0]])
    b = torch.tensor([[1.0], [1.0], [3.0]])
    # S_0 = 0.5 * 4 + 1 = 3,  S_1 = 2 * 3 + 1 = 7,  S_2 = 7 + 3 = 10
    assert torch.equal(R.linear_scan_sequential(a, b, torch.tensor([4.0])), torch.tensor([[3.0], [7.0], [10.0]]))


def test_gla_is_a_linear_scan_of_outer_products():
    gen = torch.Generator().manual_seed(2)
    q, k, v = randn(gen, 9, 3), randn(gen, 9, 3), randn(gen, 9, 2)
    g = -torch.rand(9, 3, generator=gen, dtype=torch.float64)
    S = R.linear_scan_parallel(g.exp().unsqueeze(-1), k.unsqueeze(-1) * v.unsqueeze(-2))  # S_t: [T, d_k, d_v]
    o = (q.unsqueeze(-2) @ S).squeeze(-2)
    torch.testing.assert_close(o, R.gla_recurrent(q, k, v, g, scale=1.0), **F64)


def test_scan_rounds_is_ceil_log2():
    for T in range(1, 1025):
        assert R.scan_rounds(T) == math.ceil(math.log2(T)) == (T - 1).bit_length(), T
    assert [R.scan_rounds(T) for T in (1, 2, 3, 4, 5, 8, 9, 4096)] == [0, 1, 2, 2, 3, 3, 4, 12]
