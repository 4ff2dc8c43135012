"""The exercises of notebook 04: the state variables mu and nu and the recurrent form."""
import torch

import linattn_ref as ref
from linattn_ref import linear_attention, memory

from ..exercise import (
    ATTN_SEQ,
    F32,
    F64,
    LINEAR_FORMS,
    Case,
    Mistake,
    call,
    exercise,
    qkv,
    randn,
    scale_factors,
    strided,
)
from ..shared import (
    linear_attention_cases,
    linear_attention_mistakes,
    linear_attention_state_hidden,
)
from ..structure import calls_grow_with_length

NOTEBOOK = "04_state_variables"


def _sv_cases(gen):
    # the seeds' worked example: k'_0 = [1, 0], v_0 = [3, 4], k'_1 = [0, 2], v_1 = [5, 6], k'_2 = [1, 1], v_2 = [7, 8]
    # would give the answer to a numeric question away; this one has the same shape and different numbers.
    kp = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]], dtype=F64)
    v = torch.tensor([[1.0, 2.0], [0.0, 1.0], [2.0, 2.0]], dtype=F64)
    return [Case({"kp": kp, "v": v}, note="hand-checkable"),
            Case({"kp": ref.elu_plus_one(randn(gen, 5, 3)), "v": randn(gen, 5, 4)}),
            Case({"kp": strided(randn(gen, 2, 3, 6, 4, dtype=F32).exp()),
                  "v": strided(randn(gen, 2, 3, 6, 5, dtype=F32))}, note="leading batch and head dims")]


def _sv_hidden(gen):
    return [Case({"kp": randn(gen, 1, 3).exp(), "v": randn(gen, 1, 2)}),
            Case({"kp": randn(gen, 2, 3, 6, 4, dtype=F32).exp(), "v": randn(gen, 2, 3, 6, 5, dtype=F32)}),
            Case({"kp": strided(randn(gen, 5, 3).exp()), "v": strided(randn(gen, 5, 3))})]


def _sv_mistakes():
    def per_step(c):
        kp, v = c.inputs["kp"], c.inputs["v"]
        return kp.unsqueeze(-1) * v.unsqueeze(-2), kp

    def exclusive(c):
        mu, nu = ref.state_variables(**c.inputs)
        return mu - c.inputs["kp"].unsqueeze(-1) * c.inputs["v"].unsqueeze(-2), nu - c.inputs["kp"]

    return (
        Mistake("the outer product is the wrong way round: mu_i sums k'_j^T v_j, a [d_k, d_v] matrix, not v_j^T k'_j",
                lambda c: tuple(s.mT if n == 0 else s for n, s in enumerate(ref.state_variables(**c.inputs)))),
        Mistake("not accumulated: mu_i and nu_i are sums over every j <= i (a cumulative sum over positions)",
                per_step),
        Mistake("off-by-one: mu_i must include j = i (sum over j <= i, not j < i)", exclusive),
        Mistake("the outputs are in the wrong order: return (mu, nu)", lambda c: ref.state_variables(**c.inputs)[::-1]),
    )


def _su_cases(gen):
    mu = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)
    nu = torch.tensor([1.0, 1.0], dtype=F64)
    return [Case({"mu": mu, "nu": nu, "kp_t": torch.tensor([2.0, 1.0], dtype=F64),
                  "v_t": torch.tensor([1.0, 3.0], dtype=F64)}, note="hand-checkable"),
            Case({"mu": randn(gen, 3, 4), "nu": randn(gen, 3).exp(), "kp_t": randn(gen, 3).exp(),
                  "v_t": randn(gen, 4)}),
            Case({"mu": strided(randn(gen, 2, 3, 4, 5, dtype=F32)), "nu": randn(gen, 2, 3, 4, dtype=F32).exp(),
                  "kp_t": randn(gen, 2, 3, 4, dtype=F32).exp(), "v_t": randn(gen, 2, 3, 5, dtype=F32)},
                 note="leading batch and head dims")]


