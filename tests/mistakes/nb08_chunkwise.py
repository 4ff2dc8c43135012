"""Wrong answers to notebook 08: the chunkwise parallel form."""
import torch

from linattn_ref.retnet import per_head

from . import default_scale, right, wrong

# ---------------------------------------------------------------- intra_chunk_scores


def _lower(C):
    return torch.ones(C, C, dtype=torch.bool).tril()


def _decay(b):
    return b.unsqueeze(-2) - b.unsqueeze(-3)  # [..., C(i), C(j), d]: b_i - b_j


@wrong("intra_chunk_scores", "upper triangle")
def scores_upper(q, k, b=None):
    C = q.shape[-2]
    if b is None:
        return (q @ k.mT).triu()
    diff = _decay(b).masked_fill(~_lower(C).mT.unsqueeze(-1), float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, diff.exp())


@wrong("intra_chunk_scores", "sign is flipped")
def scores_flipped_exponent(q, k, b=None):
    C = q.shape[-2]
    if b is None:
        return (q @ k.mT).tril()
    diff = (-_decay(b)).masked_fill(~_lower(C).unsqueeze(-1), float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, diff.exp())


@wrong("intra_chunk_scores", "future tokens leak")
def scores_mask_after_exp(q, k, b=None):
    if b is None:
        return q @ k.mT
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, _decay(b).exp())  # the mask is forgotten


@wrong("intra_chunk_scores", "off-by-one")
def scores_strict(q, k, b=None):
    C = q.shape[-2]
    if b is None:
        return (q @ k.mT).tril(-1)
    diff = _decay(b).masked_fill(~_lower(C).tril(-1).unsqueeze(-1), float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, diff.exp())


@wrong("intra_chunk_scores", "raised")
def scores_scalar_decay_only(q, k, b=None):
    C = q.shape[-2]
    A = (q @ k.mT).masked_fill(~_lower(C), 0.0)
    if b is None:
        return A
    return A * (b - b.mT).exp().masked_fill(~_lower(C), 0.0)  # works for b [C, 1] only


@wrong("intra_chunk_scores", "exp before the mask")
def scores_exp_then_mask(q, k, b=None):
    C = q.shape[-2]
    if b is None:
        return (q @ k.mT) * _lower(C)
    decay = _decay(b).exp() * _lower(C).unsqueeze(-1)  # exp(93) = inf above the diagonal, then inf * 0 = NaN
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, decay)


@wrong("intra_chunk_scores", "naive form")
def scores_factored(q, k, b=None):
    C = q.shape[-2]
    if b is None:
        return (q @ k.mT).tril()
    return ((q * b.exp()) @ (k * (-b).exp()).mT).masked_fill(~_lower(C), 0.0)  # exp(-b) overflows for b < -88.7


# ---------------------------------------------------------------- the chunked forms


def _chunked(q, k, v, g, scale, C, carry=True, decay_state=True, initial_state=None, output_final_state=False,
             scores=None):
    """A learner's chunk loop; carry=False and decay_state=False are the two classic slips. scores(qc, kc, b):
    the intra-chunk scores, when not the right ones."""
    T, d_k, d_v = q.shape[-2], q.shape[-1], v.shape[-1]
    S = q.new_zeros(*q.shape[:-2], d_k, d_v) if initial_state is None else initial_state
    q = q * scale
    out = []
    for start in range(0, T, C):
        qc, kc, vc = q[..., start:start + C, :], k[..., start:start + C, :], v[..., start:start + C, :]
        n = qc.shape[-2]
        if not carry:
            S = torch.zeros_like(S)
        if g is None:
            out.append((qc @ kc.mT).tril() @ vc + qc @ S)
            S = S + kc.mT @ vc
            continue
        b = g[..., start:start + C, :].cumsum(-2)
        diff = _decay(b).masked_fill(~_lower(n).unsqueeze(-1), float("-inf"))
        intra = torch.einsum("...ic,...jc,...ijc->...ij", qc, kc, diff.exp()) if scores is None else scores(qc, kc, b)
        inter = (qc * b.exp()) @ S if decay_state else qc @ S
        out.append(intra @ vc + inter)
        S = b[..., -1:, :].mT.exp() * S + (kc * (b[..., -1:, :] - b).exp()).mT @ vc
    o = torch.cat(out, -2)
    return (o, S) if output_final_state else o



@wrong("chunk_gated_linear_attention", "not carried across chunks")
def core_chunk_local(q, k, v, g=None, scale=1.0, chunk_size=64):
    return _chunked(q, k, v, g, scale, chunk_size, carry=False)


