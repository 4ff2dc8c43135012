"""Wrong answers to notebook 01: causal masks and query-key enumeration."""
import sys

import torch

from . import default_scale, wrong

# ---------------------------------------------------------------- causal_mask


@wrong("causal_mask", "upper triangle")
def causal_mask_triu(T, device=None):
    return torch.ones(T, T, dtype=torch.bool).triu()


@wrong("causal_mask", "off-by-one")
def causal_mask_strict(T, device=None):
    return torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)


@wrong("causal_mask", "wrong dtype")
def causal_mask_float(T, device=None):
    return torch.tril(torch.ones(T, T))


@wrong("causal_mask", "inverted")
def causal_mask_hides(T, device=None):
    i = torch.arange(T)
    return i[None, :] > i[:, None]  # True where the key is in the future


@wrong("causal_mask", "not attempted yet")
def causal_mask_todo(T, device=None):
    raise NotImplementedError()


@wrong("causal_mask", "calls linattn_ref")
def causal_mask_borrowed(T, device=None):
    from linattn_ref import causal_mask as reference_mask
    return reference_mask(T)


# ---------------------------------------------------------------- qk_pairs


@wrong("qk_pairs", "off-by-one")
def qk_pairs_strict(T):
    return [(i, j) for i in range(T) for j in range(i)]


@wrong("qk_pairs", "upper triangle")
def qk_pairs_upper(T):
    return [(i, j) for i in range(T) for j in range(i, T)]


@wrong("qk_pairs", "wrong order")
def qk_pairs_by_key(T):
    return [(i, j) for j in range(T) for i in range(j, T)]


@wrong("qk_pairs", "counted from 1")
def qk_pairs_one_based(T):
    return [(i, j) for i in range(1, T + 1) for j in range(1, i + 1)]


@wrong("qk_pairs", "wrong type")
def qk_pairs_tensor(T):
    return torch.ones(T, T, dtype=torch.bool).tril().nonzero()


# ---------------------------------------------------------------- visible_keys


@wrong("visible_keys", "off-by-one")
def visible_keys_without_self(k, i):
    return k[..., :i, :]


@wrong("visible_keys", "future tokens leak")
def visible_keys_future(k, i):
    return k[..., i:, :]


@wrong("visible_keys", "wrong axis")
def visible_keys_columns(k, i):
    return k[..., : i + 1]


@wrong("visible_keys", "slices the first axis")
def visible_keys_single_head(k, i):
    return k[: i + 1]  # right for [T, d], wrong once there are batch dimensions


# ---------------------------------------------------------------- num_visible_keys


@wrong("num_visible_keys", "off-by-one")
def num_visible_keys_without_self(T, i):
    return i


@wrong("num_visible_keys", "future tokens leak")
def num_visible_keys_from_end(T, i):
    return T - i


@wrong("num_visible_keys", "wrong type")
def num_visible_keys_float(T, i):
    return (i + 1) * 1.0


@wrong("num_visible_keys", "counts the future keys")
def num_visible_keys_future(T, i):
    return T - i - 1


# ---------------------------------------------------------------- masked_scores



@wrong("masked_scores", "upper triangle")
def masked_scores_upper(q, k, scale=None):
    T = q.shape[-2]
    scores = q @ k.transpose(-1, -2) * default_scale(q, scale)
    return scores.masked_fill(torch.ones(T, T, dtype=torch.bool).tril(-1), float("-inf"))


@wrong("masked_scores", "masked with 0 instead of -inf")
def masked_scores_zero(q, k, scale=None):
    T = q.shape[-2]
    return q @ k.transpose(-1, -2) * default_scale(q, scale) * torch.ones(T, T, dtype=q.dtype).tril()


@wrong("masked_scores", "missing the scale")
def masked_scores_unscaled(q, k, scale=None):
    T = q.shape[-2]
    return (q @ k.transpose(-1, -2)).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))


@wrong("masked_scores", "off-by-one")
def masked_scores_strict(q, k, scale=None):
    T = q.shape[-2]
    scores = q @ k.transpose(-1, -2) * default_scale(q, scale)
    return scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), float("-inf"))


@wrong("masked_scores", "swapped")
def masked_scores_kq(q, k, scale=None):
    T = q.shape[-2]
    scores = k @ q.transpose(-1, -2) * default_scale(q, scale)
    return scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))


@wrong("masked_scores", "Your function printed")
def masked_scores_noisy(q, k, scale=None):
    print("scores shape", tuple(q.shape), file=sys.stderr)  # printing to stderr, and no mask at all
    return q @ k.transpose(-1, -2) * default_scale(q, scale)


@wrong("masked_scores", "transpose the last two axes with .mT")
def masked_scores_dot_T(q, k, scale=None):
    T = q.shape[-2]
    scores = q @ k.T * default_scale(q, scale)  # right for [T, d]; .T reverses every axis of [B, H, T, d]
    return scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))


@wrong("masked_scores", "instead of -inf. In softmax attention either is accepted")
def masked_scores_large_negative(q, k, scale=None):
    T = q.shape[-2]
    scores = q @ k.transpose(-1, -2) * default_scale(q, scale)
    return scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -1e9)
