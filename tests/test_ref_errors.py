"""Bad input raises a TypeError or ValueError whose message names the problem."""
import re

import pytest
import torch

import linattn_ref as R

q = torch.randn(2, 3, 6, 4)  # [B, H, T, d_k]
k = torch.randn(2, 3, 6, 4)
v = torch.randn(2, 3, 6, 5)
g = -torch.rand(2, 3, 6, 4)



def gates_like(q):
    """Valid log-gates for the q under test (the bad input is elsewhere); q's checks run first."""
    return -torch.rand(q.shape).to(q.dtype)


# Every form that takes (q, k, v) and any arguments it needs besides.
QKV_FORMS = {
    "softmax_parallel": lambda q, k, v: R.softmax_attention_parallel(q, k, v),
    "softmax_recurrent": lambda q, k, v: R.softmax_attention_recurrent(q, k, v),
    "linear_noncausal": lambda q, k, v: R.linear_attention_noncausal(q, k, v),
    "linear_parallel": lambda q, k, v: R.linear_attention_parallel(q, k, v),
    "linear_recurrent": lambda q, k, v: R.linear_attention_recurrent(q, k, v),
    "linear_chunk": lambda q, k, v: R.linear_attention_chunk(q, k, v),
    "retention_parallel": lambda q, k, v: R.retention_parallel(q, k, v, 0.9),
    "retention_recurrent": lambda q, k, v: R.retention_recurrent(q, k, v, 0.9),
    "retention_chunk": lambda q, k, v: R.retention_chunk(q, k, v, 0.9),
    "gla_parallel": lambda q, k, v: R.gla_parallel(q, k, v, gates_like(q)),
    "gla_parallel_naive": lambda q, k, v: R.gla_parallel_naive(q, k, v, gates_like(q)),
    "gla_recurrent": lambda q, k, v: R.gla_recurrent(q, k, v, gates_like(q)),
    "gla_chunk": lambda q, k, v: R.gla_chunk(q, k, v, gates_like(q)),
}

BAD_QKV = {  # name -> (q, k, v, exception, a distinctive part of the message)
    "q_is_a_vector": (q[0, 0, 0], k, v, ValueError, "q must have at least 2 dimensions"),
    "k_is_a_list": (q, k.tolist(), v, TypeError, "k must be a torch.Tensor, got list"),
    "T_differs": (q, k[..., :5, :], v, ValueError, "must agree on every dimension but the last"),
    "heads_differ": (q, k, v[:, :2], ValueError, "must agree on every dimension but the last"),
    "d_k_differs": (q, k[..., :3], v, ValueError, "q and k must have the same feature size d_k"),
    "integer_values": (q, k, v.long(), TypeError, "v has dtype torch.int64"),
    "boolean_keys": (q, k > 0, v, TypeError, "k has dtype torch.bool"),
    "mixed_dtypes": (q.double(), k, v, TypeError, "q, k, v must share one dtype"),
    "empty_sequence": (q[..., :0, :], k[..., :0, :], v[..., :0, :], ValueError, "the sequence is empty"),
}


@pytest.mark.parametrize("case", BAD_QKV)
@pytest.mark.parametrize("form", QKV_FORMS)
def test_bad_q_k_v(form, case):
    q_, k_, v_, error, message = BAD_QKV[case]
    with pytest.raises(error, match=message):
        QKV_FORMS[form](q_, k_, v_)


BAD_GAMMAS = {
    "zero": (0.0, ValueError, r"gamma must lie in \(0, 1\]"),
    "above_one": (1.5, ValueError, r"gamma must lie in \(0, 1\]"),
    "nan": (float("nan"), ValueError, r"gamma must lie in \(0, 1\]"),
    "negative": (-0.5, ValueError, r"gamma must lie in \(0, 1\]"),
    "one_head_out_of_range": (torch.tensor([0.9, 1.2, 0.5]), ValueError, r"gamma must lie in \(0, 1\]"),
    "wrong_number_of_heads": (torch.tensor([0.9, 0.8]), ValueError, "gamma has 2 per-head values"),
    "matrix": (torch.full((3, 1), 0.9), ValueError, "1-D tensor"),
    "integer_tensor": (torch.tensor([1, 1, 1]), TypeError, "gamma must hold floating-point values"),
    "boolean": (True, TypeError, "gamma must be a float or a tensor"),
    "string": ("0.9", TypeError, "gamma must be a float or a tensor"),
}


@pytest.mark.parametrize("case", BAD_GAMMAS)
@pytest.mark.parametrize("form", [R.retention_parallel, R.retention_recurrent, R.retention_chunk])
def test_bad_gamma(form, case):
    gamma, error, message = BAD_GAMMAS[case]
    with pytest.raises(error, match=message):
        form(q, k, v, gamma)


