"""Correct solutions written differently from the reference (einsum, python loops, online softmax, other
algebra) pass every check, visible and held-out: the checks test the answer, not the way to it."""
import itertools
import math
import sys
from pathlib import Path

import pytest
import torch

from autograder.checks import check
from linattn_ref.retnet import per_head

sys.path.insert(0, str(Path(__file__).parent))
import mistakes  # noqa: E402  (the bank also holds right answers, written differently: @right and CORRECT)
from mistakes import default_scale  # noqa: E402


def _phi(feature_map, x):
    return x if feature_map is None else feature_map(x)  # feature_map=None: no feature map



def causal_mask(T, device=None):
    i = torch.arange(T, device=device)
    return i[:, None] >= i[None, :]


def qk_pairs(T):
    return [(i, j) for i, j in itertools.product(range(T), repeat=2) if j <= i]


def visible_keys(k, i):
    return k.narrow(-2, 0, i + 1)


def num_visible_keys(T, i):
    return len(range(i + 1))


def masked_scores(q, k, scale=None):
    T = q.shape[-2]
    scores = torch.einsum("...id,...jd->...ij", q, k) * default_scale(q, scale)
    return torch.where(causal_mask(T), scores, torch.tensor(float("-inf"), dtype=scores.dtype))


def softmax_attention_parallel(q, k, v, scale=None):
    scores = masked_scores(q, k, scale)
    weights = (scores - scores.amax(-1, keepdim=True)).exp()
    return torch.einsum("...ij,...jd->...id", weights / weights.sum(-1, keepdim=True), v)


def softmax_attention_step(q_t, k_cache, v_cache, scale=None):
    scores = torch.einsum("...d,...jd->...j", q_t, k_cache) * default_scale(q_t, scale)
    return torch.einsum("...j,...jd->...d", scores.softmax(-1), v_cache)


def softmax_attention_recurrent(q, k, v, scale=None):
    """Online softmax: a running maximum, a running denominator and a running weighted sum."""
    scale = default_scale(q, scale)
    out = []
    for t in range(q.shape[-2]):
        m = torch.full(q.shape[:-2], float("-inf"), dtype=q.dtype)
        den = torch.zeros(q.shape[:-2], dtype=q.dtype)
        acc = torch.zeros(*q.shape[:-2], v.shape[-1], dtype=q.dtype)
        for j in range(t + 1):
            s = (q[..., t, :] * k[..., j, :]).sum(-1) * scale
            m_new = torch.maximum(m, s)
            correction = (m - m_new).exp()
            den = den * correction + (s - m_new).exp()
            acc = acc * correction.unsqueeze(-1) + (s - m_new).exp().unsqueeze(-1) * v[..., j, :]
            m = m_new
        out.append(acc / den.unsqueeze(-1))
    return torch.stack(out, -2)


