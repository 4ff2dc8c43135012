"""Retention (RetNet): linear attention with a fixed decay gamma in (0, 1] per head.

    S_t = gamma S_{t-1} + k_t^T v_t,    o_t = scale * q_t S_t

Unrolled, o_i = sum_{j<=i} gamma^(i-j) (q_i . k_j) scale v_j, so the parallel form is
O = ((Q K^T * scale) * D) V with the decay mask D_ij = gamma^(i-j) for i >= j and 0 above the diagonal.
A token j positions back weighs gamma^j: the memory fades over an effective horizon of about 1 / (1 - gamma).
Multi-scale retention gives each head its own gamma_h = 1 - 2^(-5-h).
"""
import torch

from ._validate import check_chunk_size, check_gamma, check_length, check_qkv, check_state, resolve_scale, work_dtype
from .chunk import chunk_gated_linear_attention


def multiscale_gammas(n_heads):
    """RetNet's per-head decays gamma_h = 1 - 2^(-5-h), h = 0..n_heads-1 (float64 [n_heads])."""
    check_length(n_heads)
    return 1.0 - 2.0 ** (-5.0 - torch.arange(n_heads, dtype=torch.float64))


def effective_horizon(gamma):
    """1 / (1 - gamma): how many steps back the decay still matters (the mean of a geometric weighting).

    A float gamma gives a float (inf for gamma = 1: no decay); a tensor [H] gives a float64 tensor [H].
    """
    horizon = 1.0 / (1.0 - check_gamma(gamma))  # float64 tensor: 1 / 0 is inf, not an error
    return horizon.item() if horizon.ndim == 0 else horizon




def per_head(gamma, dtype=None):
    """gamma shaped to broadcast over [..., H, T, T] or [..., H, d, d]: a tensor [H] becomes [H, 1, 1] (cast to
    `dtype` when given); a number, or a tensor of one value, stays as it is."""
    if not isinstance(gamma, torch.Tensor):
        return gamma
    gamma = gamma if dtype is None else gamma.to(dtype)
    return gamma.view(-1, 1, 1) if gamma.ndim == 1 else gamma


def decay_mask(T, gamma):
    """D_ij = gamma^(i-j) for i >= j, else 0. Shape [T, T] for a float gamma, [H, T, T] for a tensor [H]."""
    check_length(T)
    gamma = check_gamma(gamma)
    i = torch.arange(T, dtype=torch.float64)
    distance = i.view(-1, 1) - i.view(1, -1)  # i - j
    lower = distance >= 0
    log_gamma = per_head(gamma, torch.float64).log()
    # computed as exp((i-j) log gamma) with the upper triangle sent to -inf, so gamma^(negative) never appears
    return (log_gamma * distance).masked_fill(~lower, float("-inf")).exp()


def retention_parallel(q, k, v, gamma, scale=None):
    """O = ((Q K^T * scale) * D) V with D = decay_mask(T, gamma). q, k [..., T, d_k], v [..., T, d_v]."""
    T, d_k, _ = check_qkv(q, k, v)
    gamma = check_gamma(gamma, q)
    scale = resolve_scale(scale, d_k)
    dt = work_dtype(q.dtype)
    D = decay_mask(T, gamma).to(dt)
    scores = (q.to(dt) @ k.to(dt).transpose(-1, -2)) * scale * D
    return (scores @ v.to(dt)).to(q.dtype)


def retention_recurrent(q, k, v, gamma, scale=None, initial_state=None, output_final_state=False):
    """S_t = gamma S_{t-1} + k_t^T v_t, o_t = scale * q_t S_t, one step at a time.

    initial_state: [..., d_k, d_v] or None. Returns o, or (o, final_state) when output_final_state.
    """
    T, d_k, d_v = check_qkv(q, k, v)
    gamma = check_gamma(gamma, q)
    scale = resolve_scale(scale, d_k)
    out_dtype, dt = q.dtype, work_dtype(q.dtype)
    q, k, v = q.to(dt) * scale, k.to(dt), v.to(dt)
    lead = q.shape[:-2]
    gamma_b = per_head(gamma, dt)
    if initial_state is None:
        S = q.new_zeros(*lead, d_k, d_v)
    else:
        S = check_state("initial_state", initial_state, (*lead, d_k, d_v), dt)
    outputs = []
    for t in range(T):
        S = gamma_b * S + k[..., t, :].unsqueeze(-1) * v[..., t, :].unsqueeze(-2)
        outputs.append((q[..., t, :].unsqueeze(-2) @ S).squeeze(-2))
    o = torch.stack(outputs, dim=-2).to(out_dtype)
    return (o, S) if output_final_state else o


def retention_chunk(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None, output_final_state=False):
    """Chunkwise retention: the gated chunk core with one log-decay log(gamma) per head and step."""
    T, d_k, d_v = check_qkv(q, k, v)
    check_chunk_size(chunk_size)
    gamma = check_gamma(gamma, q)
    scale = resolve_scale(scale, d_k)
    dt = work_dtype(q.dtype)
    lead = q.shape[:-2]
    g = per_head(gamma, dt).log().expand(*lead, T, 1)
    init = None if initial_state is None else check_state("initial_state", initial_state, (*lead, d_k, d_v), dt)
    o, S = chunk_gated_linear_attention(q.to(dt), k.to(dt), v.to(dt), g, scale, chunk_size, init,
                                        output_final_state=True)
    o = o.to(q.dtype)
    return (o, S) if output_final_state else o
