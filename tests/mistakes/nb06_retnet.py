"""Wrong answers to notebook 06: RetNet's decay mask and retention."""
import torch

from linattn_ref.retnet import per_head

from . import default_scale, wrong


def _distance(T):
    i = torch.arange(T, dtype=torch.float64)
    return i[:, None] - i[None, :]


def _gamma(gamma):
    return per_head(gamma)


# ---------------------------------------------------------------- decay_mask


@wrong("decay_mask", "exponent is off by one")
def decay_mask_plus_one(T, gamma):
    d = _distance(T)
    return torch.where(d >= 0, _gamma(gamma) ** (d + 1), 0.0)


@wrong("decay_mask", "upper triangle")
def decay_mask_upper(T, gamma):
    d = -_distance(T)
    return torch.where(d >= 0, _gamma(gamma) ** d, 0.0)


@wrong("decay_mask", "future is not masked")
def decay_mask_unmasked(T, gamma):
    return _gamma(gamma) ** _distance(T).abs()


@wrong("decay_mask", "raised")
def decay_mask_scalar_only(T, gamma):
    d = _distance(T)
    return torch.where(d >= 0, gamma ** d, 0.0)  # a tensor gamma [H] does not broadcast against [T, T]


@wrong("decay_mask", "wrong dtype")
def decay_mask_float32(T, gamma):
    i = torch.arange(T)
    d = (i[:, None] - i[None, :]).float()
    return torch.where(d >= 0, torch.as_tensor(gamma, dtype=torch.float32) ** d, 0.0)


@wrong("decay_mask", "inf * 0 = NaN")
def decay_mask_power_times_tril(T, gamma):
    d = _distance(T)
    return torch.as_tensor(_gamma(gamma), dtype=torch.float64) ** d * torch.ones(T, T, dtype=torch.float64).tril()


@wrong("decay_mask", "sign is flipped")
def decay_mask_negative_exponent(T, gamma):
    d = _distance(T)
    return torch.where(d >= 0, torch.as_tensor(_gamma(gamma), dtype=torch.float64) ** -d.clamp(min=0), 0.0)


# ---------------------------------------------------------------- multiscale_gammas


@wrong("multiscale_gammas", "off by one")
def gammas_from_one(n_heads):
    h = torch.arange(1, n_heads + 1, dtype=torch.float64)
    return 1 - 2.0 ** (-5 - h)


@wrong("multiscale_gammas", "that is 2^(-5-h)")
def gammas_without_one_minus(n_heads):
    return 2.0 ** (-5 - torch.arange(n_heads, dtype=torch.float64))


@wrong("multiscale_gammas", "wrong dtype")
def gammas_float32(n_heads):
    return 1 - 2.0 ** (-5 - torch.arange(n_heads).float())


@wrong("multiscale_gammas", "wrong type")
def gammas_list(n_heads):
    return [1 - 2.0 ** (-5 - h) for h in range(n_heads)]


# ---------------------------------------------------------------- retention_parallel



@wrong("retention_parallel", "exponent is off by one")
def retention_parallel_plus_one(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2]).to(q.dtype)
    D = torch.where(d >= 0, torch.as_tensor(_gamma(gamma), dtype=q.dtype) ** (d + 1), 0.0)
    return ((q @ k.mT) * default_scale(q, scale) * D) @ v


@wrong("retention_parallel", "upper triangle")
def retention_parallel_upper(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2]).to(q.dtype)
    D = torch.where(d <= 0, torch.as_tensor(_gamma(gamma), dtype=q.dtype) ** (-d), 0.0)
    return ((q @ k.mT) * default_scale(q, scale) * D) @ v


@wrong("retention_parallel", "missing the scale")
def retention_parallel_unscaled(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2]).to(q.dtype)
    D = torch.where(d >= 0, torch.as_tensor(_gamma(gamma), dtype=q.dtype) ** d, 0.0)
    return ((q @ k.mT) * D) @ v