@wrong("chunk_gated_linear_attention", "gates are ignored")
def core_no_gates(q, k, v, g=None, scale=1.0, chunk_size=64):
    return _chunked(q, k, v, None, scale, chunk_size)


@wrong("chunk_gated_linear_attention", "carried state is not decayed")
def core_state_not_decayed(q, k, v, g=None, scale=1.0, chunk_size=64):
    return _chunked(q, k, v, g, scale, chunk_size, decay_state=False)


@wrong("chunk_gated_linear_attention", "scaled by a constant factor")
def core_scale_twice(q, k, v, g=None, scale=1.0, chunk_size=64):
    return _chunked(q * scale, k, v, g, scale, chunk_size)


@wrong("linear_attention_chunk", "not carried across chunks")
def linear_chunk_local(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, chunk_size=64):
    qp, kp = feature_map(q), feature_map(k)
    num = _chunked(qp, kp, v, None, default_scale(q, scale), chunk_size, carry=False)
    if not normalize:
        return num
    den = _chunked(qp, kp, torch.ones_like(v[..., :1]), None, default_scale(q, scale), chunk_size, carry=False)
    return num / den


@wrong("linear_attention_chunk", "not normalized")
def linear_chunk_no_denominator(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, chunk_size=64):
    return _chunked(feature_map(q), feature_map(k), v, None, default_scale(q, scale), chunk_size)


@wrong("linear_attention_chunk", "feature map is not applied")
def linear_chunk_raw(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, chunk_size=64):
    num = _chunked(q, k, v, None, default_scale(q, scale), chunk_size)
    if not normalize:
        return num
    return num / _chunked(q, k, torch.ones_like(v[..., :1]), None, default_scale(q, scale), chunk_size)


def _log_gamma(q, gamma):
    g = torch.as_tensor(gamma, dtype=q.dtype).log()
    g = per_head(g)
    return g.expand(*q.shape[:-1], 1)


@wrong("retention_chunk", "not carried across chunks")
def retention_chunk_local(q, k, v, gamma, scale=None, chunk_size=64):
    return _chunked(q, k, v, _log_gamma(q, gamma), default_scale(q, scale), chunk_size, carry=False)


@wrong("retention_chunk", "no decay")
def retention_chunk_no_decay(q, k, v, gamma, scale=None, chunk_size=64):
    return _chunked(q, k, v, None, default_scale(q, scale), chunk_size)


@wrong("retention_chunk", "carried state is not decayed")
def retention_chunk_state_not_decayed(q, k, v, gamma, scale=None, chunk_size=64):
    return _chunked(q, k, v, _log_gamma(q, gamma), default_scale(q, scale), chunk_size, decay_state=False)


@wrong("retention_chunk", "calls linattn_ref")
def retention_chunk_via_gla(q, k, v, gamma, scale=None, chunk_size=64):
    from linattn_ref import gla_chunk as gated
    return gated(q, k, v, _log_gamma(q, gamma).expand_as(k).contiguous(), scale, chunk_size)


@wrong("gla_chunk", "not carried across chunks")
def gla_chunk_local(q, k, v, g, scale=None, chunk_size=64):
    return _chunked(q, k, v, g, default_scale(q, scale), chunk_size, carry=False)


@wrong("gla_chunk", "gates are ignored")
def gla_chunk_no_gates(q, k, v, g, scale=None, chunk_size=64):
    return _chunked(q, k, v, None, default_scale(q, scale), chunk_size)


@wrong("gla_chunk", "carried state is not decayed")
def gla_chunk_state_not_decayed(q, k, v, g, scale=None, chunk_size=64):
    return _chunked(q, k, v, g, default_scale(q, scale), chunk_size, decay_state=False)


@wrong("gla_chunk", "wrong shape")
def gla_chunk_drops_tail(q, k, v, g, scale=None, chunk_size=64):
    T = q.shape[-2] // chunk_size * chunk_size  # forgets the last, shorter chunk
    if T == 0:
        T = q.shape[-2]
    return _chunked(q[..., :T, :], k[..., :T, :], v[..., :T, :], g[..., :T, :], default_scale(q, scale), chunk_size)


# ---------------------------------------------------------------- the saved state, strong gates, eps, per-head gamma


@wrong("chunk_gated_linear_attention", "exp before the mask")
def core_exp_then_mask(q, k, v, g=None, scale=1.0, chunk_size=64, initial_state=None, output_final_state=False):
    return _chunked(q, k, v, g, scale, chunk_size, initial_state=initial_state,
                    output_final_state=output_final_state, scores=scores_exp_then_mask)


