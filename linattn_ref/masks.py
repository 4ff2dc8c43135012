"""Causal masks and which query-key pairs a causal attention computes.

In causal (autoregressive) attention the query at position i may only meet keys at positions j <= i:
it sees itself and the past, never the future. The mask M has M[i, j] = True exactly when j <= i.
"""
import torch

from ._validate import check_length, check_position, check_tensor, resolve_scale, work_dtype


def causal_mask(T, device=None):
    """Boolean [T, T] mask, True where query i may see key j (j <= i): the lower triangle."""
    check_length(T)
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def qk_pairs(T):
    """The dot products q_i k_j^T a causal attention computes, in order: [(0, 0), (1, 0), (1, 1), (2, 0), ...].

    Query i meets keys 0..i, so there are T (T + 1) / 2 pairs in all.
    """
    check_length(T)
    return [(i, j) for i in range(T) for j in range(i + 1)]


def visible_keys(k, i):
    """The keys query i may meet: rows 0..i of k [..., T, d], returned as [..., i + 1, d]."""
    check_tensor("k", k)
    check_position(i, k.shape[-2])
    return k[..., : i + 1, :]


def num_visible_keys(T, i):
    """How many keys query i meets in a causal sequence of length T: i + 1 (positions count from 0)."""
    check_length(T)
    check_position(i, T)
    return i + 1


def masked_scores(q, k, scale=None):
    """Causal attention scores: S = Q K^T * scale with S[i, j] = -inf where j > i (the future).

    q, k: [..., T, d_k] -> [..., T, T]. A softmax over each row then gives the future exactly zero weight.
    """
    check_tensor("q", q)
    check_tensor("k", k)
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape [..., T, d_k], got {tuple(q.shape)} and {tuple(k.shape)}")
    if q.dtype != k.dtype:
        raise TypeError(f"q and k must share one dtype, got {q.dtype} and {k.dtype}")
    scale = resolve_scale(scale, q.shape[-1])
    dt = work_dtype(q.dtype)
    scores = (q.to(dt) @ k.to(dt).transpose(-1, -2)) * scale
    return scores.masked_fill(~causal_mask(q.shape[-2], device=q.device), float("-inf"))
