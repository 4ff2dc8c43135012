"""Kernelized linear attention and its state variables mu and nu.

Replace exp(q . k) by phi(q) . phi(k) and write q' = phi(q), k' = phi(k). The causal output is

    o_i = (q'_i mu_i) / (q'_i . nu_i),   mu_i = sum_{j<=i} k'_j^T v_j  (d_k x d_v),   nu_i = sum_{j<=i} k'_j  (d_k)

Because mu_i = mu_{i-1} + k'_i^T v_i and nu_i = nu_{i-1} + k'_i, the history is a fixed-size state:
time O(T d^2) and memory O(d^2), against O(T^2 d) and a growing KV cache for softmax attention.
The denominator q'_i . nu_i normalizes the weights q'_i . k'_j so they sum to one; `normalize=False`
drops it (o_i = q'_i mu_i), as many modern variants do.

`scale` (None: d_k ** -0.5) multiplies q'; with normalization it cancels. With normalize=True the
state is the pair (mu, nu); with normalize=False it is mu alone.
"""
import torch

from . import feature_maps
from ._validate import (
    check_chunk_size,
    check_linear_attention_state,
    check_qkv,
    check_tensor,
    resolve_scale,
    work_dtype,
)
from .chunk import chunk_gated_linear_attention
from .masks import causal_mask


def state_variables(kp, v):
    """mu_i and nu_i for every position.

    mu [..., T, d_k, d_v] = cumsum_j k'_j^T v_j,   nu [..., T, d_k] = cumsum_j k'_j.
    """
    check_tensor("kp", kp)
    check_tensor("v", v)
    if kp.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"kp and v must agree on [..., T]; got {tuple(kp.shape)} and {tuple(v.shape)}")
    outer = kp.unsqueeze(-1) * v.unsqueeze(-2)  # k'_j^T v_j: [..., T, d_k, d_v]
    return outer.cumsum(dim=-3), kp.cumsum(dim=-2)


def state_update(mu, nu, kp_t, v_t):
    """One step: mu_t = mu_{t-1} + k'_t^T v_t, nu_t = nu_{t-1} + k'_t. Needs only the new k'_t and v_t.

    mu: [..., d_k, d_v]; nu: [..., d_k]; kp_t: [..., d_k]; v_t: [..., d_v].
    """
    for name, x in (("mu", mu), ("nu", nu), ("kp_t", kp_t), ("v_t", v_t)):
        check_tensor(name, x, min_ndim=1)
    if mu.shape[-2:] != (kp_t.shape[-1], v_t.shape[-1]) or nu.shape[-1] != kp_t.shape[-1]:
        raise ValueError(
            f"shapes do not fit: mu {tuple(mu.shape)} must be [..., d_k, d_v] and nu {tuple(nu.shape)} "
            f"[..., d_k] for kp_t {tuple(kp_t.shape)} and v_t {tuple(v_t.shape)}"
        )
    return mu + kp_t.unsqueeze(-1) * v_t.unsqueeze(-2), nu + kp_t


def state_readout(qp_t, mu, nu=None, eps=0.0):
    """The output from the states: o_t = (q'_t mu_t) / (q'_t . nu_t), or q'_t mu_t when nu is None.

    qp_t: [..., d_k]; mu: [..., d_k, d_v]; nu: [..., d_k] or None -> [..., d_v].
    """
    out = (qp_t.unsqueeze(-2) @ mu).squeeze(-2)
    if nu is None:
        return out
    return out / ((qp_t * nu).sum(-1, keepdim=True) + eps)


def _prepare(q, k, v, feature_map, scale):
    _, d_k, _ = check_qkv(q, k, v)
    scale = resolve_scale(scale, d_k)
    phi = feature_maps.resolve(feature_map)
    dt = work_dtype(q.dtype)
    qp, kp = phi(q.to(dt)), phi(k.to(dt))
    return qp * scale, kp, v.to(dt)


