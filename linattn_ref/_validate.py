"""Input checks shared by every function in the package.

Each check raises a TypeError (wrong kind of object or dtype) or a ValueError (wrong shape or value)
whose message names the argument, what was expected and what was given.
"""
import math

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(name, x, min_ndim=2):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {x.dtype}; attention needs a floating-point tensor "
            f"(float32 or float64; float16/bfloat16 are accepted and computed in float32)"
        )
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions [..., T, d], got shape {tuple(x.shape)}"
        )


def check_qkv(q, k, v):
    """Check q [..., T, d_k], k [..., T, d_k], v [..., T, d_v]; return (T, d_k, d_v)."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, x)
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[:-1] != k.shape[:-1] or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            "q, k, v must agree on every dimension but the last ([..., T, d]); got shapes "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size d_k, got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if q.shape[-2] == 0:
        raise ValueError("the sequence is empty (T = 0)")
    return q.shape[-2], q.shape[-1], v.shape[-1]


def resolve_scale(scale, d_k):
    """None means d_k ** -0.5, as torch's scaled_dot_product_attention does."""
    if scale is None:
        return d_k ** -0.5
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise TypeError(f"scale must be a finite number or None, got {scale!r}")
    return float(scale)


def check_chunk_size(chunk_size):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def check_length(T):
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"sequence length T must be a positive integer, got {T!r}")


def check_position(i, T):
    if isinstance(i, bool) or not isinstance(i, int):
        raise TypeError(f"position i must be an integer, got {i!r}")
    if not 0 <= i < T:
        raise ValueError(f"position i={i} is outside the sequence 0..{T - 1}")


def work_dtype(dtype):
    """Half-precision inputs are computed in float32 on the CPU; float32/float64 as they are."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_gate_shape(g, k):
    """GLA log-gates are a floating tensor shaped like k (no look at the values, so no pass over g)."""
    check_tensor("g", g)
    if g.shape != k.shape:
        raise ValueError(f"g (log-gates) must have the shape of k {tuple(k.shape)}, got {tuple(g.shape)}")


def check_gates(g, k):
    """GLA log-gates: shaped like k, floating, finite and <= 0 (a gate alpha = exp(g) in (0, 1])."""
    check_gate_shape(g, k)
    if not torch.isfinite(g).all():
        raise gate_value_error(nonfinite=True)
    if (g > 0).any():
        raise gate_value_error(max_gate=g.max().item())


def gate_value_error(nonfinite=False, max_gate=None):
    """The error for log-gates that are NaN or inf, or else positive (max_gate: their largest value)."""
    if nonfinite:
        return ValueError("g (log-gates) contains NaN or inf")
    return ValueError(f"g holds log-gates, which must be <= 0 (gate alpha = exp(g) <= 1); max is {max_gate:.4g}. "
                      "Did you pass the gates alpha instead of log(alpha)?")


def check_state(name, state, shape, dtype):
    check_tensor(name, state, min_ndim=1)
    if tuple(state.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(state.shape)}")
    return state.to(dtype)


def check_gamma(gamma, q=None):
    """gamma as a float64 tensor: shape [] for a float, [H] for per-head decays (broadcast over [B, H, T, d])."""
    if isinstance(gamma, bool):
        raise TypeError(f"gamma must be a float or a tensor, got {gamma!r}")
    if isinstance(gamma, (int, float)):
        gamma = torch.tensor(float(gamma), dtype=torch.float64)
    elif isinstance(gamma, torch.Tensor):
        if not gamma.is_floating_point():
            raise TypeError(f"gamma must hold floating-point values, got dtype {gamma.dtype}")
        if gamma.ndim > 1:
            raise ValueError(f"gamma must be a float or a 1-D tensor [H], got shape {tuple(gamma.shape)}")
        gamma = gamma.to(torch.float64)
    else:
        raise TypeError(f"gamma must be a float or a tensor of shape [H], got {type(gamma).__name__}")
    if not torch.isfinite(gamma).all() or (gamma <= 0).any() or (gamma > 1).any():
        raise ValueError(f"gamma must lie in (0, 1], got {gamma.tolist()}")
    if gamma.ndim == 1 and q is not None:
        if q.ndim < 3 or q.shape[-3] != gamma.shape[0]:
            raise ValueError(
                f"gamma has {gamma.shape[0]} per-head values, so q must be [..., H={gamma.shape[0]}, T, d]; "
                f"got q of shape {tuple(q.shape)}"
            )
    return gamma


def check_linear_attention_state(initial_state, normalize, lead, d_k, d_v, dt):
    """The saved state as (mu, nu); nu is None when not normalizing."""
    if initial_state is None:
        return None
    if normalize:
        if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
            raise TypeError("with normalize=True, initial_state must be the pair (mu, nu)")
        mu = check_state("initial_state mu", initial_state[0], (*lead, d_k, d_v), dt)
        nu = check_state("initial_state nu", initial_state[1], (*lead, d_k), dt)
        return mu, nu
    return check_state("initial_state", initial_state, (*lead, d_k, d_v), dt), None