@wrong("retention_parallel", "no decay")
def retention_parallel_no_decay(q, k, v, gamma, scale=None):
    return ((q @ k.mT) * default_scale(q, scale)).tril() @ v


@wrong("retention_parallel", "raised")
def retention_parallel_scalar_gamma(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2]).to(q.dtype)
    D = torch.where(d >= 0, gamma ** d, 0.0)  # float(gamma) ** tensor: fine; tensor [H] ** [T, T]: fails
    return ((q @ k.mT) * default_scale(q, scale) * D.to(q.dtype)) @ v


@wrong("retention_parallel", "inf * 0 = NaN")
def retention_parallel_power_times_mask(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2])
    D = torch.as_tensor(_gamma(gamma), dtype=torch.float64) ** d * (d >= 0)  # gamma^(-199) = inf above the diagonal
    return ((q @ k.mT) * default_scale(q, scale) * D.to(q.dtype)) @ v


@wrong("retention_parallel", "inf * 0 = NaN")
def retention_parallel_mask_in_q_dtype(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2]).to(q.dtype)
    D = torch.as_tensor(_gamma(gamma), dtype=q.dtype) ** d * torch.ones_like(d).tril()
    return ((q @ k.mT) * default_scale(q, scale) * D) @ v


@wrong("retention_parallel", "sign is flipped")
def retention_parallel_gamma_j_minus_i(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2]).to(q.dtype)
    D = torch.where(d >= 0, torch.as_tensor(_gamma(gamma), dtype=q.dtype) ** (-d).clamp(max=0), 0.0)
    return ((q @ k.mT) * default_scale(q, scale) * D) @ v


# ---------------------------------------------------------------- retention_recurrent


def _retention_loop(q, k, v, gamma, scale, decay_after=False, decay=True):
    q = q * default_scale(q, scale)
    g = torch.as_tensor(_gamma(gamma), dtype=q.dtype) if decay else 1.0
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    out = []
    for t in range(q.shape[-2]):
        kv = k[..., t, :, None] * v[..., t, None, :]
        S = g * (S + kv) if decay_after else g * S + kv
        out.append((q[..., t, None, :] @ S).squeeze(-2))
    return torch.stack(out, -2)


@wrong("retention_recurrent", "exponent is off by one")
def retention_recurrent_decays_new_token(q, k, v, gamma, scale=None):
    return _retention_loop(q, k, v, gamma, scale, decay_after=True)


@wrong("retention_recurrent", "no decay")
def retention_recurrent_no_decay(q, k, v, gamma, scale=None):
    return _retention_loop(q, k, v, gamma, scale, decay=False)


@wrong("retention_recurrent", "changed its input")
def retention_recurrent_scales_q_in_place(q, k, v, gamma, scale=None):
    q *= default_scale(q, scale)
    return _retention_loop(q, k, v, gamma, 1.0)


@wrong("retention_recurrent", "wrong dtype")
def retention_recurrent_float32_buffer(q, k, v, gamma, scale=None):
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    out = torch.zeros(*q.shape[:-1], v.shape[-1])  # float32, whatever the inputs
    for t in range(q.shape[-2]):
        S = torch.as_tensor(_gamma(gamma), dtype=q.dtype) * S + k[..., t, :, None] * v[..., t, None, :]
        out[..., t, :] = (q[..., t, None, :] * default_scale(q, scale) @ S).squeeze(-2)
    return out


def _retention_with_state(q, k, v, gamma, scale, initial_state, output_final_state, use_initial=True,
                          return_state=True):
    q = q * default_scale(q, scale)
    g = torch.as_tensor(_gamma(gamma), dtype=q.dtype)
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    if use_initial and initial_state is not None:
        S = initial_state
    out = []
    for t in range(q.shape[-2]):
        S = g * S + k[..., t, :, None] * v[..., t, None, :]
        out.append((q[..., t, None, :] @ S).squeeze(-2))
    o = torch.stack(out, -2)
    return (o, S) if output_final_state and return_state else o


