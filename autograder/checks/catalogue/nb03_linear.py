"""The exercises of notebook 03: feature maps and kernelized linear attention."""
import torch
import torch.nn.functional as F

import linattn_ref as ref
from linattn_ref import linear_attention

from ..cases import (
    ATTN_SEQ,
    F32,
    F64,
    LINEAR_FORMS,
    Case,
    Mistake,
    anti_causal,
    call,
    exercise,
    qkv,
    randn,
    scale_factors,
    scale_of,
    small_qkv,
    strided,
)
from ..structure import no_square_matrix


def _elu_cases(gen):
    return [Case({"x": torch.tensor([[-2.0, -0.5, 0.0], [0.5, 1.0, 3.0]], dtype=F64)}, note="hand-checkable"),
            Case({"x": randn(gen, 5, 4, dtype=F32)}),
            Case({"x": strided(randn(gen, 2, 3, 4, 5) * 10)}, note="large values, any shape")]


def _elu_hidden(gen):
    return [Case({"x": randn(gen, 2, 3, 4, 5)}), Case({"x": strided(randn(gen, 6, 3, dtype=F32))}),
            Case({"x": torch.tensor([-30.0, -1e-3, 1e-3, 30.0], dtype=F64)})]


def _elu_mistakes():
    return (
        Mistake("forgot the + 1: elu(x) is negative for x < 0, phi must be positive", lambda c: F.elu(c.inputs["x"])),
        Mistake("relu(x) + 1 is not elu(x) + 1: below 0, elu(x) = exp(x) - 1", lambda c: torch.relu(c.inputs["x"]) + 1),
        Mistake("exp(x) is a different feature map; phi(x) = elu(x) + 1", lambda c: c.inputs["x"].exp()),
        Mistake("x + 1 is elu(x) + 1 only for x >= 0; below 0, elu(x) = exp(x) - 1", lambda c: c.inputs["x"] + 1),
    )


def _la_cases(gen):
    s = small_qkv()
    # every promise of the docstring: leading batch and head dims, d_k != d_v, eps, a given scale,
    # feature_map=None (no feature map), float32 and a non-contiguous layout
    return [Case(s, {"feature_map": ref.elu_plus_one, "normalize": True}, "hand-checkable"),
            Case(qkv(gen, (), 5, 4, 3), {"feature_map": ref.elu_plus_one, "normalize": True}),
            Case(qkv(gen, (2,), 6, 3, 3, dtype=F32), {"feature_map": ref.elu_plus_one, "normalize": False}),
            Case(qkv(gen, (2, 3), 7, 4, 5, contiguous=False), {"feature_map": ref.elu_plus_one, "normalize": True,
                                                               "eps": 0.5}),
            Case(qkv(gen, (), 6, 3, 4), {"feature_map": None, "normalize": False, "scale": 0.3})]


def _la_hidden(gen):
    return [Case(qkv(gen, (), 1, 4, 3), {"feature_map": ref.elu_plus_one, "normalize": True}),
            Case(qkv(gen, (2, 3), 7, 4, 5), {"feature_map": ref.elu_plus_one, "normalize": False, "scale": 0.3}),
            Case(qkv(gen, (2, 2), 6, 3, 4, dtype=F32, contiguous=False),
                 {"feature_map": ref.elu_plus_one, "normalize": True}),
            Case(qkv(gen, (), 9, 4, 4), {"feature_map": ref.elu_plus_one, "normalize": False})]


def _la_state_hidden(fn):
    """Hidden cases starting from a state and returning the final one (run if the learner's function takes them)."""
    def cases(gen):
        out = _la_hidden(gen)
        for normalize in (True, False):
            x = qkv(gen, (2,), 7, 3, 4)
            mu, nu = (s[..., -1, :, :] if s.ndim == 4 else s[..., -1, :]
                      for s in ref.state_variables(ref.elu_plus_one(randn(gen, 2, 4, 3)), randn(gen, 2, 4, 4)))
            state = (mu, nu) if normalize else mu
            options = {"feature_map": ref.elu_plus_one, "normalize": normalize, "initial_state": state,
                       "output_final_state": True}
            out.append(Case(x, options if fn is not linear_attention.linear_attention_chunk
                            else {**options, "chunk_size": 3}))
        return out
    return cases