def _su_hidden(gen):
    return [Case({"mu": randn(gen, 2, 3, 4, 5, dtype=F32), "nu": randn(gen, 2, 3, 4, dtype=F32),
                  "kp_t": randn(gen, 2, 3, 4, dtype=F32), "v_t": randn(gen, 2, 3, 5, dtype=F32)}),
            Case({"mu": strided(randn(gen, 3, 3)), "nu": randn(gen, 3), "kp_t": randn(gen, 3), "v_t": randn(gen, 3)})]


def _su_mistakes():
    def fresh(c):
        kp, v = c.inputs["kp_t"], c.inputs["v_t"]
        return kp.unsqueeze(-1) * v.unsqueeze(-2), kp

    def wrong_way(c):
        mu, nu = ref.state_update(**c.inputs)
        outer = c.inputs["kp_t"].unsqueeze(-1) * c.inputs["v_t"].unsqueeze(-2)
        return c.inputs["mu"] + outer.mT, nu

    return (
        Mistake("the previous state is dropped: mu_t = mu_{t-1} + k'_t^T v_t adds to the old state", fresh),
        Mistake("the outer product is the wrong way round: k'_t^T v_t is [d_k, d_v] (kp_t as a column times v_t)",
                wrong_way),
        Mistake("the outputs are in the wrong order: return (mu, nu)", lambda c: ref.state_update(**c.inputs)[::-1]),
    )


def _sr_cases(gen):
    mu = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)
    return [Case({"qp_t": torch.tensor([1.0, 2.0], dtype=F64), "mu": mu, "nu": torch.tensor([2.0, 1.0], dtype=F64)},
                 note="hand-checkable"),
            Case({"qp_t": randn(gen, 3).exp(), "mu": randn(gen, 3, 4), "nu": randn(gen, 3).exp()}),
            Case({"qp_t": randn(gen, 3).exp(), "mu": randn(gen, 3, 4), "nu": None}, note="no normalization"),
            # leading batch and head dims: a denominator summed without keepdim no longer lines up with the output
            Case({"qp_t": randn(gen, 2, 3, 4, dtype=F32).exp(), "mu": strided(randn(gen, 2, 3, 4, 5, dtype=F32)),
                  "nu": randn(gen, 2, 3, 4, dtype=F32).exp()}, {"eps": 0.5}, "leading dims, eps")]


def _sr_hidden(gen):
    return [Case({"qp_t": randn(gen, 2, 3, 4, dtype=F32).exp(), "mu": randn(gen, 2, 3, 4, 5, dtype=F32),
                  "nu": randn(gen, 2, 3, 4, dtype=F32).exp()}),
            Case({"qp_t": randn(gen, 3).exp(), "mu": strided(randn(gen, 3, 3)), "nu": randn(gen, 3).exp()}),
            Case({"qp_t": randn(gen, 2, 4).exp(), "mu": randn(gen, 2, 4, 2), "nu": None})]


def _sr_mistakes():
    readout = linear_attention.state_readout
    return (
        Mistake("not normalized: divide q'_t mu_t by the denominator q'_t . nu_t",
                lambda c: None if c.inputs["nu"] is None else call(readout, c, nu=None)),
        Mistake("eps is ignored: the denominator is q'_t . nu_t + eps",
                lambda c: call(readout, c, eps=0.0) if c.options.get("eps") and c.inputs["nu"] is not None
                else None),
        Mistake("mu is used transposed: the output is q'_t mu_t, a [d_k] row times a [d_k, d_v] matrix",
                lambda c: call(readout, c, mu=c.inputs["mu"].mT)),
    )