def kv_cache_bytes(T, n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
    return math.prod([2, batch_size, T, n_layers, n_heads, d_head, bytes_per_element])


def elu_plus_one(x):
    return torch.where(x > 0, x + 1, x.exp())


def linear_attention_noncausal(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phi(feature_map, q) * default_scale(q, scale), _phi(feature_map, k)
    out = torch.einsum("...id,...de->...ie", qp, torch.einsum("...jd,...je->...de", kp, v))
    if normalize:
        out = out / (torch.einsum("...id,...d->...i", qp, kp.sum(-2)).unsqueeze(-1) + eps)
    return out


def linear_attention_parallel(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phi(feature_map, q) * default_scale(q, scale), _phi(feature_map, k)
    rows = []
    for i in range(q.shape[-2]):
        w = torch.einsum("...d,...jd->...j", qp[..., i, :], kp[..., : i + 1, :])
        o = torch.einsum("...j,...je->...e", w, v[..., : i + 1, :])
        rows.append(o / (w.sum(-1, keepdim=True) + eps) if normalize else o)
    return torch.stack(rows, -2)


def state_update(mu, nu, kp_t, v_t):
    return mu + torch.einsum("...d,...e->...de", kp_t, v_t), nu + kp_t


def state_variables(kp, v):
    mu = kp.new_zeros(*kp.shape[:-2], kp.shape[-1], v.shape[-1])
    nu = kp.new_zeros(*kp.shape[:-2], kp.shape[-1])
    mus, nus = [], []
    for t in range(kp.shape[-2]):
        mu, nu = state_update(mu, nu, kp[..., t, :], v[..., t, :])
        mus.append(mu)
        nus.append(nu)
    return torch.stack(mus, -3), torch.stack(nus, -2)


def state_readout(qp_t, mu, nu=None, eps=0.0):
    out = torch.einsum("...d,...de->...e", qp_t, mu)
    return out if nu is None else out / (torch.einsum("...d,...d->...", qp_t, nu).unsqueeze(-1) + eps)


def linear_attention_recurrent(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, initial_state=None,
                               output_final_state=False):
    qp, kp = _phi(feature_map, q) * default_scale(q, scale), _phi(feature_map, k)
    mu = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    nu = q.new_zeros(*q.shape[:-2], q.shape[-1])
    if initial_state is not None:
        mu, nu = initial_state if normalize else (initial_state, nu)
    out = []
    for t in range(q.shape[-2]):
        mu, nu = state_update(mu, nu, kp[..., t, :], v[..., t, :])
        out.append(state_readout(qp[..., t, :], mu, nu if normalize else None, eps))
    o = torch.stack(out, -2)
    if output_final_state:
        return o, ((mu, nu) if normalize else mu)
    return o


def average_update(mem, k, v):
    n, k_bar, v_bar = mem
    return n + 1, (n * k_bar + k) / (n + 1), (n * v_bar + v) / (n + 1)


def window_update(mem, k, v, size):
    keys, values = mem
    start = max(0, keys.shape[0] + 1 - size)
    return torch.cat([keys[start:], k[None]]), torch.cat([values[start:], v[None]])


def linear_scan_sequential(a, b, initial=None):
    out, S = [], initial
    for a_t, b_t in zip(a, b):
        S = b_t.clone() if S is None else a_t * S + b_t
        out.append(S)
    return torch.stack(out)


def linear_scan_parallel(a, b, initial=None):
    """The closed form S_t = sum_{j<=t} (prod_{j<s<=t} a_s) b_j, all t at once, the products in log space."""
    T = b.shape[0]
    log_a = torch.broadcast_to(a, b.shape).log()
    L = log_a.cumsum(0)  # L_t = sum_{s<=t} log a_s
    decay = (L.unsqueeze(1) - L.unsqueeze(0)).exp()  # [T(t), T(j), ...] = prod_{j<s<=t} a_s
    lower = torch.ones(T, T, dtype=torch.bool).tril().view(T, T, *[1] * (b.ndim - 1))
    S = torch.where(lower, decay * b.unsqueeze(0), 0.0).sum(1)
    if initial is not None:
        S = S + L.exp() * initial
    return S


def decay_mask(T, gamma):
    """In log space: exp((i - j) log gamma) below the diagonal; the distance clamped at 0 so nothing overflows."""
    log_g = torch.as_tensor(gamma, dtype=torch.float64).log()
    log_g = per_head(log_g)
    i = torch.arange(T, dtype=torch.float64)
    return ((i[:, None] - i[None, :]).clamp(min=0) * log_g).exp().tril()


def multiscale_gammas(n_heads):
    return torch.tensor([1 - 2 ** (-5 - h) for h in range(n_heads)], dtype=torch.float64)


def retention_parallel(q, k, v, gamma, scale=None):
    D = decay_mask(q.shape[-2], gamma).to(q.dtype)
    return torch.einsum("...ij,...jd->...id", torch.einsum("...id,...jd->...ij", q, k) * default_scale(q, scale) * D, v)


def retention_recurrent(q, k, v, gamma, scale=None):
    g = per_head(gamma, q.dtype)
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    out = []
    for t in range(q.shape[-2]):
        S = g * S + torch.einsum("...d,...e->...de", k[..., t, :], v[..., t, :])
        out.append(torch.einsum("...d,...de->...e", q[..., t, :], S) * default_scale(q, scale))
    return torch.stack(out, -2)


def gla_gates(x, w_down, w_up, bias, tau=16.0):
    z = x @ w_down @ w_up + bias
    return -torch.nn.functional.softplus(-z) / tau  # log(sigmoid(z)) = -log(1 + exp(-z)), without rounding


def gla_recurrent(q, k, v, g, scale=None):
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    out = []
    for t in range(q.shape[-2]):
        S = torch.einsum("...d,...de->...de", g[..., t, :].exp(), S) + torch.einsum(
            "...d,...e->...de", k[..., t, :], v[..., t, :])
        out.append(torch.einsum("...d,...de->...e", q[..., t, :] * default_scale(q, scale), S))
    return torch.stack(out, -2)


def gla_parallel(q, k, v, g, scale=None):
    b = g.cumsum(-2)
    T = q.shape[-2]
    rows = []
    for i in range(T):
        decay = (b[..., i : i + 1, :] - b[..., : i + 1, :]).exp()  # [..., i + 1, d_k], every entry <= 1
        w = ((q[..., i : i + 1, :] * default_scale(q, scale)) * k[..., : i + 1, :] * decay).sum(-1)
        rows.append(torch.einsum("...j,...je->...e", w, v[..., : i + 1, :]))
    return torch.stack(rows, -2)


def intra_chunk_scores(q, k, b=None):
    C = q.shape[-2]
    A = q.new_zeros(*q.shape[:-1], C)
    for i in range(C):
        for j in range(i + 1):
            decay = 1.0 if b is None else (b[..., i, :] - b[..., j, :]).exp()
            A[..., i, j] = (q[..., i, :] * k[..., j, :] * decay).sum(-1)
    return A


def chunk_gated_linear_attention(q, k, v, g=None, scale=1.0, chunk_size=64, initial_state=None,
                                 output_final_state=False):
    """Each chunk: a small masked attention inside, the carried state for everything before."""
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1]) if initial_state is None else initial_state
    out = []
    for start in range(0, q.shape[-2], chunk_size):
        sl = slice(start, start + chunk_size)
        qc, kc, vc = q[..., sl, :] * scale, k[..., sl, :], v[..., sl, :]
        b = torch.zeros_like(qc[..., :1]) if g is None else g[..., sl, :].cumsum(-2)
        out.append(intra_chunk_scores(qc, kc, b) @ vc + (qc * b.exp()) @ S)
        S = b[..., -1, :].exp().unsqueeze(-1) * S + ((b[..., -1:, :] - b).exp() * kc).mT @ vc
    o = torch.cat(out, -2)
    return (o, S) if output_final_state else o


def linear_attention_chunk(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0, chunk_size=64):
    qp, kp = (q, k) if feature_map is None else (feature_map(q), feature_map(k))
    num = chunk_gated_linear_attention(qp, kp, v, None, default_scale(q, scale), chunk_size)
    if not normalize:
        return num
    den = chunk_gated_linear_attention(qp, kp, torch.ones_like(v[..., :1]), None, default_scale(q, scale), chunk_size)
    return num / (den + eps)


def retention_chunk(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None, output_final_state=False):
    log_gamma = torch.as_tensor(gamma, dtype=q.dtype).log()
    g = per_head(log_gamma).expand(*q.shape[:-1], 1)
    return chunk_gated_linear_attention(q, k, v, g, default_scale(q, scale), chunk_size, initial_state,
                                        output_final_state)


def gla_chunk(q, k, v, g, scale=None, chunk_size=64, initial_state=None, output_final_state=False):
    return chunk_gated_linear_attention(q, k, v, g, default_scale(q, scale), chunk_size, initial_state,
                                        output_final_state)


SOLUTIONS = {name: fn for name, fn in globals().items() if callable(fn) and not name.startswith("_")
             and getattr(fn, "__module__", None) == __name__}
SOLUTIONS.update(mistakes.right_answers())  # the bank's right answers (the Triton kernels, the capstone, ...)


def test_every_exercise_has_an_alternative_solution():
    from autograder.checks import EXERCISES
    assert set(SOLUTIONS) == set(EXERCISES)


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_differently_written_solution_passes(name, capfd):
    assert check(name, SOLUTIONS[name], hidden=True) is None
    assert capfd.readouterr() == ("", "")


def test_float32_state_with_float64_accumulation_passes():
    """Computing in higher precision and casting back is fine: the dtype and the values are what count."""
    def softmax_attention_parallel(q, k, v, scale=None):
        T = q.shape[-2]
        scores = q.double() @ k.double().mT * default_scale(q, scale)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return (torch.softmax(scores, dim=-1) @ v.double()).to(q.dtype)

    assert check("softmax_attention_parallel", softmax_attention_parallel, hidden=True) is None
