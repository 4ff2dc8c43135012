"""Causal softmax attention, in its parallel (training) form and its recurrent (decoding) form.

Parallel:   O = softmax(Q K^T * scale + mask) V, with the mask setting scores j > i to -inf.
Recurrent:  at step t the new k_t, v_t join a cache; o_t = sum_{i<=t} exp(s_ti) v_i / sum_{i<=t} exp(s_ti),
            s_ti = q_t . k_i * scale. The cache grows by one key and one value every step.
Both cost O(T^2 d) time; the parallel form also holds a [T, T] score matrix.
"""
import torch

from ._validate import check_length, check_qkv, check_tensor, resolve_scale, work_dtype
from .masks import masked_scores


def softmax_attention_parallel(q, k, v, scale=None):
    """O = softmax(Q K^T * scale, masked to j <= i) V.  q, k: [..., T, d_k], v: [..., T, d_v] -> [..., T, d_v]."""
    check_qkv(q, k, v)
    scores = masked_scores(q, k, scale)
    return (torch.softmax(scores, dim=-1) @ v.to(scores.dtype)).to(q.dtype)


def softmax_attention_step(q_t, k_cache, v_cache, scale=None):
    """One decoding step: o_t = softmax(q_t K_cache^T * scale) V_cache.

    q_t: [..., d_k]; k_cache: [..., t + 1, d_k]; v_cache: [..., t + 1, d_v] -> [..., d_v].
    The cache already holds k_t and v_t: the query meets itself and every earlier key.
    """
    check_tensor("q_t", q_t, min_ndim=1)
    check_tensor("k_cache", k_cache)
    check_tensor("v_cache", v_cache)
    if q_t.shape[-1] != k_cache.shape[-1] or q_t.shape[:-1] != k_cache.shape[:-2] or q_t.dtype != k_cache.dtype:
        raise ValueError(f"q_t {tuple(q_t.shape)} {q_t.dtype} does not fit the cache k_cache "
                         f"{tuple(k_cache.shape)} {k_cache.dtype}: expected q_t [..., d_k] with the same dtype")
    scale = resolve_scale(scale, q_t.shape[-1])
    scores = (k_cache @ q_t.unsqueeze(-1)).squeeze(-1) * scale  # [..., t + 1]
    return (torch.softmax(scores, dim=-1).unsqueeze(-2) @ v_cache).squeeze(-2)


def softmax_attention_recurrent(q, k, v, scale=None):
    """Token by token with an explicit KV cache; equals softmax_attention_parallel."""
    T, d_k, _ = check_qkv(q, k, v)
    scale = resolve_scale(scale, d_k)
    out_dtype, dt = q.dtype, work_dtype(q.dtype)
    q, k, v = q.to(dt), k.to(dt), v.to(dt)
    k_cache, v_cache, outputs = [], [], []
    for t in range(T):
        k_cache.append(k[..., t, :])  # the cache grows by one key and one value per token
        v_cache.append(v[..., t, :])
        o_t = softmax_attention_step(q[..., t, :], torch.stack(k_cache, -2), torch.stack(v_cache, -2), scale)
        outputs.append(o_t)
    return torch.stack(outputs, dim=-2).to(out_dtype)


def kv_cache_bytes(T, n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
    """Bytes a KV cache holds after T tokens: 2 (K and V) * batch * T * layers * heads * d_head * bytes.

    Example: a 32-layer model with 32 heads of 128 at T = 4096 in 16-bit floats holds 2 GiB per sequence.
    """
    check_length(T)
    for name, value in (("n_layers", n_layers), ("n_heads", n_heads), ("d_head", d_head),
                        ("bytes_per_element", bytes_per_element), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return 2 * batch_size * T * n_layers * n_heads * d_head * bytes_per_element