def linear_attention_noncausal(q, k, v, feature_map=feature_maps.elu_plus_one, normalize=True, scale=None,
                               eps=0.0):
    """Every query sees every key: O = q' (k'^T V) / (q' . sum_j k'_j). Computed right to left in O(T d^2)."""
    qp, kp, vv = _prepare(q, k, v, feature_map, scale)
    out = qp @ (kp.transpose(-1, -2) @ vv)  # associativity: (q' k'^T) V = q' (k'^T V)
    if normalize:
        out = out / (qp @ kp.sum(dim=-2).unsqueeze(-1) + eps)
    return out.to(q.dtype)


def linear_attention_parallel(q, k, v, feature_map=feature_maps.elu_plus_one, normalize=True, scale=None,
                              eps=0.0):
    """Quadratic masked form: A = (q' k'^T) * M; O = A V / rowsum(A). O(T^2 d) like softmax attention."""
    qp, kp, vv = _prepare(q, k, v, feature_map, scale)
    A = (qp @ kp.transpose(-1, -2)).masked_fill(~causal_mask(q.shape[-2], device=q.device), 0.0)
    out = A @ vv
    if normalize:
        out = out / (A.sum(dim=-1, keepdim=True) + eps)
    return out.to(q.dtype)




def linear_attention_recurrent(q, k, v, feature_map=feature_maps.elu_plus_one, normalize=True, scale=None,
                               eps=0.0, initial_state=None, output_final_state=False):
    """One token at a time, carrying (mu, nu): O(d^2) memory whatever the length.

    initial_state: (mu, nu) with normalize=True, mu alone otherwise ([..., d_k, d_v], [..., d_k]).
    Returns o [..., T, d_v], or (o, final_state) when output_final_state is True.
    """
    qp, kp, vv = _prepare(q, k, v, feature_map, scale)
    *lead, T, d_k = qp.shape
    d_v = vv.shape[-1]
    init = check_linear_attention_state(initial_state, normalize, lead, d_k, d_v, qp.dtype)
    mu, nu = init if init is not None else (qp.new_zeros(*lead, d_k, d_v), None)
    if nu is None:
        nu = qp.new_zeros(*lead, d_k)
    outputs = []
    for t in range(T):
        mu, nu = state_update(mu, nu, kp[..., t, :], vv[..., t, :])
        outputs.append(state_readout(qp[..., t, :], mu, nu if normalize else None, eps))
    o = torch.stack(outputs, dim=-2).to(q.dtype)
    if output_final_state:
        return o, ((mu, nu) if normalize else mu)
    return o


def linear_attention_chunk(q, k, v, feature_map=feature_maps.elu_plus_one, normalize=True, scale=None,
                           eps=0.0, chunk_size=64, initial_state=None, output_final_state=False):
    """Chunkwise parallel form: the gated chunk core with no gate.

    The denominator q'_i . nu_i is the numerator's computation with a value of 1 appended to every v_j
    (nu is mu for a constant value), so one pass computes both.
    """
    check_chunk_size(chunk_size)
    qp, kp, vv = _prepare(q, k, v, feature_map, scale)
    *lead, T, d_k = qp.shape
    d_v = vv.shape[-1]
    init = check_linear_attention_state(initial_state, normalize, lead, d_k, d_v, qp.dtype)
    if normalize:
        vv = torch.cat([vv, torch.ones_like(vv[..., :1])], dim=-1)
        if init is not None:
            init = torch.cat([init[0], init[1].unsqueeze(-1)], dim=-1)
    elif init is not None:
        init = init[0]
    o, state = chunk_gated_linear_attention(qp, kp, vv, None, 1.0, chunk_size, init, output_final_state=True)
    if normalize:
        o = o[..., :d_v] / (o[..., d_v:] + eps)
        state = (state[..., :d_v], state[..., d_v])
    o = o.to(q.dtype)
    return (o, state) if output_final_state else o
