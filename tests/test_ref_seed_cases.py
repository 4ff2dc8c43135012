"""The worked examples of the course's source material, with answers written out by hand."""
import math

import pytest
import torch

import linattn_ref as R

# Seed 000/001: three steps of transformed keys k'_j and values v_j.
KP = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
V = torch.tensor([[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], dtype=torch.float64)
MU_1 = torch.tensor([[3.0, 4.0], [10.0, 12.0]], dtype=torch.float64)  # [[3, 4], [0, 0]] + [[0, 0], [10, 12]]
NU_1 = torch.tensor([1.0, 2.0], dtype=torch.float64)
MU_2 = torch.tensor([[10.0, 12.0], [17.0, 20.0]], dtype=torch.float64)  # MU_1 + [[7, 8], [7, 8]]
NU_2 = torch.tensor([2.0, 3.0], dtype=torch.float64)


def test_state_variables_of_the_seed_sequence():
    mu, nu = R.state_variables(KP, V)
    assert torch.equal(mu[1], MU_1) and torch.equal(nu[1], NU_1)
    assert torch.equal(mu[2], MU_2) and torch.equal(nu[2], NU_2)


def test_one_state_update_needs_only_the_new_pair():
    mu, nu = R.state_update(MU_1, NU_1, KP[2], V[2])
    assert torch.equal(mu, MU_2) and torch.equal(nu, NU_2)


def test_state_readout_by_hand():
    qp = torch.tensor([1.0, 1.0], dtype=torch.float64)
    # q' mu_2 = [10 + 17, 12 + 20] = [27, 32];  q' . nu_2 = 5
    torch.testing.assert_close(R.state_readout(qp, MU_2, NU_2), torch.tensor([5.4, 6.4], dtype=torch.float64))
    assert torch.equal(R.state_readout(qp, MU_2), torch.tensor([27.0, 32.0], dtype=torch.float64))


def test_query_5_of_8_tokens_meets_6_keys():
    assert R.num_visible_keys(8, 5) == 6
    assert [R.num_visible_keys(8, i) for i in range(8)] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_qk_pairs_of_seven_tokens_are_the_seed_enumeration():
    enumeration = [  # seed 002, one line per query: q_i meets k_0 .. k_i
        [(0, 0)],
        [(1, 0), (1, 1)],
        [(2, 0), (2, 1), (2, 2)],
        [(3, 0), (3, 1), (3, 2), (3, 3)],
        [(4, 0), (4, 1), (4, 2), (4, 3), (4, 4)],
        [(5, 0), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5)],
        [(6, 0), (6, 1), (6, 2), (6, 3), (6, 4), (6, 5), (6, 6)],
    ]
    pairs = R.qk_pairs(7)
    assert pairs == [pair for line in enumeration for pair in line]
    assert len(pairs) == 28 == 7 * 8 // 2


def test_causal_mask_of_four_tokens():
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(R.causal_mask(4), expected)
    assert [tuple(p) for p in R.causal_mask(7).nonzero().tolist()] == R.qk_pairs(7)


def test_masked_scores_hide_the_future_and_keep_the_past():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    k = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    inf = float("inf")
    expected = torch.tensor([[1.0, -inf, -inf], [2.0, 4.0, -inf], [3.0, 7.0, 11.0]], dtype=torch.float64)
    assert torch.equal(R.masked_scores(q, k, scale=1.0), expected)
    weights = torch.softmax(R.masked_scores(q, k, scale=1.0), dim=-1)
    assert torch.equal(weights.triu(1), torch.zeros(3, 3, dtype=torch.float64))  # the future gets weight 0


def test_visible_keys_of_the_seed():
    k = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert torch.equal(R.visible_keys(k, 2), k)  # the last query sees all three keys
    assert torch.equal(R.visible_keys(k, 0), torch.tensor([[1.0, 2.0]]))


def test_token_3_and_token_7_use_different_keys():
    k = torch.arange(20.0).reshape(10, 2)  # ten tokens, positions 0..9
    keys_3, keys_7 = R.visible_keys(k, 3), R.visible_keys(k, 7)
    assert keys_3.shape == (4, 2) and keys_7.shape == (8, 2)
    assert torch.equal(keys_7[:4], keys_3)  # token 7 sees token 3's keys and four more


def test_kv_cache_bytes_by_hand():
    # 32 layers, 32 heads of 128, 4096 tokens, 2-byte floats: K and V -> 2 * 4096 * 32 * 32 * 128 * 2 = 2 GiB
    assert R.kv_cache_bytes(4096, n_layers=32, n_heads=32, d_head=128) == 2 * 1024**3
    # 2 layers, 3 heads of 4, 5 tokens, float32, batch 2: 2 * 2 * 5 * 2 * 3 * 4 * 4 = 1920
    assert R.kv_cache_bytes(5, n_layers=2, n_heads=3, d_head=4, bytes_per_element=4, batch_size=2) == 1920
    # it grows linearly with the length: one more token adds one key and one value per layer and head
    assert R.kv_cache_bytes(4097, 32, 32, 128) - R.kv_cache_bytes(4096, 32, 32, 128) == 2 * 32 * 32 * 128 * 2


def test_decay_mask_written_out():
    expected = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0],
         [0.5, 1.0, 0.0, 0.0],
         [0.25, 0.5, 1.0, 0.0],
         [0.125, 0.25, 0.5, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(R.decay_mask(4, 0.5), expected, rtol=1e-15, atol=0)  # gamma^(i-j) via exp and log
    assert torch.equal(R.decay_mask(3, 1.0), torch.ones(3, 3, dtype=torch.float64).tril())


def test_decay_mask_per_head():
    mask = R.decay_mask(3, torch.tensor([0.5, 0.25]))
    assert mask.shape == (2, 3, 3)
    expected = torch.tensor([[1.0, 0, 0], [0.25, 1, 0], [0.0625, 0.25, 1]], dtype=torch.float64)
    torch.testing.assert_close(mask[1], expected, rtol=1e-15, atol=0)


def test_multiscale_gammas_of_four_heads():
    expected = torch.tensor([1 - 1 / 32, 1 - 1 / 64, 1 - 1 / 128, 1 - 1 / 256], dtype=torch.float64)
    assert torch.equal(R.multiscale_gammas(4), expected)


@pytest.mark.parametrize("gamma, horizon", [(0.5, 2.0), (0.9, 10.0), (1 - 1 / 32, 32.0)])
def test_effective_horizon(gamma, horizon):
    assert math.isclose(R.effective_horizon(gamma), horizon)


def test_chunk_boundaries_cover_the_sequence_once():
    assert R.chunk_boundaries(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert R.chunk_boundaries(8, 4) == [(0, 4), (4, 8)]
    assert R.chunk_boundaries(3, 64) == [(0, 3)]


def test_intra_chunk_scores_with_a_scalar_decay():
    q = torch.ones(3, 1, dtype=torch.float64)
    k = torch.ones(3, 1, dtype=torch.float64)
    b = torch.log(torch.tensor([[0.5], [0.25], [0.125]], dtype=torch.float64))  # cumulative log-decay 0.5 per step
    expected = torch.tensor([[1.0, 0, 0], [0.5, 1, 0], [0.25, 0.5, 1]], dtype=torch.float64)
    torch.testing.assert_close(R.intra_chunk_scores(q, k, b), expected, rtol=1e-15, atol=0)
