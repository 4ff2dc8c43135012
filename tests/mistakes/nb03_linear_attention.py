"""Wrong answers to notebook 03: feature maps and kernelized linear attention."""
import torch
import torch.nn.functional as F

from . import default_scale, wrong

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
    scale = default_scale(q, scale)
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


# ---------------------------------------------------------------- structure and further diagnoses


@wrong("linear_attention_noncausal", "never form a T x T matrix")
def noncausal_square_matrix(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    A = qp @ kp.mT  # right values, but the T x T matrix the form exists to avoid
    out = A @ v
    return out / (A.sum(-1, keepdim=True) + eps) if normalize else out


@wrong("linear_attention_noncausal", "plain average")
def noncausal_mean(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    out = qp @ (kp.mT @ v)
    return out / q.shape[-2] if normalize else out


@wrong("linear_attention_noncausal", "eps is ignored")
def noncausal_without_eps(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    out = qp @ (kp.mT @ v)
    return out / (qp @ kp.sum(-2, keepdim=True).mT) if normalize else out


@wrong("linear_attention_noncausal", "'NoneType' object is not callable")
def noncausal_feature_map_required(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    scale = default_scale(q, scale)
    qp, kp = feature_map(q) * scale, feature_map(k)  # feature_map=None means no feature map
    out = qp @ (kp.mT @ v)
    return out / (qp @ kp.sum(-2, keepdim=True).mT + eps) if normalize else out


@wrong("linear_attention_parallel", "A value filled in as -inf is right before a softmax")
def linear_parallel_neg_inf(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    T = q.shape[-2]
    A = (qp @ kp.mT).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))  # as for softmax
    out = A @ v
    return out / (A.sum(-1, keepdim=True) + eps) if normalize else out


@wrong("linear_attention_parallel", "inside the feature map")
def linear_parallel_phi_of_scaled_q(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    scale = default_scale(q, scale)
    qp, kp = feature_map(q * scale), feature_map(k)
    A = (qp @ kp.mT).tril()
    out = A @ v
    return out / (A.sum(-1, keepdim=True) + eps) if normalize else out


@wrong("linear_attention_parallel", "swapped (K' Q'^T)")
def linear_parallel_keys_times_queries(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    A = (kp @ qp.mT).tril()
    out = A @ v
    return out / (A.sum(-1, keepdim=True) + eps) if normalize else out


@wrong("linear_attention_parallel", "each row of the result is the expected row times a factor of its own")
def linear_parallel_denominator_plus_one(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    A = (qp @ kp.mT).tril()
    out = A @ v
    return out / (A.sum(-1, keepdim=True) + 1.0) if normalize else out  # + 1 where the formula has + eps


@wrong("linear_attention_parallel", "plain average")
def linear_parallel_mean(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
    qp, kp = _phis(q, k, feature_map, scale)
    out = (qp @ kp.mT).tril() @ v
    count = torch.arange(1, q.shape[-2] + 1, dtype=q.dtype).unsqueeze(-1)  # the number of keys j <= i
    return out / count if normalize else out
