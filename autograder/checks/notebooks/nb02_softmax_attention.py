"""The exercises of notebook 02: softmax attention, parallel and recurrent, and the KV cache."""
import torch

import linattn_ref as ref
from linattn_ref import softmax_attention

from ..exercise import (
    ATTN_SEQ,
    F32,
    F64,
    SOFTMAX_FORMS,
    Case,
    Mistake,
    anti_causal,
    call,
    d_k_of,
    exercise,
    qkv,
    randn,
    scale_of,
    small_qkv,
    strided,
)
from ..structure import calls_grow_with_length, no_torch_function

NOTEBOOK = "02_softmax_attention"

# torch's fused attention computes the exercise in one call
NO_TORCH_ATTENTION = no_torch_function(
    ("scaled_dot_product_attention", "multi_head_attention_forward"),
    "it computes the whole attention for you, and the exercise is to write it yourself from the scores, the"
    " mask and the softmax (use it afterwards to compare)")
TOKEN_BY_TOKEN = calls_grow_with_length(
    "one query at a time, t = 0 .. T-1, each attending to the cache of keys and values up to t"
    " (softmax_attention_step); the parallel form over the whole T x T score matrix is the previous exercise")


def _attn_cases(gen, T=5):
    return [Case(small_qkv(), {"scale": 1.0}, "hand-checkable"),
            Case(qkv(gen, (), T, 4, 3)),
            Case(qkv(gen, (2,), T + 1, 3, 2, dtype=F32)),
            Case(qkv(gen, (2, 3), T, 4, 5, dtype=F64, contiguous=False), {"scale": 0.4}),
            # scores in the hundreds: exp overflows in float32 unless each row's maximum is subtracted first
            Case(qkv(gen, (2,), T, 4, 3, dtype=F32), {"scale": 40.0}, "large scores")]


def _attn_hidden(gen):
    return [Case(qkv(gen, (), 1, 4, 3)),
            Case(qkv(gen, (2, 3), 7, 4, 5, dtype=F32)),
            Case(qkv(gen, (2,), 6, 3, 4, contiguous=False), {"scale": 0.5}),
            Case(qkv(gen, (1, 2), 9, 8, 8))]


def _softmax_mistakes(fn):
    def noncausal(case):
        q, k, v = (case.inputs[n] for n in "qkv")
        return torch.softmax((q @ k.mT) * scale_of(case), dim=-1) @ v

    def without_self(case):
        T = case.inputs["q"].shape[-2]
        scores = ref.masked_scores(case.inputs["q"], case.inputs["k"], case.options.get("scale"))
        weights = torch.softmax(scores.masked_fill(torch.eye(T, dtype=torch.bool), float("-inf")), dim=-1)
        return weights.nan_to_num(0.0) @ case.inputs["v"]  # query 0 has nothing left: an empty sum, 0

    def keys_times_queries(case):  # K Q^T, masked: entry [i, j] is k_i . q_j
        scores = ref.masked_scores(case.inputs["k"], case.inputs["q"], scale_of(case))
        return torch.softmax(scores, dim=-1) @ case.inputs["v"]

    def first_axis(case):  # softmax(dim=0): over a batch axis once there are leading dims
        if case.inputs["q"].ndim < 3:
            return None
        T = case.inputs["q"].shape[-2]
        scores = ref.masked_scores(case.inputs["q"], case.inputs["k"], case.options.get("scale"))
        weights = torch.softmax(scores, dim=0).masked_fill(~ref.causal_mask(T), 0.0)
        return weights @ case.inputs["v"]

    def query_axis(case):
        scores = ref.masked_scores(case.inputs["q"], case.inputs["k"], case.options.get("scale"))
        return torch.softmax(scores, dim=-2) @ case.inputs["v"]

    return (
        Mistake("future tokens leak: the softmax runs over every key; mask the scores where j > i first", noncausal),
        Mistake("upper triangle: each query attends to itself and the future instead of the past",
                anti_causal(fn, ATTN_SEQ)),
        Mistake("missing the scale: the scores must be multiplied by d_k ** -0.5 before the softmax",
                lambda c: call(fn, c, scale=1.0)),
        Mistake("wrong scale: divide the scores by sqrt(d_k), not by d_k", lambda c: call(fn, c, scale=1 / d_k_of(c))),
        Mistake("wrong scale: the scores are multiplied by sqrt(d_k) instead of divided",
                lambda c: call(fn, c, scale=d_k_of(c) ** 0.5)),
        Mistake("off-by-one: query i must also attend to itself (j <= i); in the recurrent form the cache takes"
                " k_t and v_t before the step", without_self),
        Mistake("the softmax runs over the queries (dim=-2); each query's weights over the keys (dim=-1) must sum"
                " to one", query_axis),
        Mistake("the softmax runs over the first axis (dim=0), a batch axis once there are leading dimensions:"
                " each query's weights are over the keys, dim=-1", first_axis),
        Mistake("q and k are swapped (K Q^T): score [i, j] must be q_i . k_j, query i against key j",
                keys_times_queries),
    )