def test_per_head_gamma_needs_a_head_dimension():
    with pytest.raises(ValueError, match=r"q must be \[\.\.\., H=3, T, d\]"):
        R.retention_parallel(q[0, 0], k[0, 0], v[0, 0], torch.tensor([0.9, 0.8, 0.7]))


@pytest.mark.parametrize("T, gamma, message", [(4, 0.0, r"gamma must lie in \(0, 1\]"),
                                               (0, 0.5, "sequence length T must be a positive integer")])
def test_bad_decay_mask(T, gamma, message):
    with pytest.raises(ValueError, match=message):
        R.decay_mask(T, gamma)


BAD_GATES = {
    "positive": (g.abs() + 0.1, ValueError, r"must be <= 0.*Did you pass the gates alpha instead of log\(alpha\)"),
    "nan": (g.masked_fill(g < -0.5, float("nan")), ValueError, "contains NaN or inf"),
    "minus_inf": (g.masked_fill(g < -0.5, float("-inf")), ValueError, "contains NaN or inf"),
    "wrong_shape": (g[..., :1], ValueError, r"g \(log-gates\) must have the shape of k"),
    "integer": (g.long(), TypeError, "g has dtype torch.int64"),
}


@pytest.mark.parametrize("case", BAD_GATES)
@pytest.mark.parametrize("form", [R.gla_parallel, R.gla_parallel_naive, R.gla_recurrent, R.gla_chunk])
def test_bad_log_gates(form, case):
    gates, error, message = BAD_GATES[case]
    with pytest.raises(error, match=message):
        form(q, k, v, gates)


CHUNK_FORMS = {
    "linear": lambda chunk_size: R.linear_attention_chunk(q, k, v, chunk_size=chunk_size),
    "retention": lambda chunk_size: R.retention_chunk(q, k, v, 0.9, chunk_size=chunk_size),
    "gla": lambda chunk_size: R.gla_chunk(q, k, v, g, chunk_size=chunk_size),
}


@pytest.mark.parametrize("chunk_size", [0, -4, 2.5, True, None])
@pytest.mark.parametrize("form", CHUNK_FORMS)
def test_bad_chunk_size(form, chunk_size):
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        CHUNK_FORMS[form](chunk_size)


@pytest.mark.parametrize("form", [R.linear_attention_noncausal, R.linear_attention_parallel,
                                  R.linear_attention_recurrent, R.linear_attention_chunk])
def test_feature_map_must_be_callable(form):
    with pytest.raises(TypeError, match="feature_map must be a callable or None, got str"):
        form(q, k, v, feature_map="elu")


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), "0.5", True])
def test_bad_scale(scale):
    with pytest.raises(TypeError, match="scale must be a finite number or None"):
        R.softmax_attention_parallel(q, k, v, scale=scale)


STATE_FORMS = {  # form, a state of the wrong shape, exception, message
    "linear_recurrent_normalized": (R.linear_attention_recurrent, {}, torch.zeros(2, 3, 4, 5), TypeError,
                                    r"initial_state must be the pair \(mu, nu\)"),
    "linear_chunk_nu_shape": (R.linear_attention_chunk, {}, (torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, 5)),
                              ValueError, r"initial_state nu must have shape \(2, 3, 4\)"),
    "linear_chunk_unnormalized": (R.linear_attention_chunk, {"normalize": False}, torch.zeros(2, 3, 5, 4),
                                  ValueError, r"initial_state must have shape \(2, 3, 4, 5\)"),
    "retention_chunk": (R.retention_chunk, {"gamma": 0.5}, torch.zeros(3, 4, 5), ValueError,
                        r"initial_state must have shape \(2, 3, 4, 5\)"),
    "retention_recurrent": (R.retention_recurrent, {"gamma": 0.5}, torch.zeros(2, 3, 4, 5).long(), TypeError,
                            "initial_state has dtype torch.int64"),
    "gla_recurrent": (R.gla_recurrent, {"g": g}, torch.zeros(2, 3, 4, 4), ValueError,
                      r"initial_state must have shape \(2, 3, 4, 5\)"),
    "gla_chunk": (R.gla_chunk, {"g": g}, [torch.zeros(2, 3, 4, 5)], TypeError,
                  "initial_state must be a torch.Tensor, got list"),
}


@pytest.mark.parametrize("case", STATE_FORMS)
def test_bad_initial_state(case):
    form, options, state, error, message = STATE_FORMS[case]
    with pytest.raises(error, match=message):
        form(q, k, v, initial_state=state, **options)


@pytest.mark.parametrize("i, error, message", [(3, ValueError, r"position i=3 is outside the sequence 0\.\.2"),
                                               (-1, ValueError, r"position i=-1 is outside the sequence 0\.\.2"),
                                               (1.0, TypeError, "position i must be an integer")])
def test_visible_keys_position_out_of_range(i, error, message):
    with pytest.raises(error, match=message):
        R.visible_keys(torch.zeros(3, 2), i)