@wrong("chunk_gated_linear_attention", "initial_state is ignored")
def core_ignores_initial_state(q, k, v, g=None, scale=1.0, chunk_size=64, initial_state=None,
                               output_final_state=False):
    return _chunked(q, k, v, g, scale, chunk_size, output_final_state=output_final_state)


@wrong("gla_chunk", "asks for the pair (o, S_T)")
def gla_chunk_never_returns_state(q, k, v, g, scale=None, chunk_size=64, initial_state=None,
                                  output_final_state=False):
    return _chunked(q, k, v, g, default_scale(q, scale), chunk_size, initial_state=initial_state)


@wrong("gla_chunk", "exp before the mask")
def gla_chunk_exp_then_mask(q, k, v, g, scale=None, chunk_size=64, initial_state=None, output_final_state=False):
    return _chunked(q, k, v, g, default_scale(q, scale), chunk_size, initial_state=initial_state,
                    output_final_state=output_final_state, scores=scores_exp_then_mask)


@wrong("retention_chunk", "raised")
def retention_chunk_one_gamma_only(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None,
                                   output_final_state=False):
    g = torch.as_tensor(gamma, dtype=q.dtype).log() * torch.ones_like(q[..., :1])  # [H] lands on the last axis
    return _chunked(q, k, v, g, default_scale(q, scale), chunk_size, initial_state=initial_state,
                    output_final_state=output_final_state)


@wrong("retention_chunk", "log-gate of retention is log(gamma)")
def retention_chunk_gamma_as_log_gate(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None,
                                      output_final_state=False):
    g = torch.as_tensor(gamma, dtype=q.dtype)
    g = per_head(g) * torch.ones_like(q[..., :1])  # gamma, not log(gamma)
    return _chunked(q, k, v, g, default_scale(q, scale), chunk_size, initial_state=initial_state,
                    output_final_state=output_final_state)


@wrong("retention_chunk", "initial_state is ignored")
def retention_chunk_ignores_initial_state(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None,
                                          output_final_state=False):
    return _chunked(q, k, v, _log_gamma(q, gamma), default_scale(q, scale), chunk_size,
                    output_final_state=output_final_state)


def _linear_chunk(q, k, v, feature_map, normalize, scale, eps, chunk_size, initial_state, output_final_state,
                  use_eps=True, use_initial=True):
    scale = default_scale(q, scale)
    if feature_map is not None:
        q, k = feature_map(q), feature_map(k)
    d_v = v.shape[-1]
    if normalize:
        v = torch.cat([v, torch.ones_like(v[..., :1])], -1)
        if initial_state is not None:
            initial_state = torch.cat([initial_state[0], initial_state[1].unsqueeze(-1)], -1)
    o, S = _chunked(q, k, v, None, scale, chunk_size, initial_state=initial_state if use_initial else None,
                    output_final_state=True)
    if normalize:
        o, S = o[..., :d_v] / (o[..., d_v:] + (eps if use_eps else 0.0)), (S[..., :d_v], S[..., d_v])
    return (o, S) if output_final_state else o


@wrong("linear_attention_chunk", "eps is ignored")
def linear_chunk_ignores_eps(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, chunk_size=64,
                             initial_state=None, output_final_state=False):
    return _linear_chunk(q, k, v, feature_map, normalize, scale, eps, chunk_size, initial_state, output_final_state,
                         use_eps=False)


@wrong("linear_attention_chunk", "initial_state is ignored")
def linear_chunk_ignores_initial_state(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0,
                                       chunk_size=64, initial_state=None, output_final_state=False):
    return _linear_chunk(q, k, v, feature_map, normalize, scale, eps, chunk_size, initial_state, output_final_state,
                         use_initial=False)


@wrong("linear_attention_chunk", "'NoneType' object is not callable")
def linear_chunk_always_maps(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, chunk_size=64,
                             initial_state=None, output_final_state=False):
    return _linear_chunk(q, k, v, lambda x: feature_map(x), normalize, scale, eps, chunk_size, initial_state,
                         output_final_state)


