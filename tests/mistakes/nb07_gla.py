"""Wrong answers to notebook 07: gated linear attention."""
import torch
import torch.nn.functional as F

from . import wrong

# ---------------------------------------------------------------- gla_gates


@wrong("gla_gates", "not the log-gates")
def gates_alpha(x, w_down, w_up, bias, tau=16.0):
    return torch.sigmoid(x @ w_down @ w_up + bias) ** (1 / tau)


@wrong("gla_gates", "not in log space")
def gates_sigmoid_over_tau(x, w_down, w_up, bias, tau=16.0):
    return torch.sigmoid(x @ w_down @ w_up + bias) / tau


@wrong("gla_gates", "temperature is missing")
def gates_no_tau(x, w_down, w_up, bias, tau=16.0):
    return F.logsigmoid(x @ w_down @ w_up + bias)


@wrong("gla_gates", "bias is missing")
def gates_no_bias(x, w_down, w_up, bias, tau=16.0):
    return F.logsigmoid(x @ w_down @ w_up) / tau


@wrong("gla_gates", "multiplies instead of divides")
def gates_times_tau(x, w_down, w_up, bias, tau=16.0):
    return F.logsigmoid(x @ w_down @ w_up + bias) * tau


# ---------------------------------------------------------------- gla_recurrent


def _loop(q, k, v, g, scale, decay=lambda g_t: g_t.exp(), gate_after=False, gate_rows=True):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    out = []
    for t in range(q.shape[-2]):
        alpha = decay(g[..., t, :])
        alpha = alpha.unsqueeze(-1) if gate_rows else alpha.unsqueeze(-2)
        kv = k[..., t, :, None] * v[..., t, None, :]
        S = alpha * (S + kv) if gate_after else alpha * S + kv
        out.append((q[..., t, None, :] * scale @ S).squeeze(-2))
    return torch.stack(out, -2)


@wrong("gla_recurrent", "log-gates are used as gates")
def gla_recurrent_g_as_alpha(q, k, v, g, scale=None):
    return _loop(q, k, v, g, scale, decay=lambda g_t: g_t)


@wrong("gla_recurrent", "gates are ignored")
def gla_recurrent_no_gate(q, k, v, g, scale=None):
    return _loop(q, k, v, g, scale, decay=lambda g_t: torch.ones_like(g_t))


@wrong("gla_recurrent", "gate exponent is off by one")
def gla_recurrent_gate_after(q, k, v, g, scale=None):
    return _loop(q, k, v, g, scale, gate_after=True)


@wrong("gla_recurrent", "applied along d_v")
def gla_recurrent_gate_columns(q, k, v, g, scale=None):
    return _loop(q, k, v, g, scale, gate_rows=False)


@wrong("gla_recurrent", "missing the scale")
def gla_recurrent_unscaled(q, k, v, g, scale=None):
    return _loop(q, k, v, g, 1.0)


# ---------------------------------------------------------------- gla_parallel


def _causal(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


@wrong("gla_parallel", "log-gates are used as gates")
def gla_parallel_double_loop(q, k, v, g, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    T = q.shape[-2]
    A = q.new_zeros(*q.shape[:-1], T)
    for i in range(T):
        for j in range(i + 1):
            decay = g[..., j + 1 : i + 1, :].prod(-2)  # the product of the gates between j and i, but g = log(alpha)
            A[..., i, j] = (q[..., i, :] * scale * k[..., j, :] * decay).sum(-1)
    return A @ v


@wrong("gla_parallel", "NaN")
def gla_parallel_cumprod_of_g(q, k, v, g, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    B = g.cumprod(-2)  # g is log(alpha): the cumulative decay is exp(cumsum(g)), not cumprod(g)
    A = ((q * scale * B) @ (k / B).mT).masked_fill(~_causal(q.shape[-2]), 0.0)
    return A @ v


@wrong("gla_parallel", "future tokens leak")
def gla_parallel_upper(q, k, v, g, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b = g.cumsum(-2)
    diff = (b.unsqueeze(-2) - b.unsqueeze(-3)).masked_fill(~_causal(q.shape[-2]).mT.unsqueeze(-1), float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", q * scale, k, diff.exp()) @ v


@wrong("gla_parallel", "future tokens leak")
def gla_parallel_no_mask(q, k, v, g, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b = g.cumsum(-2)
    B = b.exp()
    return ((q * scale * B) @ (k / B).mT) @ v


@wrong("gla_parallel", "gates are ignored")
def gla_parallel_plain_linear(q, k, v, g, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return ((q * scale) @ k.mT).masked_fill(~_causal(q.shape[-2]), 0.0) @ v


@wrong("gla_parallel", "exp that overflows", hidden=True)
def gla_parallel_naive(q, k, v, g, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    B = g.cumsum(-2).exp()  # right for short sequences; K / B overflows under a strong decay
    A = ((q * scale * B) @ (k / B).mT).masked_fill(~_causal(q.shape[-2]), 0.0)
    return A @ v