def _step_cases(gen):
    s = small_qkv()
    return [Case({"q_t": s["q"][2], "k_cache": s["k"], "v_cache": s["v"]}, {"scale": 1.0}, "hand-checkable"),
            Case({"q_t": randn(gen, 4), "k_cache": randn(gen, 6, 4), "v_cache": randn(gen, 6, 3)}),
            # leading batch and head dims (k_cache.T passes [t, d] only), float32, non-contiguous caches
            Case({"q_t": randn(gen, 2, 3, 4, dtype=F32), "k_cache": strided(randn(gen, 2, 3, 5, 4, dtype=F32)),
                  "v_cache": strided(randn(gen, 2, 3, 5, 6, dtype=F32))}, {"scale": 0.4}),
            Case({"q_t": randn(gen, 4, dtype=F32), "k_cache": randn(gen, 6, 4, dtype=F32),
                  "v_cache": randn(gen, 6, 3, dtype=F32)}, {"scale": 40.0}, "large scores")]


def _step_hidden(gen):
    return [Case({"q_t": randn(gen, 4), "k_cache": randn(gen, 1, 4), "v_cache": randn(gen, 1, 2)}),
            Case({"q_t": randn(gen, 2, 3, 4, dtype=F32), "k_cache": randn(gen, 2, 3, 5, 4, dtype=F32),
                  "v_cache": randn(gen, 2, 3, 5, 6, dtype=F32)}),
            Case({"q_t": randn(gen, 5), "k_cache": strided(randn(gen, 4, 5)), "v_cache": strided(randn(gen, 4, 3))},
                 {"scale": 0.25})]


def _step_mistakes():
    step = softmax_attention.softmax_attention_step

    def wrong_axis(case):
        q_t, k_cache, v_cache = (case.inputs[n] for n in ("q_t", "k_cache", "v_cache"))
        scores = (k_cache @ q_t.unsqueeze(-1)).squeeze(-1) * scale_of(case)
        return (torch.softmax(scores, dim=0).unsqueeze(-2) @ v_cache).squeeze(-2)
    return (
        Mistake("missing the scale: the scores must be multiplied by d_k ** -0.5 before the softmax",
                lambda c: call(step, c, scale=1.0)),
        Mistake("the newest key and value are left out: the cache already holds k_t and v_t, and the query meets"
                " itself", lambda c: call(step, c, k_cache=c.inputs["k_cache"][..., :-1, :],
                                          v_cache=c.inputs["v_cache"][..., :-1, :])),
        Mistake("no softmax over the cached keys: the output is only the newest value",
                lambda c: c.inputs["v_cache"][..., -1, :]),
        Mistake("the softmax runs over the first axis (dim=0), a batch axis once there are leading dimensions: the"
                " weights are over the cached keys, dim=-1", wrong_axis),
    )


def _kv_cases(gen):
    return [Case({"T": 1000, "n_layers": 12, "n_heads": 12, "d_head": 64}, {"bytes_per_element": 4}),
            Case({"T": 10, "n_layers": 2, "n_heads": 4, "d_head": 8}),
            Case({"T": 7, "n_layers": 3, "n_heads": 2, "d_head": 16}, {"bytes_per_element": 2, "batch_size": 5})]


def _kv_hidden(gen):
    return [Case({"T": 1, "n_layers": 1, "n_heads": 1, "d_head": 1}, {"bytes_per_element": 1}),
            Case({"T": 32768, "n_layers": 80, "n_heads": 8, "d_head": 128}, {"bytes_per_element": 2, "batch_size": 3})]


def _kv_mistakes():
    def part(c, name):
        return {**c.inputs, "bytes_per_element": 2, "batch_size": 1, **c.options}[name]

    return (
        Mistake("counted only one cache: the KV cache holds both K and V (a factor 2)",
                lambda c: ref.kv_cache_bytes(**c.inputs, **c.options) // 2),
        Mistake("counted numbers, not bytes: multiply by bytes_per_element",
                lambda c: ref.kv_cache_bytes(**c.inputs, **c.options) // part(c, "bytes_per_element")),
        Mistake("the batch is missing: every sequence in the batch has its own cache",
                lambda c: ref.kv_cache_bytes(**c.inputs, **c.options) // part(c, "batch_size")),
        Mistake("the layers are missing: every layer has its own cache",
                lambda c: ref.kv_cache_bytes(**c.inputs, **c.options) // c.inputs["n_layers"]),
        Mistake("counted bits, not bytes: bytes_per_element already gives bytes",
                lambda c: ref.kv_cache_bytes(**c.inputs, **c.options) * 8),
    )


EXERCISES = [
    exercise(softmax_attention.softmax_attention_parallel, _attn_cases, _attn_hidden, points=2, causal=True,
             seq_inputs=ATTN_SEQ, mistakes=_softmax_mistakes(softmax_attention.softmax_attention_parallel),
             answers=SOFTMAX_FORMS + (softmax_attention.softmax_attention_step,), structure=(NO_TORCH_ATTENTION,)),
    exercise(softmax_attention.softmax_attention_step, _step_cases, _step_hidden, points=2, time_dims=None,
             mistakes=_step_mistakes(), answers=SOFTMAX_FORMS + (softmax_attention.softmax_attention_step,),
             structure=(NO_TORCH_ATTENTION,)),
    # the recurrent form may build on the (learner's or the reference's) one-step function
    exercise(softmax_attention.softmax_attention_recurrent, _attn_cases, _attn_hidden, points=2, causal=True,
             seq_inputs=ATTN_SEQ, mistakes=_softmax_mistakes(softmax_attention.softmax_attention_recurrent),
             answers=SOFTMAX_FORMS, structure=(NO_TORCH_ATTENTION, TOKEN_BY_TOKEN)),
    exercise(softmax_attention.kv_cache_bytes, _kv_cases, _kv_hidden, points=1, time_dims=None,
             mistakes=_kv_mistakes(), answers=(softmax_attention.kv_cache_bytes,)),
]