OTHER_BAD_CALLS = {  # name -> (call, exception, message)
    "num_visible_keys_past_the_end": (lambda: R.num_visible_keys(8, 8), ValueError, "outside the sequence 0..7"),
    "causal_mask_of_nothing": (lambda: R.causal_mask(0), ValueError, "T must be a positive integer, got 0"),
    "qk_pairs_of_a_float": (lambda: R.qk_pairs(3.0), ValueError, "T must be a positive integer, got 3.0"),
    "masked_scores_shapes": (lambda: R.masked_scores(q, k[..., :3]), ValueError, "q and k must have the same shape"),
    "masked_scores_dtypes": (lambda: R.masked_scores(q, k.double()), TypeError, "q and k must share one dtype"),
    "kv_cache_no_layers": (lambda: R.kv_cache_bytes(10, 0, 8, 64), ValueError, "n_layers must be a positive integer"),
    "kv_cache_half_byte": (lambda: R.kv_cache_bytes(10, 2, 8, 64, bytes_per_element=0.5), ValueError,
                           "bytes_per_element must be a positive integer"),
    "multiscale_no_heads": (lambda: R.multiscale_gammas(0), ValueError, "must be a positive integer"),
    "state_update_shapes": (lambda: R.state_update(torch.zeros(2, 3), torch.zeros(2), torch.zeros(3), torch.zeros(3)),
                            ValueError, "shapes do not fit"),
    "state_variables_T": (lambda: R.state_variables(torch.zeros(4, 2), torch.zeros(3, 2)), ValueError,
                          r"kp and v must agree on \[\.\.\., T\]"),
    "gla_gates_chain": (lambda: R.gla_gates(torch.zeros(5, 6), torch.zeros(5, 2), torch.zeros(2, 3), torch.zeros(3)),
                        ValueError, "shapes do not chain"),
    "gla_gates_tau": (lambda: R.gla_gates(torch.zeros(5, 6), torch.zeros(6, 2), torch.zeros(2, 3), torch.zeros(3),
                                          tau=0), ValueError, "tau must be a positive number"),
    "breakdown_of_a_positive_gate": (lambda: R.naive_breakdown_length(0.1), ValueError,
                                     "mean_log_gate must be negative"),
    "window_of_zero": (lambda: R.FixedWindow(0), ValueError, "window size must be a positive integer"),
    "hybrid_window_of_a_float": (lambda: R.HybridMemory(2.0), ValueError, "window size must be a positive integer"),
    "scan_memory_with_heads": (lambda: R.scan_memory(R.RunningSum(), q, k, v), ValueError,
                               r"q must be \[T, d\] for a memory scan"),
    "scan_memory_lengths": (lambda: R.scan_memory(R.RunningSum(), q[0, 0], k[0, 0, :5], v[0, 0]), ValueError,
                            "q, k, v do not fit"),
    "scan_lengths": (lambda: R.linear_scan_parallel(torch.ones(4, 1), torch.ones(5, 2)), ValueError,
                     "a and b need the same length T"),
    "scan_broadcast": (lambda: R.linear_scan_sequential(torch.ones(4, 3), torch.ones(4, 2)), ValueError,
                       r"a \(4, 3\) must broadcast against b \(4, 2\)"),
    "scan_integer": (lambda: R.linear_scan_parallel(torch.ones(4, 1), torch.ones(4, 2).long()), TypeError,
                     "b has dtype torch.int64"),
}


@pytest.mark.parametrize("case", OTHER_BAD_CALLS)
def test_other_bad_calls(case):
    call, error, message = OTHER_BAD_CALLS[case]
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("call, error, phrase", [
    (lambda: R.chunk_boundaries(10, 0), ValueError, "chunk_size must be a positive integer"),
    (lambda: R.scan_rounds(0), ValueError, "positive integer"),
    (lambda: R.effective_horizon(1.5), ValueError, "(0, 1]"),
    (lambda: R.linear_scan_sequential(torch.ones(0, 2), torch.ones(0, 2)), ValueError, "T = 0"),
    (lambda: R.softmax_attention_step(torch.randn(4), torch.ones(3, 4, dtype=torch.long), torch.ones(3, 4)),
     TypeError, "k_cache has dtype torch.int64"),
    (lambda: R.softmax_attention_step(torch.randn(5), torch.randn(3, 4), torch.randn(3, 4)), ValueError,
     "does not fit the cache"),
    (lambda: R.scan_memory(R.CumulativeAverage(), torch.randn(3, 2), torch.randn(3, 2).double(),
                           torch.randn(3, 2)), TypeError, "share one dtype"),
])
def test_small_functions_name_bad_input(call, error, phrase):
    with pytest.raises(error, match=re.escape(phrase)):
        call()


def test_effective_horizon_of_no_decay_is_infinite():
    assert R.effective_horizon(1.0) == float("inf")
    assert R.effective_horizon(0.96875) == pytest.approx(32.0)