@wrong("retention_recurrent", "initial_state is ignored")
def retention_recurrent_ignores_initial_state(q, k, v, gamma, scale=None, initial_state=None,
                                              output_final_state=False):
    return _retention_with_state(q, k, v, gamma, scale, initial_state, output_final_state, use_initial=False)


@wrong("retention_recurrent", "asks for the pair (o, S_T)")
def retention_recurrent_never_returns_state(q, k, v, gamma, scale=None, initial_state=None,
                                            output_final_state=False):
    return _retention_with_state(q, k, v, gamma, scale, initial_state, output_final_state, return_state=False)


@wrong("retention_recurrent", "does not work token by token")
def retention_recurrent_is_parallel(q, k, v, gamma, scale=None, initial_state=None, output_final_state=False):
    d = _distance(q.shape[-2]).to(q.dtype)
    g = torch.as_tensor(_gamma(gamma), dtype=q.dtype)
    o = ((q @ k.mT) * default_scale(q, scale) * torch.where(d >= 0, g ** d.clamp(min=0), 0.0)) @ v
    if initial_state is not None:  # the state's contribution, decayed to each position: right, but all at once
        steps = torch.arange(1, q.shape[-2] + 1, dtype=q.dtype).unsqueeze(-1)
        o = o + (g ** steps) * (q * default_scale(q, scale)) @ initial_state
    if not output_final_state:
        return o
    T = q.shape[-2]
    weights = (g ** (T - 1 - torch.arange(T, dtype=q.dtype))).unsqueeze(-1)
    S = (k * weights).mT @ v + (g ** T) * (0 if initial_state is None else initial_state)
    return o, S


@wrong("retention_recurrent", "read before it is updated")
def retention_recurrent_reads_first(q, k, v, gamma, scale=None, initial_state=None, output_final_state=False):
    q = q * default_scale(q, scale)
    g = torch.as_tensor(_gamma(gamma), dtype=q.dtype)
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1]) if initial_state is None else initial_state
    out = []
    for t in range(q.shape[-2]):
        out.append((q[..., t, None, :] @ S).squeeze(-2))  # read S_{t-1}, then update
        S = g * S + k[..., t, :, None] * v[..., t, None, :]
    o = torch.stack(out, -2)
    return (o, S) if output_final_state else o


@wrong("retention_parallel", "q and k are swapped")
def retention_parallel_k_q(q, k, v, gamma, scale=None):
    d = _distance(q.shape[-2]).to(q.dtype)
    D = torch.where(d >= 0, torch.as_tensor(_gamma(gamma), dtype=q.dtype) ** d.clamp(min=0), 0.0)
    return ((k @ q.mT) * default_scale(q, scale) * D) @ v


@wrong("retention_recurrent", "rounded to float32")
def retention_recurrent_float32_gamma(q, k, v, gamma, scale=None, initial_state=None, output_final_state=False):
    g = torch.as_tensor(gamma)  # float32 for a Python float: 0.9 becomes 0.89999998
    g = per_head(g)
    S = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1]) if initial_state is None else initial_state
    out = []
    for t in range(q.shape[-2]):
        S = g * S + k[..., t, :, None] * v[..., t, None, :]
        out.append(default_scale(q, scale) * (q[..., t, None, :] @ S).squeeze(-2))
    o = torch.stack(out, -2)
    return (o, S) if output_final_state else o


@wrong("decay_mask", "rounded to float32")
def decay_mask_float32_gamma(T, gamma):
    g = torch.tensor(gamma) if not isinstance(gamma, torch.Tensor) else gamma  # a float32 scalar tensor
    d = _distance(T)
    g = per_head(g)
    return torch.where(d >= 0, g ** d.clamp(min=0), 0.0)
