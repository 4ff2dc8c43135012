"""Wrong answers to notebook 02: softmax attention, parallel and recurrent, and the KV cache."""
import math
import warnings

import torch

from . import default_scale, wrong


def _future(T):
    return torch.ones(T, T, dtype=torch.bool).triu(1)


# ---------------------------------------------------------------- softmax_attention_parallel


@wrong("softmax_attention_parallel", "future tokens leak")
def softmax_parallel_no_mask(q, k, v, scale=None):
    return torch.softmax(q @ k.mT * default_scale(q, scale), dim=-1) @ v


@wrong("softmax_attention_parallel", "upper triangle")
def softmax_parallel_upper(q, k, v, scale=None):
    T = q.shape[-2]
    scores = (q @ k.mT * default_scale(q, scale)).masked_fill(_future(T).mT, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@wrong("softmax_attention_parallel", "missing the scale")
def softmax_parallel_unscaled(q, k, v, scale=None):
    scores = (q @ k.mT).masked_fill(_future(q.shape[-2]), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@wrong("softmax_attention_parallel", "wrong scale")
def softmax_parallel_divides_by_d(q, k, v, scale=None):
    scale = 1 / q.shape[-1] if scale is None else scale * scale
    scores = (q @ k.mT * scale).masked_fill(_future(q.shape[-2]), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@wrong("softmax_attention_parallel", "softmax runs over the queries")
def softmax_parallel_wrong_axis(q, k, v, scale=None):
    scores = (q @ k.mT * default_scale(q, scale)).masked_fill(_future(q.shape[-2]), float("-inf"))
    return torch.softmax(scores, dim=-2) @ v


@wrong("softmax_attention_parallel", "NaN")
def softmax_parallel_strict_mask(q, k, v, scale=None):
    T = q.shape[-2]
    scores = (q @ k.mT * default_scale(q, scale)).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@wrong("softmax_attention_parallel", "wrong dtype")
def softmax_parallel_float32_buffer(q, k, v, scale=None):
    out = torch.zeros(*q.shape[:-1], v.shape[-1])  # float32, whatever the inputs
    for i in range(q.shape[-2]):
        scores = (k[..., : i + 1, :] @ q[..., i, :, None]).squeeze(-1) * default_scale(q, scale)
        out[..., i, :] = (torch.softmax(scores, -1).unsqueeze(-2) @ v[..., : i + 1, :]).squeeze(-2)
    return out


# ---------------------------------------------------------------- softmax_attention_step


@wrong("softmax_attention_step", "missing the scale")
def softmax_step_unscaled(q_t, k_cache, v_cache, scale=None):
    weights = torch.softmax(k_cache @ q_t.unsqueeze(-1), dim=-2)
    return (weights * v_cache).sum(-2)


@wrong("softmax_attention_step", "newest key and value are left out")
def softmax_step_skips_current(q_t, k_cache, v_cache, scale=None):
    scores = (k_cache[..., :-1, :] @ q_t.unsqueeze(-1)).squeeze(-1) * default_scale(q_t, scale)
    return (torch.softmax(scores, dim=-1).unsqueeze(-2) @ v_cache[..., :-1, :]).squeeze(-2)


@wrong("softmax_attention_step", "extra dimension of size 1")
def softmax_step_keeps_dim(q_t, k_cache, v_cache, scale=None):
    scores = (q_t.unsqueeze(-2) @ k_cache.mT) * default_scale(q_t, scale)  # [..., 1, t + 1]
    return torch.softmax(scores, dim=-1) @ v_cache  # [..., 1, d_v]: the squeeze is missing


@wrong("softmax_attention_step", "wrong type")
def softmax_step_numpy(q_t, k_cache, v_cache, scale=None):
    scores = (k_cache @ q_t).numpy() * default_scale(q_t, scale)
    weights = torch.softmax(torch.from_numpy(scores), dim=-1)
    return (weights @ v_cache).numpy()


# ---------------------------------------------------------------- softmax_attention_recurrent


@wrong("softmax_attention_recurrent", "off-by-one")
def softmax_recurrent_cache_after(q, k, v, scale=None):
    k_cache, v_cache, out = k[..., :0, :], v[..., :0, :], []
    for t in range(q.shape[-2]):
        scores = (k_cache @ q[..., t, :, None]).squeeze(-1) * default_scale(q, scale)
        out.append((torch.softmax(scores, -1).unsqueeze(-2) @ v_cache).squeeze(-2))
        k_cache = torch.cat([k_cache, k[..., t : t + 1, :]], dim=-2)  # the cache grows after the step
        v_cache = torch.cat([v_cache, v[..., t : t + 1, :]], dim=-2)
    return torch.stack(out, -2)


@wrong("softmax_attention_recurrent", "future tokens leak")
def softmax_recurrent_full_cache(q, k, v, scale=None):
    out = []
    for t in range(q.shape[-2]):
        scores = (k @ q[..., t, :, None]).squeeze(-1) * default_scale(q, scale)  # every key, not the cache up to t
        out.append((torch.softmax(scores, -1).unsqueeze(-2) @ v).squeeze(-2))
    return torch.stack(out, -2)


@wrong("softmax_attention_recurrent", "missing the scale")
def softmax_recurrent_unscaled(q, k, v, scale=None):
    out = []
    for t in range(q.shape[-2]):
        scores = (k[..., : t + 1, :] @ q[..., t, :, None]).squeeze(-1)
        out.append((torch.softmax(scores, -1).unsqueeze(-2) @ v[..., : t + 1, :]).squeeze(-2))
    return torch.stack(out, -2)


@wrong("softmax_attention_recurrent", "raised")
def softmax_recurrent_single_head(q, k, v, scale=None):
    rows = []
    for t in range(q.shape[0]):  # assumes q is [T, d]: breaks on [B, H, T, d]
        scores = k[: t + 1] @ q[t] * default_scale(q, scale)
        rows.append(torch.softmax(scores, 0) @ v[: t + 1])
    return torch.stack(rows)


@wrong("softmax_attention_recurrent", "Your function printed")
def softmax_recurrent_chatty(q, k, v, scale=None):
    from tqdm import tqdm  # a progress bar writes to stderr
    out = []
    for t in tqdm(range(q.shape[-2])):
        warnings.warn(f"step {t}")
        scores = (k[..., : t + 1, :] @ q[..., t, :, None]).squeeze(-1) * math.sqrt(q.shape[-1])
        out.append((torch.softmax(scores, -1).unsqueeze(-2) @ v[..., : t + 1, :]).squeeze(-2))
    return torch.stack(out, -2)


# ---------------------------------------------------------------- kv_cache_bytes


@wrong("kv_cache_bytes", "both K and V")
def kv_cache_bytes_k_only(T, n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
    return batch_size * T * n_layers * n_heads * d_head * bytes_per_element


@wrong("kv_cache_bytes", "multiply by bytes_per_element")
def kv_cache_bytes_elements(T, n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
    return 2 * batch_size * T * n_layers * n_heads * d_head


@wrong("kv_cache_bytes", "batch is missing")
def kv_cache_bytes_one_sequence(T, n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
    return 2 * T * n_layers * n_heads * d_head * bytes_per_element


@wrong("kv_cache_bytes", "wrong type")
def kv_cache_bytes_gib(T, n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
    return 2 * batch_size * T * n_layers * n_heads * d_head * bytes_per_element / 1.0


# ---------------------------------------------------------------- structure and further diagnoses


@wrong("softmax_attention_parallel", "calls torch's `scaled_dot_product_attention`")
def softmax_parallel_torch_attention(q, k, v, scale=None):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=default_scale(q, scale))


@wrong("softmax_attention_parallel", "swapped (K Q^T)")
def softmax_parallel_keys_times_queries(q, k, v, scale=None):
    scores = (k @ q.mT * default_scale(q, scale)).masked_fill(_future(q.shape[-2]), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@wrong("softmax_attention_recurrent", "does not work token by token")
def softmax_recurrent_parallel_form(q, k, v, scale=None):
    scores = (q @ k.mT * default_scale(q, scale)).masked_fill(_future(q.shape[-2]), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # right values, but the whole T x T matrix at once


@wrong("softmax_attention_step", "transpose the last two axes with .mT")
def softmax_step_dot_T(q_t, k_cache, v_cache, scale=None):
    scores = q_t @ k_cache.T * default_scale(q_t, scale)  # right for a [t, d] cache only
    return torch.softmax(scores, dim=-1) @ v_cache


@wrong("softmax_attention_step", "the softmax runs over the first axis (dim=0)")
def softmax_step_batch_axis(q_t, k_cache, v_cache, scale=None):
    scores = (k_cache @ q_t.unsqueeze(-1)).squeeze(-1) * default_scale(q_t, scale)
    return (torch.softmax(scores, dim=0).unsqueeze(-2) @ v_cache).squeeze(-2)


@wrong("softmax_attention_recurrent", "the softmax runs over the first axis (dim=0)")
def softmax_recurrent_batch_axis(q, k, v, scale=None):
    out = []
    for t in range(q.shape[-2]):
        scores = (k[..., : t + 1, :] @ q[..., t, :, None]).squeeze(-1) * default_scale(q, scale)
        out.append((torch.softmax(scores, 0).unsqueeze(-2) @ v[..., : t + 1, :]).squeeze(-2))  # dim=0: right for [T, d]
    return torch.stack(out, -2)


@wrong("softmax_attention_parallel", "Only the batch/head slices (0, 1), (0, 2), (1, 1), (1, 2) differ")
def softmax_parallel_first_head_everywhere(q, k, v, scale=None):
    if q.ndim == 4:  # head 0's queries and keys for every head
        q, k = q[:, :1].expand_as(q), k[:, :1].expand_as(k)
    scores = (q @ k.mT * default_scale(q, scale)).masked_fill(_future(q.shape[-2]), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@wrong("softmax_attention_parallel", "subtracts each row's maximum score before exp")
def softmax_parallel_by_hand(q, k, v, scale=None):
    scores = (q @ k.mT * default_scale(q, scale)).masked_fill(_future(q.shape[-2]), float("-inf"))
    weights = scores.exp()  # overflows for large scores: the maximum is not subtracted first
    return weights / weights.sum(-1, keepdim=True) @ v


@wrong("softmax_attention_step", "subtracts each row's maximum score before exp")
def softmax_step_by_hand(q_t, k_cache, v_cache, scale=None):
    weights = ((k_cache @ q_t.unsqueeze(-1)).squeeze(-1) * default_scale(q_t, scale)).exp()
    return (weights.unsqueeze(-2) @ v_cache).squeeze(-2) / weights.sum(-1, keepdim=True)