@wrong("gla_chunk", "builds a T x T matrix")
def gla_chunk_is_the_parallel_form(q, k, v, g, scale=None, chunk_size=64, initial_state=None,
                                   output_final_state=False):
    """notebook 07's stable parallel form: right values, but a T x T x d_k tensor instead of C x C blocks."""
    T = q.shape[-2]
    b = g.cumsum(-2)
    diff = _decay(b).masked_fill(~_lower(T).unsqueeze(-1), float("-inf"))
    o = torch.einsum("...ic,...jc,...ijc->...ij", q * default_scale(q, scale), k, diff.exp()) @ v
    if initial_state is not None:
        o = o + (q * default_scale(q, scale) * b.exp()) @ initial_state
    if not output_final_state:
        return o
    S = (k * (b[..., -1:, :] - b).exp()).mT @ v
    return o, S if initial_state is None else S + b[..., -1, :, None].exp() * initial_state


@wrong("retention_chunk", "builds a T x T matrix")
def retention_chunk_one_block(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None,
                              output_final_state=False):
    """Right values from a single chunk of length T, whatever chunk_size says."""
    return _chunked(q, k, v, _log_gamma(q, gamma), default_scale(q, scale), q.shape[-2], initial_state=initial_state,
                    output_final_state=output_final_state)


@wrong("intra_chunk_scores", "q and k are swapped")
def scores_k_q_transposed(q, k, b=None):
    C = q.shape[-2]
    if b is None:
        return (k @ q.mT).tril()  # K Q^T: row i holds k_i . q_j
    diff = _decay(b).masked_fill(~_lower(C).unsqueeze(-1), float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", k, q, diff.exp())


@wrong("linear_attention_chunk", "scale goes after the feature map")
def linear_chunk_maps_scaled_queries(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, chunk_size=64,
                                     initial_state=None, output_final_state=False):
    q = q * default_scale(q, scale)  # phi(q * scale) instead of phi(q) * scale
    return _linear_chunk(q, k, v, feature_map, normalize, 1.0, eps, chunk_size, initial_state, output_final_state)


@wrong("retention_chunk", "rounded to float32")
def retention_chunk_float32_log_gamma(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None,
                                      output_final_state=False):
    g = torch.as_tensor(gamma).log()  # float32 for a Python float, then promoted: log(0.8) off by 1e-8
    g = per_head(g) * torch.ones_like(q[..., :1])
    return _chunked(q, k, v, g, default_scale(q, scale), chunk_size, initial_state=initial_state,
                    output_final_state=output_final_state)


# ---------------------------------------------------------------- chunk_states


@wrong("chunk_states", "states leaving each chunk")
def chunk_states_after_the_chunk(k, v, chunk_size=64):
    states, state = [], torch.zeros(*k.shape[:-2], k.shape[-1], v.shape[-1], dtype=k.dtype)
    for start in range(0, k.shape[-2], chunk_size):
        state = state + k[..., start:start + chunk_size, :].mT @ v[..., start:start + chunk_size, :]
        states.append(state)  # appended after the update
    return torch.stack(states, dim=-3)


@wrong("chunk_states", "not carried across chunks")
def chunk_states_previous_chunk_only(k, v, chunk_size=64):
    states, last = [], torch.zeros(*k.shape[:-2], k.shape[-1], v.shape[-1], dtype=k.dtype)
    for start in range(0, k.shape[-2], chunk_size):
        states.append(last)
        last = k[..., start:start + chunk_size, :].mT @ v[..., start:start + chunk_size, :]  # not added to the state
    return torch.stack(states, dim=-3)


@wrong("chunk_states", "wrong type")
def chunk_states_as_a_list(k, v, chunk_size=64):
    states, state = [], torch.zeros(*k.shape[:-2], k.shape[-1], v.shape[-1], dtype=k.dtype)
    for start in range(0, k.shape[-2], chunk_size):
        states.append(state)
        state = state + k[..., start:start + chunk_size, :].mT @ v[..., start:start + chunk_size, :]
    return states  # torch.stack(states, dim=-3) forgotten


@wrong("chunk_states", "shape")
def chunk_states_one_too_many(k, v, chunk_size=64):
    state = torch.zeros(*k.shape[:-2], k.shape[-1], v.shape[-1], dtype=k.dtype)
    states = [state]
    for start in range(0, k.shape[-2], chunk_size):
        state = state + k[..., start:start + chunk_size, :].mT @ v[..., start:start + chunk_size, :]
        states.append(state)  # N + 1 states: the final one too
    return torch.stack(states, dim=-3)


@right("chunk_states")
def chunk_states_from_prefix_sums(k, v, chunk_size=64):
    kv = torch.einsum("...tc,...td->...tcd", k, v).cumsum(-3)  # state after each token
    before = torch.cat([torch.zeros_like(kv[..., :1, :, :]), kv], dim=-3)  # state before each token
    return before[..., 0:k.shape[-2]:chunk_size, :, :]
