"""Wrong answers to notebook 03: feature maps and kernelized linear attention."""
import torch
import torch.nn.functional as F

from . import wrong

# ---------------------------------------------------------------- elu_plus_one


@wrong("elu_plus_one", "forgot the + 1")
def elu_without_one(x):
    return F.elu(x)


@wrong("elu_plus_one", "relu(x) + 1 is not elu(x) + 1")
def elu_as_relu(x):
    return torch.relu(x) + 1


@wrong("elu_plus_one", "x + 1 is elu(x) + 1 only for x >= 0")
def elu_shift_only(x):
    return x + 1


@wrong("elu_plus_one", "wrong dtype")
def elu_rebuilt_float32(x):
    out = torch.zeros(x.shape)  # float32 whatever the input
    out[x > 0] = x[x > 0].float() + 1
    out[x <= 0] = x[x <= 0].float().exp()
    return out


@wrong("elu_plus_one", "changed its input")
def elu_in_place(x):
    return F.elu_(x).add_(1)


# ---------------------------------------------------------------- linear_attention_noncausal


def _phis(q, k, feature_map, scale):
    phi = feature_map or (lambda x: x)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return phi(q) * scale, phi(k)


@wrong("linear_attention_noncausal", "not normalized")
def noncausal_no_denominator(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    return qp @ (kp.mT @ v)


@wrong("linear_attention_noncausal", "a causal mask is applied")
def noncausal_masked(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    A = (qp @ kp.mT).tril()
    out = A @ v
    return out / A.sum(-1, keepdim=True) if normalize else out


@wrong("linear_attention_noncausal", "feature map is not applied")
def noncausal_raw_qk(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, None, scale)
    out = qp @ (kp.mT @ v)
    return out / (qp @ kp.sum(-2, keepdim=True).mT) if normalize else out


@wrong("linear_attention_noncausal", "wrong way round")
def noncausal_outer_wrong_way(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    out = qp @ (v.mT @ kp)  # [d_v, d_k] instead of [d_k, d_v]: runs only when d_k == d_v
    return out / (qp @ kp.sum(-2, keepdim=True).mT) if normalize else out


# ---------------------------------------------------------------- linear_attention_parallel


@wrong("linear_attention_parallel", "not normalized")
def linear_parallel_no_denominator(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    return (qp @ kp.mT).tril() @ v


@wrong("linear_attention_parallel", "future tokens leak")
def linear_parallel_no_mask(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    A = qp @ kp.mT
    out = A @ v
    return out / A.sum(-1, keepdim=True) if normalize else out


@wrong("linear_attention_parallel", "upper triangle")
def linear_parallel_triu(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    A = (qp @ kp.mT).triu()
    out = A @ v
    return out / A.sum(-1, keepdim=True) if normalize else out


@wrong("linear_attention_parallel", "missing the scale")
def linear_parallel_unscaled(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = feature_map(q), feature_map(k)
    A = (qp @ kp.mT).tril()
    out = A @ v
    return out / A.sum(-1, keepdim=True) if normalize else out


@wrong("linear_attention_parallel", "NaN")
def linear_parallel_strict(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    A = (qp @ kp.mT).tril(-1)
    out = A @ v
    return out / A.sum(-1, keepdim=True) if normalize else out


@wrong("linear_attention_parallel", "wrong dtype")
def linear_parallel_float32_buffer(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    out = torch.zeros(*q.shape[:-1], v.shape[-1])  # float32, whatever the inputs
    for i in range(q.shape[-2]):
        w = qp[..., i, None, :] @ kp[..., : i + 1, :].mT  # [..., 1, i + 1]
        o = (w @ v[..., : i + 1, :]).squeeze(-2)
        out[..., i, :] = o / w.sum(-1) if normalize else o
    return out