def _outer_wrong_way(case):
    """q' (v^T k') instead of q' (k'^T v) in the non-causal form (needs d_k == d_v)."""
    phi = case.options.get("feature_map", ref.elu_plus_one)
    qp, kp, v = phi(case.inputs["q"]) * scale_of(case), phi(case.inputs["k"]), case.inputs["v"]
    out = qp @ (v.mT @ kp)
    if case.options.get("normalize", True):
        out = out / (qp @ kp.sum(-2).unsqueeze(-1))
    return out


def _phi_of_scaled_q(fn):
    """phi(q * scale) instead of phi(q) * scale: the scale goes inside the (non-linear) feature map."""
    def make(case):
        if case.options.get("feature_map", ref.elu_plus_one) is None:
            return None
        return call(fn, case, q=case.inputs["q"] * scale_of(case), scale=1.0)
    return make


def _mean_denominator(fn, causal):
    """The numerator divided by the number of keys (a plain average) instead of the sum of the weights."""
    def make(case):
        if not case.options.get("normalize", True):
            return None
        out = call(fn, case, normalize=False)
        T = out.shape[-2]
        count = torch.arange(1, T + 1, dtype=out.dtype).unsqueeze(-1) if causal else T
        return out / count
    return make


def _keys_times_queries(case):
    """The causal form with K' Q'^T: weight [i, j] is k'_i . q'_j."""
    phi = case.options.get("feature_map", ref.elu_plus_one) or ref.identity
    qp, kp, v = phi(case.inputs["q"]) * scale_of(case), phi(case.inputs["k"]), case.inputs["v"]
    A = (kp @ qp.mT).tril()
    out = A @ v
    if case.options.get("normalize", True):
        out = out / (A.sum(-1, keepdim=True) + case.options.get("eps", 0.0))
    return out


def _la_mistakes(fn, causal=True):
    common = (
        Mistake("the scale is applied inside the feature map, phi(q * scale); the scale multiplies the mapped"
                " query: q' = phi(q) * scale", _phi_of_scaled_q(fn)),
        Mistake("the denominator is the number of keys (a plain average); normalize by the sum of the weights,"
                " q'_i . nu_i", _mean_denominator(fn, causal)),
        Mistake("eps is ignored: the denominator is q'_i . nu_i + eps",
                lambda c: call(fn, c, eps=0.0) if c.options.get("eps") and c.options.get("normalize", True)
                else None),
        Mistake("not normalized: the denominator q'_i . nu_i (the sum of the weights) is missing",
                lambda c: call(fn, c, normalize=False) if c.options.get("normalize", True) else None),
        Mistake("normalized although normalize=False: then the output is the numerator q'_i mu_i alone",
                lambda c: None if c.options.get("normalize", True) else call(fn, c, normalize=True)),
        Mistake("the feature map is not applied: use q' = phi(q) and k' = phi(k) with the feature_map argument",
                lambda c: call(fn, c, feature_map=ref.identity)),
    )
    if not causal:
        return common + (
            Mistake("a causal mask is applied: this form lets every query see every key",
                    lambda c: call(linear_attention.linear_attention_parallel, c)),
            Mistake("the outer product is the wrong way round: k'^T V is [d_k, d_v], not V^T k'", _outer_wrong_way),
        )
    return common + (
        Mistake("future tokens leak: every query sees every key; mask the weights where j > i",
                lambda c: linear_attention.linear_attention_noncausal(**c.inputs, **{
                    k: v for k, v in c.options.items() if k in ("feature_map", "normalize", "scale")})),
        Mistake("upper triangle: each query sees itself and the future instead of the past",
                anti_causal(fn, ATTN_SEQ)),
        Mistake("q and k are swapped (K' Q'^T): weight [i, j] must be q'_i . k'_j, query i against key j",
                _keys_times_queries),
    )


EXERCISES = [
    exercise(ref.elu_plus_one, _elu_cases, _elu_hidden, points=1, time_dims=None, mistakes=_elu_mistakes(),
             answers=(ref.elu_plus_one,)),
    exercise(linear_attention.linear_attention_noncausal, _la_cases, _la_hidden, points=2, factors=scale_factors,
             mistakes=_la_mistakes(linear_attention.linear_attention_noncausal, causal=False), answers=LINEAR_FORMS,
             structure=(no_square_matrix(why="the point of this form is to sum k'^T v first, a d_k x d_v matrix,"
                                             " so the cost grows like T, not T^2: never form a T x T matrix"),)),
    exercise(linear_attention.linear_attention_parallel, _la_cases, _la_hidden, points=2, causal=True,
             seq_inputs=ATTN_SEQ, factors=scale_factors, answers=LINEAR_FORMS,
             mistakes=_la_mistakes(linear_attention.linear_attention_parallel)),
]
