"""GLA's gates and why its parallel form works in log space."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import linattn_ref as R

LOG_HALF_OVER_16 = math.log(0.5) / 16  # alpha = sigmoid(0) ** (1/16): the usual gate at initialisation


@given(lead=st.sampled_from([(), (2,)]), T=st.integers(1, 8), d_model=st.integers(1, 8), rank=st.integers(1, 3),
       d_k=st.integers(1, 5), tau=st.floats(1.0, 32.0), seed=st.integers(0, 2**32 - 1))
def test_gla_gates_are_negative_log_gates_of_shape_t_by_dk(lead, T, d_model, rank, d_k, tau, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, T, d_model, generator=gen, dtype=torch.float64)
    w_down = torch.randn(d_model, rank, generator=gen, dtype=torch.float64)
    w_up = torch.randn(rank, d_k, generator=gen, dtype=torch.float64)
    bias = torch.randn(d_k, generator=gen, dtype=torch.float64)
    g = R.gla_gates(x, w_down, w_up, bias, tau=tau)
    assert g.shape == (*lead, T, d_k)
    assert (g < 0).all()
    # alpha = exp(g) is sigmoid(x W_down W_up + bias) ** (1 / tau)
    torch.testing.assert_close((g * tau).exp(), torch.sigmoid(x @ w_down @ w_up + bias), rtol=1e-9, atol=1e-12)
    # a higher temperature moves every gate towards 1: a slower fade
    assert (R.gla_gates(x, w_down, w_up, bias, tau=2 * tau) > g).all()


def test_gates_at_initialisation_are_sigmoid_0_to_the_one_over_tau():
    x = torch.randn(5, 6)
    g = R.gla_gates(x, torch.zeros(6, 2), torch.zeros(2, 3), torch.zeros(3), tau=16.0)
    torch.testing.assert_close(g, torch.full((5, 3), LOG_HALF_OVER_16))


def test_naive_breakdown_length():
    assert abs(R.naive_breakdown_length(LOG_HALF_OVER_16) - 2048) <= 1
    assert abs(R.naive_breakdown_length(LOG_HALF_OVER_16, torch.float64) - 16384) <= 1  # float64 lasts 8x longer
    assert R.naive_breakdown_length(2 * LOG_HALF_OVER_16) == pytest.approx(1024, abs=1)  # stronger decay: sooner


def long_sequence(T, d=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(T, d, generator=gen) for _ in range(3))
    return q, k, v, torch.full((T, d), LOG_HALF_OVER_16)


def test_naive_parallel_gla_breaks_past_the_breakdown_length_and_log_space_does_not():
    L = R.naive_breakdown_length(LOG_HALF_OVER_16)
    q, k, v, g = long_sequence(L + 64)
    naive = R.gla_parallel_naive(q, k, v, g)
    assert naive.dtype == torch.float32
    finite_rows = torch.isfinite(naive).all(dim=-1)
    assert not finite_rows.all(), "the naive form should overflow past the breakdown length"
    first_broken = int((~finite_rows).nonzero()[0])
    assert L - 64 <= first_broken <= L, f"naive form broke at step {first_broken}, predicted near {L}"
    stable = R.gla_parallel(q, k, v, g)
    assert torch.isfinite(stable).all()
    recurrent = R.gla_recurrent(q, k, v, g)
    torch.testing.assert_close(stable, recurrent, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(R.gla_chunk(q, k, v, g), recurrent, rtol=1e-4, atol=1e-4)


def test_naive_parallel_gla_is_fine_well_before_the_breakdown_length():
    q, k, v, g = long_sequence(R.naive_breakdown_length(LOG_HALF_OVER_16) // 2, seed=1)
    torch.testing.assert_close(R.gla_parallel_naive(q, k, v, g), R.gla_recurrent(q, k, v, g), rtol=1e-4, atol=1e-4)


def test_gla_with_no_forgetting_is_plain_linear_attention():
    q, k, v, g = long_sequence(12, d=3, seed=2)
    plain = R.linear_attention_recurrent(q, k, v, feature_map=None, normalize=False)
    torch.testing.assert_close(R.gla_chunk(q, k, v, torch.zeros_like(g), chunk_size=5), plain)
