"""Feature maps phi for kernelized (linear) attention: exp(q . k) is replaced by phi(q) . phi(k).

A feature map must make phi(q) . phi(k) >= 0 so the normalized output stays a weighted average.
Every function maps [..., d] to [..., d'] and works on any leading dimensions. Wherever a
`feature_map` argument is taken, None means the identity (no map).
"""
import math

import torch
import torch.nn.functional as F


def identity(x):
    """phi(x) = x. Scores q . k can be negative, so only use it without normalization."""
    return x


def elu_plus_one(x):
    """phi(x) = elu(x) + 1: positive everywhere, the map of Katharopoulos et al. (2020)."""
    return F.elu(x) + 1


def relu(x):
    """phi(x) = max(x, 0): non-negative, but phi(q) . phi(k) can be exactly 0 (the normalizer then divides by 0)."""
    return torch.relu(x)


def taylor_exp(x):
    """Second-order Taylor features: phi(q) . phi(k) = 1 + q.k + (q.k)^2 / 2, which approximates exp(q.k).

    phi(x) = [1, x, vec(x x^T) / sqrt(2)] maps d to 1 + d + d^2 features. The product is always >= 1/2,
    so normalization is safe.
    """
    ones = torch.ones_like(x[..., :1])
    outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / math.sqrt(2.0)
    return torch.cat([ones, x, outer], dim=-1)


def resolve(feature_map):
    """None means the identity; anything else must be callable."""
    if feature_map is None:
        return identity
    if not callable(feature_map):
        raise TypeError(f"feature_map must be a callable or None, got {type(feature_map).__name__}")
    return feature_map
