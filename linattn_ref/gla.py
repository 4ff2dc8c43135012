"""Gated linear attention (GLA): a data-dependent forget gate per key dimension.

    S_t = Diag(alpha_t) S_{t-1} + k_t^T v_t  =  (alpha_t^T 1) * S_{t-1} + k_t^T v_t,    o_t = scale * q_t S_t

alpha_t in (0, 1)^{d_k} comes from the input through a low-rank projection and a sigmoid. The code keeps
log-gates g_t = log alpha_t (<= 0): products of gates become sums, b_t = sum_{s<=t} g_s = log B_t.

Unrolled, o_i = sum_{j<=i} ((q_i * B_i) . (k_j / B_j)) v_j, i.e. O = (((Q * B)(K / B)^T) * M) V.
Computing K / B directly divides by a product of numbers below one, which underflows to 0 in float32 once
-b_t > ~87 (1/B overflows): with the usual gates (tau = 16, alpha ~ sigmoid(0)) that is a few thousand
steps. `gla_parallel_naive` shows it; `gla_parallel` uses exp(b_i - b_j) for j <= i, which is always <= 1.
"""
import math

import torch
import torch.nn.functional as F

from ._validate import check_chunk_size, check_gates, check_qkv, check_state, check_tensor, resolve_scale, work_dtype
from .chunk import chunk_gated_linear_attention
from .masks import causal_mask


def gla_gates(x, w_down, w_up, bias, tau=16.0):
    """Log-gates from the input: g = log(sigmoid(x W_down W_up + bias)) / tau.

    x: [..., T, d_model]; w_down: [d_model, r]; w_up: [r, d_k]; bias: [d_k] -> g: [..., T, d_k], all <= 0
    (exactly 0, a gate of 1, once the pre-activation is large enough to round sigmoid to 1).
    The rank r << d_model keeps the gate cheap: d_model*r + r*d_k parameters instead of d_model*d_k
    (a full G_t in R^{d_k x d_v} from a projection would need d_model*d_k*d_v). Dividing by the
    temperature tau > 1 pushes alpha = exp(g) towards 1, so the memory fades slowly.
    """
    for name, t in (("x", x), ("w_down", w_down), ("w_up", w_up)):
        check_tensor(name, t)
    check_tensor("bias", bias, min_ndim=1)
    if w_down.shape[0] != x.shape[-1] or w_up.shape[0] != w_down.shape[1] or bias.shape != w_up.shape[1:]:
        raise ValueError(
            f"shapes do not chain: x {tuple(x.shape)} @ w_down {tuple(w_down.shape)} @ w_up {tuple(w_up.shape)}"
            f" + bias {tuple(bias.shape)} needs w_down [d_model, r], w_up [r, d_k], bias [d_k]"
        )
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not tau > 0:
        raise ValueError(f"tau must be a positive number, got {tau!r}")
    return F.logsigmoid(x @ w_down @ w_up + bias) / tau


def _prepare(q, k, v, g, scale):
    _, d_k, _ = check_qkv(q, k, v)
    check_gates(g, k)
    scale = resolve_scale(scale, d_k)
    dt = work_dtype(q.dtype)
    return q.to(dt) * scale, k.to(dt), v.to(dt), g.to(dt)


def gla_recurrent(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    """S_t = exp(g_t)^T * S_{t-1} + k_t^T v_t, o_t = scale * q_t S_t, one step at a time.

    q, k, g: [..., T, d_k]; v: [..., T, d_v]; initial_state: [..., d_k, d_v] or None.
    Returns o, or (o, final_state) when output_final_state is True.
    """
    out_dtype = q.dtype
    q, k, v, g = _prepare(q, k, v, g, scale)
    *lead, T, d_k = q.shape
    d_v = v.shape[-1]
    if initial_state is None:
        S = q.new_zeros(*lead, d_k, d_v)
    else:
        S = check_state("initial_state", initial_state, (*lead, d_k, d_v), q.dtype)
    outputs = []
    for t in range(T):
        alpha_t = g[..., t, :].exp().unsqueeze(-1)  # [..., d_k, 1]: row c of S decays by alpha_tc
        S = alpha_t * S + k[..., t, :].unsqueeze(-1) * v[..., t, :].unsqueeze(-2)
        outputs.append((q[..., t, :].unsqueeze(-2) @ S).squeeze(-2))
    o = torch.stack(outputs, dim=-2).to(out_dtype)
    return (o, S) if output_final_state else o


def gla_parallel(q, k, v, g, scale=None):
    """O = (((Q * B)(K / B)^T) * M) V computed stably: A_ij = sum_c q_ic k_jc exp(b_ic - b_jc) for j <= i.

    b = cumsum(g). Each exponent b_i - b_j (j <= i) is <= 0, so no term overflows at any length.
    Memory is O(T^2 d_k): a reference, not a fast path.
    """
    out_dtype = q.dtype
    q, k, v, g = _prepare(q, k, v, g, scale)
    T = q.shape[-2]
    b = g.cumsum(dim=-2)
    diff = b.unsqueeze(-2) - b.unsqueeze(-3)  # [..., T(i), T(j), d_k] = b_i - b_j
    diff = diff.masked_fill(~causal_mask(T, device=q.device).unsqueeze(-1), float("-inf"))
    A = torch.einsum("...ic,...jc,...ijc->...ij", q, k, diff.exp())
    return (A @ v).to(out_dtype)


def gla_parallel_naive(q, k, v, g, scale=None):
    """O = (((Q * B)(K / B)^T) * M) V with B = exp(cumsum(g)) as written: correct for short sequences only.

    In float32, 1/B_t overflows once -b_t > log(float32 max) ~ 88.7, i.e. after about
    88.7 / |mean g| steps (see `naive_breakdown_length`); K / B becomes inf, Q * B becomes 0, and the
    output turns into NaN. This is why GLA works in log space.
    """
    out_dtype = q.dtype
    q, k, v, g = _prepare(q, k, v, g, scale)
    T = q.shape[-2]
    B = g.cumsum(dim=-2).exp()
    A = ((q * B) @ (k / B).transpose(-1, -2)).masked_fill(~causal_mask(T, device=q.device), 0.0)
    return (A @ v).to(out_dtype)


def naive_breakdown_length(mean_log_gate, dtype=torch.float32):
    """The step after which 1 / B_t overflows in `dtype` for gates of constant log-value `mean_log_gate`.

    Example: alpha = sigmoid(0) ** (1/16) (g = log(0.5) / 16 ~ -0.0433) breaks float32 after ~2048 steps.
    """
    if not mean_log_gate < 0:
        raise ValueError(f"mean_log_gate must be negative, got {mean_log_gate!r}")
    return math.floor(math.log(torch.finfo(dtype).max) / -mean_log_gate) + 1


def gla_chunk(q, k, v, g, scale=None, chunk_size=64, initial_state=None, output_final_state=False):
    """Chunkwise GLA: the gated chunk core with one log-gate per key dimension and step."""
    check_chunk_size(chunk_size)
    out_dtype = q.dtype
    q, k, v, g = _prepare(q, k, v, g, scale)
    *lead, T, d_k = q.shape
    init = None
    if initial_state is not None:
        init = check_state("initial_state", initial_state, (*lead, d_k, v.shape[-1]), q.dtype)
    o, S = chunk_gated_linear_attention(q, k, v, g, 1.0, chunk_size, init, output_final_state=True)
    o = o.to(out_dtype)
    return (o, S) if output_final_state else o
