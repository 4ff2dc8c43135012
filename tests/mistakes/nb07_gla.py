"""Wrong answers to notebook 07: gated linear attention."""
import torch
import torch.nn.functional as F

from . import default_scale, wrong

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


@wrong("gla_gates", "logsigmoid")
def gates_log_of_sigmoid(x, w_down, w_up, bias, tau=16.0):
    return torch.log(torch.sigmoid(x @ w_down @ w_up + bias)) / tau  # sigmoid(-120) is 0 in float32


# ---------------------------------------------------------------- gla_recurrent


def _loop(q, k, v, g, scale, decay=lambda g_t: g_t.exp(), gate_after=False, gate_rows=True):
    scale = default_scale(q, scale)
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
    scale = default_scale(q, scale)
    T = q.shape[-2]
    A = q.new_zeros(*q.shape[:-1], T)
    for i in range(T):
        for j in range(i + 1):
            decay = g[..., j + 1 : i + 1, :].prod(-2)  # the product of the gates between j and i, but g = log(alpha)
            A[..., i, j] = (q[..., i, :] * scale * k[..., j, :] * decay).sum(-1)
    return A @ v


@wrong("gla_parallel", "NaN")
def gla_parallel_cumprod_of_g(q, k, v, g, scale=None):
    scale = default_scale(q, scale)
    B = g.cumprod(-2)  # g is log(alpha): the cumulative decay is exp(cumsum(g)), not cumprod(g)
    A = ((q * scale * B) @ (k / B).mT).masked_fill(~_causal(q.shape[-2]), 0.0)
    return A @ v


@wrong("gla_parallel", "future tokens leak")
def gla_parallel_upper(q, k, v, g, scale=None):
    scale = default_scale(q, scale)
    b = g.cumsum(-2)
    diff = (b.unsqueeze(-2) - b.unsqueeze(-3)).masked_fill(~_causal(q.shape[-2]).mT.unsqueeze(-1), float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", q * scale, k, diff.exp()) @ v


@wrong("gla_parallel", "future tokens leak")
def gla_parallel_no_mask(q, k, v, g, scale=None):
    scale = default_scale(q, scale)
    b = g.cumsum(-2)
    B = b.exp()
    return ((q * scale * B) @ (k / B).mT) @ v


@wrong("gla_parallel", "gates are ignored")
def gla_parallel_plain_linear(q, k, v, g, scale=None):
    scale = default_scale(q, scale)
    return ((q * scale) @ k.mT).masked_fill(~_causal(q.shape[-2]), 0.0) @ v


@wrong("gla_parallel", "naive form divides by the cumulative gates")
def gla_parallel_naive(q, k, v, g, scale=None):
    scale = default_scale(q, scale)
    B = g.cumsum(-2).exp()  # right for short sequences; K / B overflows under a strong decay
    A = ((q * scale * B) @ (k / B).mT).masked_fill(~_causal(q.shape[-2]), 0.0)
    return A @ v


@wrong("gla_parallel", "exp before the mask")
def gla_parallel_exp_then_mask(q, k, v, g, scale=None):
    scale = default_scale(q, scale)
    b = g.cumsum(-2)
    decay = (b.unsqueeze(-2) - b.unsqueeze(-3)).exp() * _causal(q.shape[-2]).unsqueeze(-1)  # inf * 0 above
    return torch.einsum("...ic,...jc,...ijc->...ij", q * scale, k, decay) @ v


# ---------------------------------------------------------------- gla_recurrent: the saved state and the structure


def _loop_with_state(q, k, v, g, scale, initial_state, output_final_state, use_initial=True, return_state=True):
    scale = default_scale(q, scale)
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    if use_initial and initial_state is not None:
        S = initial_state
    out = []
    for t in range(q.shape[-2]):
        S = g[..., t, :, None].exp() * S + k[..., t, :, None] * v[..., t, None, :]
        out.append((q[..., t, None, :] * scale @ S).squeeze(-2))
    o = torch.stack(out, -2)
    return (o, S) if output_final_state and return_state else o


@wrong("gla_recurrent", "initial_state is ignored")
def gla_recurrent_ignores_initial_state(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    return _loop_with_state(q, k, v, g, scale, initial_state, output_final_state, use_initial=False)


@wrong("gla_recurrent", "asks for the pair (o, S_T)")
def gla_recurrent_never_returns_state(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    return _loop_with_state(q, k, v, g, scale, initial_state, output_final_state, return_state=False)


@wrong("gla_recurrent", "does not work token by token")
def gla_recurrent_is_parallel(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    scale = default_scale(q, scale)
    b = g.cumsum(-2)
    diff = (b.unsqueeze(-2) - b.unsqueeze(-3)).masked_fill(~_causal(q.shape[-2]).unsqueeze(-1), float("-inf"))
    o = torch.einsum("...ic,...jc,...ijc->...ij", q * scale, k, diff.exp()) @ v
    if initial_state is not None:
        o = o + (q * scale * b.exp()) @ initial_state
    if not output_final_state:
        return o
    S = (k * (b[..., -1:, :] - b).exp()).mT @ v
    if initial_state is not None:
        S = S + b[..., -1, :, None].exp() * initial_state
    return o, S


@wrong("gla_recurrent", "read before it is updated")
def gla_recurrent_reads_first(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    scale = default_scale(q, scale)
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1]) if initial_state is None else initial_state
    out = []
    for t in range(q.shape[-2]):
        out.append((q[..., t, None, :] * scale @ S).squeeze(-2))  # read S_{t-1}, then update
        S = g[..., t, :, None].exp() * S + k[..., t, :, None] * v[..., t, None, :]
    o = torch.stack(out, -2)
    return (o, S) if output_final_state else o


@wrong("gla_parallel", "q and k are swapped")
def gla_parallel_k_q(q, k, v, g, scale=None):
    scale = default_scale(q, scale)
    b = g.cumsum(-2)
    diff = (b.unsqueeze(-2) - b.unsqueeze(-3)).masked_fill(~_causal(q.shape[-2]).unsqueeze(-1), float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", k * scale, q, diff.exp()) @ v
