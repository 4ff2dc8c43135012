"""The exercises of notebook 08: the chunkwise parallel form."""
import torch

import linattn_ref as ref
from linattn_ref import chunk, gla, linear_attention, retnet

from ..exercise import (
    ATTN_SEQ,
    F32,
    F64,
    GLA_SEQ,
    LINEAR_FORMS,
    Case,
    Mistake,
    anti_causal,
    call,
    chunk_local,
    exercise,
    log_gates,
    qkv,
    randn,
    scale_factors,
    scale_of,
    small_qkv,
    strided,
    undecayed_carry,
    with_gates,
)
from ..shared import (
    EXP_BEFORE_MASK,
    SWAPPED,
    exp_then_mask,
    gla_as_core,
    gla_mistakes,
    gla_state_hidden,
    linear_attention_mistakes,
    linear_attention_state_hidden,
    retention_as_core,
    retention_factors,
    retention_mistakes,
    retention_state_hidden,
    retention_via_core,
    state_mistakes,
    swapped_qk,
)
from ..structure import Rule, no_square_matrix, seq_len

NOTEBOOK = "08_chunkwise"


def _ics_cases(gen):
    s = small_qkv()
    b = torch.tensor([[-0.5], [-1.0], [-2.0]], dtype=F64)
    return [Case({"q": s["q"], "k": s["k"], "b": None}, note="no decay, hand-checkable"),
            Case({"q": s["q"], "k": s["k"], "b": b}, note="scalar decay, hand-checkable"),
            Case({"q": strided(randn(gen, 4, 3)), "k": strided(randn(gen, 4, 3)), "b": log_gates(gen, 4, 3).cumsum(0)},
                 note="per-dimension gates, q and k non-contiguous"),
            Case({"q": randn(gen, 2, 32, 3, dtype=F32), "k": randn(gen, 2, 32, 3, dtype=F32),
                  "b": torch.full((2, 32, 3), -3.0).cumsum(-2)},
                 note="strong gates in float32: b falls to -96, exp(-b) and exp(b_i - b_j) for j > i overflow")]


def _ics_hidden(gen):
    return [Case({"q": randn(gen, 1, 3), "k": randn(gen, 1, 3), "b": log_gates(gen, 1, 3).cumsum(0)}),
            Case({"q": randn(gen, 2, 3, 5, 4, dtype=F32), "k": randn(gen, 2, 3, 5, 4, dtype=F32),
                  "b": log_gates(gen, 2, 3, 5, 1, dtype=F32).cumsum(-2)}),
            Case({"q": strided(randn(gen, 6, 4)), "k": strided(randn(gen, 6, 4)),
                  "b": log_gates(gen, 6, 4).cumsum(0)})]


def _ics_mistakes():
    ics = chunk.intra_chunk_scores

    def unmasked(c):
        q, k, b = c.inputs["q"], c.inputs["k"], c.inputs["b"]
        if b is None:
            return q @ k.mT
        return torch.einsum("...ic,...jc,...ijc->...ij", q, k, (b.unsqueeze(-2) - b.unsqueeze(-3)).exp())

    def factored(c, multiply):
        q, k, b = c.inputs["q"], c.inputs["k"], c.inputs["b"]
        if b is None:
            return None
        A = (q * b.exp()) @ (k * (-b).exp()).mT
        lower = torch.ones(A.shape[-1], A.shape[-1], dtype=torch.bool).tril()
        return A * lower if multiply else A.masked_fill(~lower, 0.0)

    return (
        Mistake(SWAPPED, lambda c: call(ics, c, q=c.inputs["k"], k=c.inputs["q"])),
        Mistake(EXP_BEFORE_MASK, lambda c: None if c.inputs["b"] is None else exp_then_mask(**c.inputs)),
        Mistake(FACTORED, lambda c: factored(c, True)),
        Mistake(FACTORED, lambda c: factored(c, False)),
        Mistake("upper triangle: keep the scores with j <= i (the lower triangle) and zero the rest",
                anti_causal(ics, {"q": -2, "k": -2, "b": -2}, (-2, -1))),
        Mistake("the exponent's sign is flipped: the decay from j to i is exp(b_i - b_j) <= 1",
                lambda c: None if c.inputs["b"] is None else call(ics, c, b=-c.inputs["b"])),
        Mistake("future tokens leak: the scores with j > i must be 0", unmasked),
        Mistake("off-by-one mask: the diagonal is zeroed too (j < i instead of j <= i)",
                lambda c: call(ics, c).tril(-1)),
    )