def _recurrent_cases(gen):
    """The shared cases of the linear attention forms, and a saved state passed in and returned (both forms)."""
    out = linear_attention_cases(gen)
    for normalize in (True, False):
        mu, nu = (s[..., -1, :, :] if s.ndim == 4 else s[..., -1, :]
                  for s in ref.state_variables(ref.elu_plus_one(randn(gen, 2, 3, 3)), randn(gen, 2, 3, 4)))
        options = {"feature_map": ref.elu_plus_one, "normalize": normalize,
                   "initial_state": (mu, nu) if normalize else mu}
        out.append(Case(qkv(gen, (2,), 5, 3, 4), {**options, "output_final_state": True}, "a saved state in and out"))
        out.append(Case(qkv(gen, (2,), 4, 3, 4), options, "starting from a saved state"))
    return out


def _state_mistakes(fn):
    """The saved state: initial_state ignored, the final state not returned, the state read before its update."""
    def read_before_update(case):
        phi = case.options.get("feature_map", ref.elu_plus_one) or ref.identity
        scale = case.options.get("scale") or case.inputs["q"].shape[-1] ** -0.5
        qp, kp, v = phi(case.inputs["q"]) * scale, phi(case.inputs["k"]), case.inputs["v"]
        mu, nu = ref.state_variables(kp, v)
        mu, nu = mu - kp.unsqueeze(-1) * v.unsqueeze(-2), nu - kp  # the sums over j < t
        start = case.options.get("initial_state")
        if start is not None:
            mu0, nu0 = start if case.options.get("normalize", True) else (start, 0)
            mu, nu = mu + mu0.unsqueeze(-3), nu + (nu0.unsqueeze(-2) if torch.is_tensor(nu0) else nu0)
        out = (qp.unsqueeze(-2) @ mu).squeeze(-2)
        if case.options.get("normalize", True):
            out = out / ((qp * nu).sum(-1, keepdim=True) + case.options.get("eps", 0.0))
        return out

    return (
        Mistake("initial_state is ignored: the state must start from it (mu, nu = initial_state), not from zeros",
                lambda c: call(fn, c, initial_state=None) if c.options.get("initial_state") is not None else None),
        Mistake("the final state is not returned: with output_final_state=True return (o, final_state)",
                lambda c: call(fn, c, output_final_state=False) if c.options.get("output_final_state") else None),
        Mistake("the state is read before it is updated: the output at position t must include token t itself"
                " (update (mu, nu) with k'_t and v_t first, then read)", read_before_update),
    )


TOKEN_BY_TOKEN = calls_grow_with_length(
    "one token at a time, t = 0 .. T-1, updating the state (state_update) and reading it (state_readout)")

EXERCISES = [
    exercise(linear_attention.state_variables, _sv_cases, _sv_hidden, points=2, causal=True,
             seq_inputs={"kp": -2, "v": -2}, time_dims=(-3, -2), time_word="position", output_names=("mu", "nu"),
             mistakes=_sv_mistakes(),
             answers=(linear_attention.state_variables, linear_attention.state_update, memory.RunningSum.update)),
    exercise(linear_attention.state_update, _su_cases, _su_hidden, points=1, time_dims=None, output_names=("mu", "nu"),
             mistakes=_su_mistakes(),
             answers=(linear_attention.state_update, linear_attention.state_variables, memory.RunningSum.update)),
    exercise(linear_attention.state_readout, _sr_cases, _sr_hidden, points=1, time_dims=None, mistakes=_sr_mistakes(),
             answers=(linear_attention.state_readout, memory.RunningSum.read)),
    # the recurrent form may build on state_update / state_readout, the learner's or the reference's
    exercise(linear_attention.linear_attention_recurrent, _recurrent_cases,
             linear_attention_state_hidden(linear_attention.linear_attention_recurrent), points=3, causal=True,
             seq_inputs=ATTN_SEQ, factors=scale_factors, answers=LINEAR_FORMS, structure=(TOKEN_BY_TOKEN,),
             mistakes=_state_mistakes(linear_attention.linear_attention_recurrent)
             + linear_attention_mistakes(linear_attention.linear_attention_recurrent)),
]
