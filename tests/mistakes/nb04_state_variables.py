"""Wrong answers to notebook 04: the state variables mu and nu and the recurrent form."""
import torch

from . import default_scale, wrong

# ---------------------------------------------------------------- state_variables


@wrong("state_variables", "wrong way round")
def states_outer_wrong_way(kp, v):
    return (v.unsqueeze(-1) * kp.unsqueeze(-2)).cumsum(-3), kp.cumsum(-2)


@wrong("state_variables", "not accumulated")
def states_no_cumsum(kp, v):
    return kp.unsqueeze(-1) * v.unsqueeze(-2), kp


@wrong("state_variables", "off-by-one")
def states_exclusive(kp, v):
    outer = kp.unsqueeze(-1) * v.unsqueeze(-2)
    mu = outer.cumsum(-3) - outer  # the sum over j < i
    return mu, kp.cumsum(-2) - kp


@wrong("state_variables", "wrong order")
def states_swapped(kp, v):
    return kp.cumsum(-2), (kp.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(-3)


@wrong("state_variables", "future tokens leak")
def states_total(kp, v):
    outer = kp.unsqueeze(-1) * v.unsqueeze(-2)
    T = kp.shape[-2]
    mu = outer.sum(-3, keepdim=True).expand_as(outer)  # every position gets the sum over the whole sequence
    return mu, kp.sum(-2, keepdim=True).expand(*kp.shape[:-2], T, kp.shape[-1])


# ---------------------------------------------------------------- state_update


@wrong("state_update", "changed its input")
def state_update_in_place(mu, nu, kp_t, v_t):
    mu += kp_t.unsqueeze(-1) * v_t.unsqueeze(-2)
    nu += kp_t
    return mu, nu


@wrong("state_update", "previous state is dropped")
def state_update_fresh(mu, nu, kp_t, v_t):
    return kp_t.unsqueeze(-1) * v_t.unsqueeze(-2), kp_t


@wrong("state_update", "wrong way round")
def state_update_outer_wrong_way(mu, nu, kp_t, v_t):
    return mu + v_t.unsqueeze(-1) * kp_t.unsqueeze(-2), nu + kp_t


@wrong("state_update", "raised")
def state_update_outer(mu, nu, kp_t, v_t):
    return mu + torch.outer(kp_t, v_t), nu + kp_t  # torch.outer takes 1-D vectors only: no batch dimensions


# ---------------------------------------------------------------- state_readout


@wrong("state_readout", "not normalized")
def state_readout_no_denominator(qp_t, mu, nu=None, eps=0.0):
    return (qp_t.unsqueeze(-2) @ mu).squeeze(-2)


@wrong("state_readout", "transposed")
def state_readout_mu_transposed(qp_t, mu, nu=None, eps=0.0):
    out = (mu @ qp_t.unsqueeze(-1)).squeeze(-1)
    return out if nu is None else out / (qp_t * nu).sum(-1, keepdim=True)


@wrong("state_readout", "raised")
def state_readout_ignores_none(qp_t, mu, nu=None, eps=0.0):
    return (qp_t.unsqueeze(-2) @ mu).squeeze(-2) / (qp_t * nu).sum(-1, keepdim=True)


@wrong("state_readout", "wrong shape")
def state_readout_keeps_row(qp_t, mu, nu=None, eps=0.0):
    out = qp_t.unsqueeze(-2) @ mu  # [..., 1, d_v]
    return out if nu is None else out / (qp_t * nu).sum(-1, keepdim=True).unsqueeze(-1)


# ---------------------------------------------------------------- linear_attention_recurrent


def _prep(q, k, feature_map, scale):
    scale = default_scale(q, scale)
    phi = feature_map or (lambda x: x)
    return phi(q) * scale, phi(k)


@wrong("linear_attention_recurrent", "not normalized")
def recurrent_no_denominator(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _prep(q, k, feature_map, scale)
    mu = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    out = []
    for t in range(q.shape[-2]):
        mu = mu + kp[..., t, :, None] * v[..., t, None, :]
        out.append((qp[..., t, None, :] @ mu).squeeze(-2))
    return torch.stack(out, -2)


@wrong("linear_attention_recurrent", "the state is read before it is updated")
def recurrent_read_before_update(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _prep(q, k, feature_map, scale)
    mu = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    nu = q.new_zeros(*q.shape[:-1])[..., :1].expand(*q.shape[:-2], q.shape[-1]).clone()
    out = []
    for t in range(q.shape[-2]):
        o = (qp[..., t, None, :] @ mu).squeeze(-2)  # read before the update: misses token t itself
        out.append(o / (qp[..., t, :] * nu).sum(-1, keepdim=True) if normalize else o)
        mu = mu + kp[..., t, :, None] * v[..., t, None, :]
        nu = nu + kp[..., t, :]
    return torch.stack(out, -2)


@wrong("linear_attention_recurrent", "future tokens leak")
def recurrent_final_state(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _prep(q, k, feature_map, scale)
    mu = kp.mT @ v  # the state after the whole sequence, used at every step
    nu = kp.sum(-2)
    out = qp @ mu
    return out / (qp @ nu.unsqueeze(-1)) if normalize else out


@wrong("linear_attention_recurrent", "wrong dtype")
def recurrent_float32_state(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _prep(q, k, feature_map, scale)
    mu = torch.zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])  # float32 whatever the input
    nu = torch.zeros(*q.shape[:-2], q.shape[-1])
    out = []
    for t in range(q.shape[-2]):
        mu = mu + (kp[..., t, :, None] * v[..., t, None, :]).float()
        nu = nu + kp[..., t, :].float()
        o = (qp[..., t, None, :].float() @ mu).squeeze(-2)
        out.append(o / (qp[..., t, :].float() * nu).sum(-1, keepdim=True) if normalize else o)
    return torch.stack(out, -2)


# ---------------------------------------------------------------- states, structure and further diagnoses


@wrong("state_readout", "keepdim=True")
def state_readout_without_keepdim(qp_t, mu, nu=None, eps=0.0):
    out = (qp_t.unsqueeze(-2) @ mu).squeeze(-2)
    return out if nu is None else out / ((qp_t * nu).sum(-1) + eps)  # [...] against [..., d_v]: right for 1-D only


@wrong("state_readout", "eps is ignored")
def state_readout_without_eps(qp_t, mu, nu=None, eps=0.0):
    out = (qp_t.unsqueeze(-2) @ mu).squeeze(-2)
    return out if nu is None else out / (qp_t * nu).sum(-1, keepdim=True)


def _recurrent(q, k, v, feature_map, normalize, scale, eps, initial_state):
    """A right recurrent form (the bank's helper); returns (o, final state)."""
    qp, kp = _prep(q, k, feature_map, scale)
    mu = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    nu = q.new_zeros(*q.shape[:-1])[..., :1].expand(*q.shape[:-2], q.shape[-1]).clone()
    if initial_state is not None:
        mu, nu = initial_state if normalize else (initial_state, nu)
    out = []
    for t in range(q.shape[-2]):
        mu = mu + kp[..., t, :, None] * v[..., t, None, :]
        nu = nu + kp[..., t, :]
        o = (qp[..., t, None, :] @ mu).squeeze(-2)
        out.append(o / ((qp[..., t, :] * nu).sum(-1, keepdim=True) + eps) if normalize else o)
    return torch.stack(out, -2), ((mu, nu) if normalize else mu)


@wrong("linear_attention_recurrent", "initial_state is ignored")
def recurrent_ignores_initial_state(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0,
                                    initial_state=None, output_final_state=False):
    o, state = _recurrent(q, k, v, feature_map, normalize, scale, eps, None)
    return (o, state) if output_final_state else o


@wrong("linear_attention_recurrent", "the final state is not returned")
def recurrent_no_final_state(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0,
                             initial_state=None, output_final_state=False):
    return _recurrent(q, k, v, feature_map, normalize, scale, eps, initial_state)[0]


@wrong("linear_attention_recurrent", "does not work token by token")
def recurrent_parallel_form(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0,
                            initial_state=None, output_final_state=False):
    qp, kp = _prep(q, k, feature_map, scale)
    mu = (kp.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(-3)  # every state at once: right values, not token by token
    nu = kp.cumsum(-2)
    if initial_state is not None:
        mu0, nu0 = initial_state if normalize else (initial_state, 0.0)
        mu, nu = mu + mu0.unsqueeze(-3), nu + (nu0.unsqueeze(-2) if torch.is_tensor(nu0) else nu0)
    o = (qp.unsqueeze(-2) @ mu).squeeze(-2)
    if normalize:
        o = o / ((qp * nu).sum(-1, keepdim=True) + eps)
    if output_final_state:
        return o, ((mu[..., -1, :, :], nu[..., -1, :]) if normalize else mu[..., -1, :, :])
    return o


@wrong("linear_attention_recurrent", "update the state with k_t, v_t before reading it")
def recurrent_denominator_before_update(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _prep(q, k, feature_map, scale)
    mu = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    nu = q.new_zeros(*q.shape[:-2], q.shape[-1])
    out = []
    for t in range(q.shape[-2]):
        mu = mu + kp[..., t, :, None] * v[..., t, None, :]
        o = (qp[..., t, None, :] @ mu).squeeze(-2)
        out.append(o / (qp[..., t, :] * nu).sum(-1, keepdim=True) if normalize else o)  # nu not yet updated
        nu = nu + kp[..., t, :]
    return torch.stack(out, -2)


@wrong("linear_attention_recurrent", "Only the outputs at query 4 differ; the other 4 are right")
def recurrent_state_reset_every_4(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _prep(q, k, feature_map, scale)
    out = []
    for t in range(q.shape[-2]):
        if t % 4 == 0:  # the state is started afresh every 4 tokens, as if each block were a new sequence
            mu = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
            nu = q.new_zeros(*q.shape[:-2], q.shape[-1])
        mu = mu + kp[..., t, :, None] * v[..., t, None, :]
        nu = nu + kp[..., t, :]
        o = (qp[..., t, None, :] @ mu).squeeze(-2)
        out.append(o / ((qp[..., t, :] * nu).sum(-1, keepdim=True) + eps) if normalize else o)
    return torch.stack(out, -2)