FACTORED = ("q_i exp(b_i) times k_j exp(-b_j) is notebook 07's naive form: under strong gates exp(-b_j) overflows"
            " float32 (b below -88.7) and inf * 0 gives NaN. Use the differences exp(b_i - b_j), masked for j > i"
            " before exp")


def _exp_before_mask(gated_inputs, fn):
    """The right output, with NaN in every row whose intra-chunk scores took exp before a 0/1 mask (inf * 0)."""
    def make(case):
        q, k, v, g, scale = gated_inputs(case)
        if g is None or case.options.get("output_final_state"):
            return None
        T, C = q.shape[-2], case.options["chunk_size"]
        broken = torch.cat([exp_then_mask(q[..., s:e, :], k[..., s:e, :], g[..., s:e, :].cumsum(-2)).isnan().any(-1)
                            for s, e in chunk.chunk_boundaries(T, C)], dim=-1)
        if not broken.any():
            return None
        return fn(**case.inputs, **case.options).masked_fill(broken.unsqueeze(-1), float("nan"))
    return make


def _chunk_extra(gen, fn):
    """Visible cases beyond the three chunk layouts: a saved state in and out, strong float32 gates, per-head gamma,
    eps and feature_map=None, where the exercise promises them."""
    state = {"initial_state": randn(gen, 2, 3, 4), "output_final_state": True, "chunk_size": 3}
    note = "strong gates in float32: inside a chunk of 32 the log-decay falls to -93, beyond exp's float32 range"
    if fn is chunk.chunk_gated_linear_attention:
        return [Case(with_gates(gen, qkv(gen, (2,), 7, 3, 4)), {"scale": 0.5, **state}, "from a saved state"),
                Case({**qkv(gen, (), 40, 3, 2, dtype=F32), "g": torch.full((40, 3), -3.0)},
                     {"scale": 0.5, "chunk_size": 32}, note)]
    if fn is gla.gla_chunk:
        return [Case(with_gates(gen, qkv(gen, (2,), 7, 3, 4)), state, "from a saved state"),
                Case({**qkv(gen, (), 40, 3, 2, dtype=F32), "g": torch.full((40, 3), -3.0)}, {"chunk_size": 32}, note)]
    if fn is retnet.retention_chunk:
        heads = torch.tensor([0.6, 0.9], dtype=F64)
        return [Case({**qkv(gen, (2, 2), 7, 3, 4), "gamma": heads}, {**state, "initial_state": randn(gen, 2, 2, 3, 4)},
                     "one gamma per head, from a saved state"),
                Case({**qkv(gen, (), 40, 3, 2, dtype=F32), "gamma": 0.05}, {"chunk_size": 32}, note)]
    x = qkv(gen, (2,), 7, 3, 4)
    kp = ref.elu_plus_one(randn(gen, 2, 5, 3))
    mu, nu = kp.mT @ randn(gen, 2, 5, 4), kp.sum(-2)
    base = {"feature_map": ref.elu_plus_one, "chunk_size": 3}
    return [Case(x, {**base, "eps": 0.5}, "eps added to the denominator"),
            Case(x, {**base, "feature_map": None, "normalize": False}, "feature_map=None: no feature map"),
            Case(x, {**base, "normalize": True, "initial_state": (mu, nu), "output_final_state": True},
                 "from a saved state (mu, nu)"),
            Case(x, {**base, "normalize": False, "initial_state": mu, "output_final_state": True},
                 "from a saved state mu, not normalized"),
            Case(qkv(gen, (), 6, 3, 2, dtype=F32), {"feature_map": ref.elu_plus_one, "chunk_size": 4}, "float32")]


