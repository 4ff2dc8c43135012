"""The parallel, recurrent and chunked forms of every family agree, stay causal, keep their dtype and carry
their state across a split. Hypothesis draws shapes ([T, d], [H, T, d], [B, H, T, d]; d_k != d_v), chunk
sizes that do and do not divide T, and the values (through a seed); references are computed in float64.
"""
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import linattn_ref as R
from linattn_ref.retnet import per_head

F64 = dict(rtol=1e-9, atol=1e-9)  # float64 forms agree to rounding
LEADS = [(), (3,), (2, 3)]  # the dimensions before [T, d]
FEATURE_MAPS = {"elu_plus_one": R.elu_plus_one, "relu": R.relu, "identity": None, "taylor_exp": R.taylor_exp}

Seq = namedtuple("Seq", "q k v g")


def make_seq(seed, lead, T, d_k, d_v, spread=1.0, dtype=torch.float64):
    """q, k, v and GLA log-gates g (< 0, from mild to strong decay) for one seed."""
    gen = torch.Generator().manual_seed(seed)
    q, k = (spread * torch.randn(*lead, T, d_k, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(*lead, T, d_v, generator=gen, dtype=torch.float64)
    g = F.logsigmoid(torch.randn(*lead, T, d_k, generator=gen, dtype=torch.float64) + 2.0)
    return Seq(*(x.to(dtype) for x in (q, k, v, g)))


@st.composite
def seqs(draw, min_T=1, max_T=24, leads=LEADS):
    lead = draw(st.sampled_from(leads))
    T = draw(st.integers(min_T, max_T))
    d_k, d_v = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    spread = draw(st.floats(0.1, 3.0))
    return make_seq(draw(st.integers(0, 2**32 - 1)), lead, T, d_k, d_v, spread)


chunk_sizes = st.integers(1, 30)  # divides T or not, smaller or larger than T
gammas = st.floats(0.05, 1.0)


def positive(x):
    """Inputs for which relu / identity features keep every q' . k' > 0, so normalizing is safe."""
    return x.abs() + 0.1


def per_head_gamma(seq, gamma):
    """A different decay per head, [H], when the sequence has a head dimension; else the float itself."""
    if seq.q.ndim < 3:
        return gamma
    H = seq.q.shape[-3]
    return torch.linspace(gamma, 1.0, H, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------
# Each family's forms agree


@given(seqs())
def test_softmax_parallel_recurrent_and_torch_sdpa_agree(seq):
    q, k, v, _ = seq
    parallel = R.softmax_attention_parallel(q, k, v)
    torch.testing.assert_close(R.softmax_attention_recurrent(q, k, v), parallel, **F64)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, is_causal=True), parallel, **F64)


def test_softmax_step_is_one_row_of_the_parallel_form():
    q, k, v, _ = make_seq(0, (2,), 6, 3, 4)
    parallel = R.softmax_attention_parallel(q, k, v)
    for t in range(6):
        step = R.softmax_attention_step(q[:, t], k[:, : t + 1], v[:, : t + 1], scale=3 ** -0.5)
        torch.testing.assert_close(step, parallel[:, t], **F64)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("feature_map", FEATURE_MAPS)
@given(seq=seqs(), chunk_size=chunk_sizes)
def test_linear_attention_parallel_recurrent_chunk_agree(seq, chunk_size, feature_map, normalize):
    q, k, v, _ = seq
    if normalize and feature_map in ("relu", "identity"):
        q, k = positive(q), positive(k)
    opts = dict(feature_map=FEATURE_MAPS[feature_map], normalize=normalize)
    parallel = R.linear_attention_parallel(q, k, v, **opts)
    torch.testing.assert_close(R.linear_attention_recurrent(q, k, v, **opts), parallel, **F64)
    torch.testing.assert_close(R.linear_attention_chunk(q, k, v, chunk_size=chunk_size, **opts), parallel, **F64)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("feature_map", ["elu_plus_one", "taylor_exp"])
@given(seq=seqs(max_T=10, leads=[()]))
def test_linear_attention_noncausal_equals_an_explicit_sum(seq, feature_map, normalize):
    q, k, v, _ = seq
    phi = FEATURE_MAPS[feature_map]
    scale = q.shape[-1] ** -0.5
    T = q.shape[0]
    expected = torch.zeros_like(v)
    for i in range(T):
        weights = [scale * (phi(q[i]) @ phi(k[j])) for j in range(T)]  # every key, past and future
        expected[i] = sum(w * v[j] for j, w in enumerate(weights))
        if normalize:
            expected[i] /= sum(weights)
    got = R.linear_attention_noncausal(q, k, v, feature_map=phi, normalize=normalize)
    torch.testing.assert_close(got, expected, **F64)


@given(seq=seqs(), chunk_size=chunk_sizes, gamma=gammas, heads=st.booleans())
def test_retention_parallel_recurrent_chunk_agree(seq, chunk_size, gamma, heads):
    q, k, v, _ = seq
    gamma = per_head_gamma(seq, gamma) if heads else gamma
    parallel = R.retention_parallel(q, k, v, gamma)
    torch.testing.assert_close(R.retention_recurrent(q, k, v, gamma), parallel, **F64)
    torch.testing.assert_close(R.retention_chunk(q, k, v, gamma, chunk_size=chunk_size), parallel, **F64)


def test_retention_per_head_gamma_runs_each_head_with_its_own_decay():
    q, k, v, _ = make_seq(1, (2, 3), 9, 4, 2)
    gammas_h = R.multiscale_gammas(3)
    together = R.retention_chunk(q, k, v, gammas_h, chunk_size=4)
    for h in range(3):
        alone = R.retention_parallel(q[:, h], k[:, h], v[:, h], gammas_h[h].item())
        torch.testing.assert_close(together[:, h], alone, **F64)


@given(seq=seqs(), chunk_size=chunk_sizes)
def test_gla_parallel_recurrent_chunk_and_naive_agree_on_short_sequences(seq, chunk_size):
    q, k, v, g = seq
    parallel = R.gla_parallel(q, k, v, g)
    torch.testing.assert_close(R.gla_recurrent(q, k, v, g), parallel, **F64)
    torch.testing.assert_close(R.gla_chunk(q, k, v, g, chunk_size=chunk_size), parallel, **F64)
    torch.testing.assert_close(R.gla_parallel_naive(q, k, v, g), parallel, **F64)


@pytest.mark.parametrize("T, chunk_size", [(1, 1), (1, 8), (8, 4), (9, 4), (7, 16), (16, 16), (17, 16), (5, 1)])
def test_chunk_forms_at_the_edges_of_the_partition(T, chunk_size):
    q, k, v, g = make_seq(T * 100 + chunk_size, (2, 3), T, 3, 5)
    gamma = R.multiscale_gammas(3)
    torch.testing.assert_close(R.linear_attention_chunk(q, k, v, chunk_size=chunk_size),
                               R.linear_attention_recurrent(q, k, v), **F64)
    torch.testing.assert_close(R.retention_chunk(q, k, v, gamma, chunk_size=chunk_size),
                               R.retention_recurrent(q, k, v, gamma), **F64)
    torch.testing.assert_close(R.gla_chunk(q, k, v, g, chunk_size=chunk_size), R.gla_recurrent(q, k, v, g), **F64)


def test_explicit_scale_is_used():
    q, k, v, g = make_seq(2, (), 6, 3, 2)
    for form in (R.linear_attention_parallel, R.linear_attention_recurrent, R.linear_attention_chunk):
        torch.testing.assert_close(form(q, k, v, feature_map=None, normalize=False, scale=0.5),
                                   form(0.5 * q, k, v, feature_map=None, normalize=False, scale=1.0), **F64)
    torch.testing.assert_close(R.retention_parallel(q, k, v, 0.9, scale=2.0),
                               R.retention_recurrent(2 * q, k, v, 0.9, scale=1.0), **F64)
    torch.testing.assert_close(R.gla_chunk(q, k, v, g, scale=2.0), R.gla_parallel(2 * q, k, v, g, scale=1.0), **F64)


# ---------------------------------------------------------------------------------------------------------
# One recurrence: identities across the families


@given(seq=seqs(), chunk_size=chunk_sizes, gamma=gammas, heads=st.booleans())
def test_retention_is_gla_with_a_constant_gate_log_gamma(seq, chunk_size, gamma, heads):
    q, k, v, _ = seq
    gamma = per_head_gamma(seq, gamma) if heads else gamma
    log_gamma = torch.as_tensor(gamma, dtype=torch.float64).log()
    g = per_head(log_gamma).expand(k.shape)
    torch.testing.assert_close(R.retention_parallel(q, k, v, gamma), R.gla_parallel(q, k, v, g), **F64)
    torch.testing.assert_close(R.retention_recurrent(q, k, v, gamma), R.gla_recurrent(q, k, v, g), **F64)
    torch.testing.assert_close(R.retention_chunk(q, k, v, gamma, chunk_size=chunk_size),
                               R.gla_chunk(q, k, v, g, chunk_size=chunk_size), **F64)


@given(seq=seqs(), chunk_size=chunk_sizes)
def test_plain_linear_attention_is_retention_with_gamma_one(seq, chunk_size):
    q, k, v, _ = seq
    plain = dict(feature_map=None, normalize=False)
    torch.testing.assert_close(R.linear_attention_parallel(q, k, v, **plain), R.retention_parallel(q, k, v, 1.0), **F64)
    torch.testing.assert_close(R.linear_attention_recurrent(q, k, v, **plain), R.retention_recurrent(q, k, v, 1.0),
                               **F64)
    torch.testing.assert_close(R.linear_attention_chunk(q, k, v, chunk_size=chunk_size, **plain),
                               R.retention_chunk(q, k, v, 1.0, chunk_size=chunk_size), **F64)


@given(seqs(leads=[()]))
def test_taylor_exp_features_give_positive_denominators(seq):
    q, k, _, _ = seq
    s = q @ k.T
    qp, kp = R.taylor_exp(q), R.taylor_exp(k)
    assert qp.shape[-1] == 1 + q.shape[-1] + q.shape[-1] ** 2
    torch.testing.assert_close(qp @ kp.T, 1 + s + s**2 / 2, **F64)  # the second-order Taylor series of exp
    _, nu = R.state_variables(kp, torch.ones_like(q[:, :1]))
    denominators = (qp * nu).sum(-1)  # q'_i . nu_i
    T = q.shape[0]
    assert (denominators >= 0.5 * torch.arange(1, T + 1, dtype=torch.float64) - 1e-9).all()


@pytest.mark.parametrize("feature_map", ["elu_plus_one", "taylor_exp"])
@given(seq=seqs(), chunk_size=chunk_sizes)
def test_normalized_linear_attention_averages_the_visible_values(seq, chunk_size, feature_map):
    """With positive weights each output is a weighted mean of v_0..v_i: inside their range, column by column."""
    q, k, v, _ = seq
    o = R.linear_attention_chunk(q, k, v, feature_map=FEATURE_MAPS[feature_map], chunk_size=chunk_size)
    assert (o >= v.cummin(dim=-2).values - 1e-9).all()
    assert (o <= v.cummax(dim=-2).values + 1e-9).all()


# ---------------------------------------------------------------------------------------------------------
# Properties every causal form shares

CAUSAL_FORMS = {
    "softmax_parallel": lambda q, k, v, g: R.softmax_attention_parallel(q, k, v),
    "softmax_recurrent": lambda q, k, v, g: R.softmax_attention_recurrent(q, k, v),
    "linear_parallel": lambda q, k, v, g: R.linear_attention_parallel(q, k, v),
    "linear_recurrent": lambda q, k, v, g: R.linear_attention_recurrent(q, k, v),
    "linear_chunk": lambda q, k, v, g: R.linear_attention_chunk(q, k, v, chunk_size=4),
    "linear_unnormalized_chunk": lambda q, k, v, g: R.linear_attention_chunk(q, k, v, normalize=False, chunk_size=3),
    "taylor_chunk": lambda q, k, v, g: R.linear_attention_chunk(q, k, v, feature_map=R.taylor_exp, chunk_size=4),
    "retention_parallel": lambda q, k, v, g: R.retention_parallel(q, k, v, 0.8),
    "retention_recurrent": lambda q, k, v, g: R.retention_recurrent(q, k, v, 0.8),
    "retention_chunk": lambda q, k, v, g: R.retention_chunk(q, k, v, 0.8, chunk_size=4),
    "gla_parallel": lambda q, k, v, g: R.gla_parallel(q, k, v, g),
    "gla_parallel_naive": lambda q, k, v, g: R.gla_parallel_naive(q, k, v, g),
    "gla_recurrent": lambda q, k, v, g: R.gla_recurrent(q, k, v, g),
    "gla_chunk": lambda q, k, v, g: R.gla_chunk(q, k, v, g, chunk_size=4),
}


@pytest.mark.parametrize("form", CAUSAL_FORMS)
@given(seq=seqs(min_T=2, max_T=12), data=st.data())
def test_future_tokens_never_change_earlier_outputs(seq, data, form):
    i = data.draw(st.integers(0, seq.q.shape[-2] - 2), label="i")
    gen = torch.Generator().manual_seed(i)
    changed = []
    for x in seq:  # new q, k, v and gates at every position after i
        x = x.clone()
        x[..., i + 1:, :] = -torch.rand(x[..., i + 1:, :].shape, generator=gen, dtype=x.dtype) * 3
        changed.append(x)
    before, after = CAUSAL_FORMS[form](*seq), CAUSAL_FORMS[form](*changed)
    assert torch.equal(before[..., : i + 1, :], after[..., : i + 1, :]), f"a future token leaks into position <= {i}"
    assert not torch.equal(before, after)  # the change did reach the later positions


@pytest.mark.parametrize("form", CAUSAL_FORMS)
@given(seq=seqs(max_T=12))
def test_float32_in_float32_out_close_to_float64(seq, form):
    expected = CAUSAL_FORMS[form](*seq)
    got = CAUSAL_FORMS[form](*(x.float() for x in seq))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype, ulp", [(torch.float16, 2.0**-10), (torch.bfloat16, 2.0**-7)])
@pytest.mark.parametrize("form", CAUSAL_FORMS)
def test_half_precision_is_accepted_and_computed_in_float32(form, dtype, ulp):
    """Half inputs come back in their dtype, within one rounding of the float64 result on the same inputs."""
    seq = make_seq(3, (2,), 10, 4, 3, dtype=dtype)
    got = CAUSAL_FORMS[form](*seq)
    assert got.dtype == dtype
    expected = CAUSAL_FORMS[form](*(x.double() for x in seq))
    torch.testing.assert_close(got.double(), expected, rtol=ulp, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# initial_state / output_final_state: a sequence cut in two and continued from the saved state


def linear(normalize, chunked):
    def run(q, k, v, g, **state):
        if chunked:
            return R.linear_attention_chunk(q, k, v, normalize=normalize, chunk_size=3, **state)
        return R.linear_attention_recurrent(q, k, v, normalize=normalize, **state)
    return run


def retention(chunked):
    def run(q, k, v, g, **state):
        gamma = R.multiscale_gammas(q.shape[-3]) if q.ndim >= 3 else 0.7
        if chunked:
            return R.retention_chunk(q, k, v, gamma, chunk_size=3, **state)
        return R.retention_recurrent(q, k, v, gamma, **state)
    return run


def gla(chunked):
    def run(q, k, v, g, **state):
        if chunked:
            return R.gla_chunk(q, k, v, g, chunk_size=3, **state)
        return R.gla_recurrent(q, k, v, g, **state)
    return run


FAMILIES = {
    "linear_normalized": lambda chunked: linear(True, chunked),
    "linear_unnormalized": lambda chunked: linear(False, chunked),
    "retention": retention,
    "gla": gla,
}
FORM_PAIRS = {"recurrent": (False, False), "chunk": (True, True), "chunk->recurrent": (True, False),
              "recurrent->chunk": (False, True)}


def split(seq, t):
    return Seq(*(x[..., :t, :] for x in seq)), Seq(*(x[..., t:, :] for x in seq))


def assert_states_close(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, **F64)
    else:
        torch.testing.assert_close(a, b, **F64)


@pytest.mark.parametrize("pair", FORM_PAIRS)
@pytest.mark.parametrize("family", FAMILIES)
@given(seq=seqs(min_T=2, max_T=16), data=st.data())
def test_continuing_from_the_saved_state_equals_one_run(seq, data, family, pair):
    first_chunked, second_chunked = FORM_PAIRS[pair]
    first, second = FAMILIES[family](first_chunked), FAMILIES[family](second_chunked)
    t = data.draw(st.integers(1, seq.q.shape[-2] - 1), label="split at")
    head, tail = split(seq, t)
    o_whole, state_whole = first(*seq, output_final_state=True)
    o_head, state_head = first(*head, output_final_state=True)
    o_tail, state_tail = second(*tail, initial_state=state_head, output_final_state=True)
    torch.testing.assert_close(torch.cat([o_head, o_tail], dim=-2), o_whole, **F64)
    assert_states_close(state_tail, state_whole)


@pytest.mark.parametrize("chunked", [False, True])
def test_final_state_of_normalized_linear_attention_is_mu_and_nu(chunked):
    q, k, v, g = make_seq(4, (2,), 7, 3, 2)
    _, (mu, nu) = linear(True, chunked)(q, k, v, g, output_final_state=True)
    mu_all, nu_all = R.state_variables(R.elu_plus_one(k), v)
    torch.testing.assert_close(mu, mu_all[..., -1, :, :], **F64)
    torch.testing.assert_close(nu, nu_all[..., -1, :], **F64)
    _, mu_plain = linear(False, chunked)(q, k, v, g, output_final_state=True)
    torch.testing.assert_close(mu_plain, mu, **F64)


def test_forms_return_only_the_output_unless_asked_for_the_state():
    q, k, v, g = make_seq(5, (), 5, 2, 2)
    for o in (R.linear_attention_recurrent(q, k, v), R.linear_attention_chunk(q, k, v),
              R.retention_recurrent(q, k, v, 0.5), R.retention_chunk(q, k, v, 0.5),
              R.gla_recurrent(q, k, v, g), R.gla_chunk(q, k, v, g)):
        assert isinstance(o, torch.Tensor) and o.shape == v.shape