def _chunk_cases(gen, fn):
    """Chunked cases: T a multiple of the chunk, T not a multiple, and one chunk longer than T."""
    extra = {
        chunk.chunk_gated_linear_attention: lambda x, n: {**x, "g": [None, log_gates(gen, *x["k"].shape[:-1], 1),
                                                                     log_gates(gen, *x["k"].shape)][n % 3]},
        linear_attention.linear_attention_chunk: lambda x, n: x,
        retnet.retention_chunk: lambda x, n: {**x, "gamma": 0.8},
        gla.gla_chunk: lambda x, n: with_gates(gen, x),
    }[fn]
    options = {
        chunk.chunk_gated_linear_attention: lambda n: {"scale": [1.0, 0.5, 1.0][n % 3]},
        linear_attention.linear_attention_chunk: lambda n: {"feature_map": ref.elu_plus_one,
                                                            "normalize": n % 2 == 0},
        retnet.retention_chunk: lambda n: {},
        gla.gla_chunk: lambda n: {},
    }[fn]
    shapes = [((), 8, 4, 3, 4), ((), 7, 3, 4, 3), ((2,), 5, 4, 4, 8)]
    return [Case(extra(qkv(gen, lead, T, dk, dv, contiguous=n != 1), n), {**options(n), "chunk_size": C},
                 f"T={T}, chunk_size={C}" + ("" if n != 1 else ", non-contiguous"))
            for n, (lead, T, dk, dv, C) in enumerate(shapes)]


def _chunk_visible(fn):
    return lambda gen: _chunk_cases(gen, fn) + _chunk_extra(gen, fn)


def _chunk_hidden(fn):
    def cases(gen):
        out = []
        base = _chunk_cases(gen, fn)
        for n, (lead, T, dk, dv, C, dtype) in enumerate([((), 1, 3, 2, 2, F64), ((2, 3), 11, 4, 5, 4, F32),
                                                         ((2,), 6, 3, 3, 1, F64), ((), 40, 4, 4, 16, F64)]):
            case = base[n % len(base)]
            x = qkv(gen, lead, T, dk, dv, dtype=dtype, contiguous=n != 2)
            inputs = {name: x[name] if name in x else value for name, value in case.inputs.items()}
            if "g" in inputs and inputs["g"] is not None:
                width = 1 if inputs["g"].shape[-1] == 1 else x["k"].shape[-1]  # scalar decay or per-dimension gates
                inputs["g"] = log_gates(gen, *x["k"].shape[:-1], width, dtype=dtype)
            out.append(Case(inputs, {**case.options, "chunk_size": C}, f"T={T}, chunk_size={C}"))
        return out
    return cases


def _chunk_mistakes(fn, seq, gated_inputs=None):
    local = Mistake("the state is not carried across chunks: each chunk starts from the state the previous chunks"
                    " left (the output matches attention restricted to each chunk)", chunk_local(fn, seq))
    if gated_inputs is None:
        return (local,) + state_mistakes(fn)
    return (local, Mistake("the carried state is not decayed inside the chunk: position i reads S_start through"
                           " q_i * exp(b_i), the decay from the chunk's start to i", undecayed_carry(gated_inputs)),
            Mistake(EXP_BEFORE_MASK, _exp_before_mask(gated_inputs, fn))) + state_mistakes(fn)


def _la_chunk_mistakes():
    fn = linear_attention.linear_attention_chunk
    def map_after_scale(c):
        if c.options.get("feature_map") is None:
            return None
        return call(fn, c, q=c.inputs["q"] * scale_of(c), scale=1.0)

    return (Mistake("eps is ignored: the denominator is q'_i . nu_i + eps",
                    lambda c: call(fn, c, eps=0.0) if c.options.get("eps") else None),
            Mistake("the scale goes after the feature map: q' = phi(q) * scale, not phi(q * scale)", map_after_scale))


def _gamma_not_log(case):
    """retention_chunk with gamma itself as the log-gate (exp(gamma) > 1 at every step)."""
    if not isinstance(case.inputs["gamma"], (float, torch.Tensor)):
        return None
    return retention_via_core(case, case.inputs["gamma"])


def _as_core(case):
    i = case.inputs
    return i["q"], i["k"], i["v"], i.get("g"), case.options.get("scale", 1.0)


def _chunk_core_mistakes():
    core = chunk.chunk_gated_linear_attention
    return _chunk_mistakes(core, GLA_SEQ, _as_core) + (
        swapped_qk(core),
        Mistake("the gates are ignored: the state and the scores must decay by exp(g)",
                lambda c: None if c.inputs.get("g") is None else call(core, c, g=None)),
    )


def _chunk_la_hidden(gen):
    out = _chunk_hidden(linear_attention.linear_attention_chunk)(gen)
    return out + [c for c in linear_attention_state_hidden(linear_attention.linear_attention_chunk)(gen)
                  if "initial_state" in c.options]


def _chunk_state_hidden(fn, state_cases):
    def cases(gen):
        return _chunk_hidden(fn)(gen) + [c for c in state_cases(fn)(gen) if "initial_state" in c.options]
    return cases


def _chunk_core_state(fn):
    def cases(gen):
        x = with_gates(gen, qkv(gen, (2,), 7, 3, 4))
        return [Case(x, {"scale": 0.5, "chunk_size": 3, "initial_state": randn(gen, 2, 3, 4),
                         "output_final_state": True})]
    return cases


def _no_full_matrix():
    """The chunked forms never build a T x T matrix: C x C blocks inside the chunks, a d_k x d_v state between."""
    rule = no_square_matrix(why="the chunkwise form needs only a C x C block per chunk (chunk_size C < T here) and"
                                " the d_k x d_v state carried between chunks")

    def verdict(case, obs):
        return rule.verdict(case, obs) if case.options["chunk_size"] < seq_len(case) else None
    return (Rule(verdict),)


def _core_factors(case):
    scale = case.options.get("scale", 1.0)
    return {scale: "the scale is applied twice", 1 / scale: "the scale is missing"}


# ---------------------------------------------------------------- chunk_states


def _states_case(k, v, chunk_size, note=""):
    return Case({"k": k, "v": v}, {"chunk_size": chunk_size}, note)


def _chunk_states_cases(gen):
    ones, values = torch.ones(5, 1, dtype=F64), torch.arange(1.0, 6.0, dtype=F64).unsqueeze(-1)
    x = qkv(gen, (2, 2), 7, 3, 2)
    y = qkv(gen, (3,), 8, 4, 4, dtype=F32, contiguous=False)
    return [_states_case(ones, values, 2, "section 3's worked example: states 0, 3, 10"),
            _states_case(x["k"], x["v"], 3, "leading dims, d_k != d_v, a last chunk of 1"),
            _states_case(y["k"], y["v"], 4, "float32, non-contiguous"),
            _states_case(x["k"], x["v"], 1, "chunks of one token: the recurrent states, before each token"),
            _states_case(x["k"], x["v"], 16, "one chunk longer than T: only the zero state")]


def _chunk_states_hidden(gen):
    a, b = qkv(gen, (), 1, 2, 3), qkv(gen, (2, 3), 10, 4, 5, dtype=F32)
    return [_states_case(a["k"], a["v"], 1), _states_case(b["k"], b["v"], 4), _states_case(b["k"], b["v"], 10)]


def _prefix_states(case):
    """sum_{j < t} k_j^T v_j for t = 0..T: the states before every token."""
    k, v = case.inputs["k"], case.inputs["v"]
    kv = (k.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(-3)
    return torch.cat([torch.zeros_like(kv[..., :1, :, :]), kv], dim=-3)


def _chunk_states_mistakes():
    def after(c):  # the state leaving each chunk
        C, T = c.options["chunk_size"], c.inputs["k"].shape[-2]
        ends = [min(s + C, T) for s in range(0, T, C)]
        return _prefix_states(c)[..., ends, :, :]

    def not_carried(c):  # the previous chunk's own K^T V only
        C, T = c.options["chunk_size"], c.inputs["k"].shape[-2]
        p = _prefix_states(c)
        starts = list(range(0, T, C))
        return torch.stack([p[..., s, :, :] - p[..., max(s - C, 0), :, :] for s in starts], dim=-3)

    return (Mistake("these are the states leaving each chunk: the state carried INTO chunk n sums the tokens before"
                    " it, j < s_n, so the first one is zeros and the chunk's own tokens are not in it", after),
            Mistake("the state is not carried across chunks: S_[n+1] = S_[n] + K_[n]^T V_[n] adds each chunk to"
                    " everything before it, not just the previous chunk's K^T V", not_carried))


EXERCISES = [
    exercise(chunk.intra_chunk_scores, _ics_cases, _ics_hidden, points=2, causal=True,
             seq_inputs={"q": -2, "k": -2, "b": -2}, mistakes=_ics_mistakes(), answers=(chunk.intra_chunk_scores,)),
    exercise(chunk.chunk_gated_linear_attention, _chunk_visible(chunk.chunk_gated_linear_attention),
             _chunk_state_hidden(chunk.chunk_gated_linear_attention, _chunk_core_state), points=3, causal=True,
             seq_inputs=GLA_SEQ, factors=_core_factors, mistakes=_chunk_core_mistakes(), answers=LINEAR_FORMS,
             structure=_no_full_matrix()),
    exercise(linear_attention.linear_attention_chunk, _chunk_visible(linear_attention.linear_attention_chunk),
             _chunk_la_hidden, points=3, causal=True, seq_inputs=ATTN_SEQ, factors=scale_factors,
             mistakes=_chunk_mistakes(linear_attention.linear_attention_chunk, ATTN_SEQ) + _la_chunk_mistakes()
             + linear_attention_mistakes(linear_attention.linear_attention_chunk), answers=LINEAR_FORMS,
             structure=_no_full_matrix()),
    exercise(retnet.retention_chunk, _chunk_visible(retnet.retention_chunk),
             _chunk_state_hidden(retnet.retention_chunk, retention_state_hidden), points=3, causal=True,
             seq_inputs=ATTN_SEQ, factors=retention_factors,
             mistakes=_chunk_mistakes(retnet.retention_chunk, ATTN_SEQ, retention_as_core)
             + (Mistake("the log-gate of retention is log(gamma) at every step; gamma itself was used, so every step"
                        " multiplies by exp(gamma) > 1 instead of gamma < 1", _gamma_not_log),)
             + retention_mistakes(retnet.retention_chunk), answers=LINEAR_FORMS, structure=_no_full_matrix()),
    exercise(gla.gla_chunk, _chunk_visible(gla.gla_chunk), _chunk_state_hidden(gla.gla_chunk, gla_state_hidden),
             points=3, causal=True, seq_inputs=GLA_SEQ, factors=scale_factors,
             mistakes=_chunk_mistakes(gla.gla_chunk, GLA_SEQ, gla_as_core) + gla_mistakes(gla.gla_chunk),
             answers=LINEAR_FORMS, structure=_no_full_matrix()),
    exercise(chunk.chunk_states, _chunk_states_cases, _chunk_states_hidden, points=2, time_dims=None,
             seq_inputs={"k": -2, "v": -2}, mistakes=_chunk_states_mistakes(), answers=LINEAR_FORMS),
]
