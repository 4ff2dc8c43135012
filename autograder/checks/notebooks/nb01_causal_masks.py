"""The exercises of notebook 01: causal masks and query-key enumeration."""
import torch

import linattn_ref as ref
from linattn_ref import masks, retnet

from ..exercise import F32, Case, Mistake, anti_causal, exercise, randn, scale_factors, scale_of, small_qkv, strided

NOTEBOOK = "01_causal_masks"


def _mask_cases(gen):
    return [Case({"T": T}) for T in (3, 5)]


def _mask_hidden(gen):
    return [Case({"T": T}) for T in (1, 2, 8, 17)]


def _mask_mistakes():
    return (
        Mistake("upper triangle: True must mark the keys j <= i (on and below the diagonal)",
                lambda c: ref.causal_mask(**c.inputs).mT),
        Mistake("off-by-one: the diagonal is missing (j < i instead of j <= i); query i sees itself",
                lambda c: ref.causal_mask(**c.inputs).tril(-1)),
        Mistake("inverted: True must mark the keys query i may see, not the hidden ones",
                lambda c: ~ref.causal_mask(**c.inputs)),
        Mistake("future tokens leak: every entry is True; only j <= i is visible",
                lambda c: torch.ones_like(ref.causal_mask(**c.inputs))),
    )


def _pairs_mistakes():
    def strict(case):
        return [(i, j) for i in range(case.inputs["T"]) for j in range(i)]

    def upper(case):
        return [(i, j) for i in range(case.inputs["T"]) for j in range(i, case.inputs["T"])]

    def key_major(case):
        return sorted(ref.qk_pairs(case.inputs["T"]), key=lambda p: (p[1], p[0]))

    def swapped(case):
        return [(j, i) for i, j in ref.qk_pairs(case.inputs["T"])]

    def one_based(case):
        return [(i + 1, j + 1) for i, j in ref.qk_pairs(case.inputs["T"])]

    def everything(case):
        return [(i, j) for i in range(case.inputs["T"]) for j in range(case.inputs["T"])]

    return (
        Mistake("off-by-one: the pairs (i, i) are missing (j < i instead of j <= i); query i also meets key i",
                strict),
        Mistake("upper triangle: these are the pairs with j >= i; query i meets keys j <= i (itself and the past)",
                upper),
        Mistake("right pairs, wrong order: list them query by query, (i, 0), (i, 1), ..., (i, i), then query i + 1",
                key_major),
        Mistake("the pairs are written (key, query); write them (query i, key j)", swapped),
        Mistake("positions counted from 1; the course counts from 0", one_based),
        Mistake("future tokens leak: query i meets every key, also j > i; causal attention stops at j = i",
                everything),
    )


def _visible_keys_cases(gen):
    k = randn(gen, 5, 3)
    # leading batch and head dims, float32, a non-contiguous layout: k[:i + 1] passes the [T, d] cases only
    return [Case({"k": k, "i": 0}), Case({"k": k, "i": 2}), Case({"k": k, "i": 4}),
            Case({"k": strided(randn(gen, 2, 3, 6, 4, dtype=F32)), "i": 2})]


def _visible_keys_hidden(gen):
    return [Case({"k": randn(gen, 1, 4), "i": 0}), Case({"k": randn(gen, 2, 3, 6, 4, dtype=F32), "i": 2}),
            Case({"k": strided(randn(gen, 7, 5)), "i": 5})]


def _visible_keys_mistakes():
    return (
        Mistake("off-by-one: query i also sees key i, so the keys are rows 0..i (i + 1 rows, k[..., :i + 1, :])",
                lambda c: c.inputs["k"][..., : c.inputs["i"], :]),
        Mistake("future tokens leak: these are the keys from position i on; query i sees rows 0..i",
                lambda c: c.inputs["k"][..., c.inputs["i"]:, :]),
        Mistake("the rows are sliced on the wrong axis: positions are the second-to-last axis [..., T, d]",
                lambda c: c.inputs["k"][..., : c.inputs["i"] + 1]),
        Mistake("k[:i + 1] slices the first axis, which is a batch axis once there are leading dimensions: slice the"
                " positions with k[..., :i + 1, :]", lambda c: c.inputs["k"][: c.inputs["i"] + 1]),
    )


def _num_keys_cases(gen):
    return [Case({"T": 4, "i": 0}), Case({"T": 4, "i": 3}), Case({"T": 10, "i": 2})]


def _num_keys_hidden(gen):
    return [Case({"T": 1, "i": 0}), Case({"T": 100, "i": 99}), Case({"T": 16, "i": 7})]


def _num_keys_mistakes():
    return (
        Mistake("off-by-one: query i sees keys 0..i, which is i + 1 keys (itself included)",
                lambda c: c.inputs["i"]),
        Mistake("future tokens leak: that counts the keys from i to the end; query i sees keys 0..i",
                lambda c: c.inputs["T"] - c.inputs["i"]),
        Mistake("that counts the future keys j > i; query i sees the keys j <= i",
                lambda c: c.inputs["T"] - c.inputs["i"] - 1),
        Mistake("every query sees all T keys only without a mask: causal attention stops at j = i",
                lambda c: c.inputs["T"]),
    )


def _scores_cases(gen):
    s = small_qkv()
    # the last case has leading batch and head dims (k.T passes [T, d] only) and a non-contiguous layout
    return [Case({"q": s["q"], "k": s["k"]}, {"scale": 1.0}, "hand-checkable"),
            Case({"q": randn(gen, 5, 4), "k": randn(gen, 5, 4)}),
            Case({"q": randn(gen, 6, 3, dtype=F32), "k": randn(gen, 6, 3, dtype=F32)}),
            Case({"q": strided(randn(gen, 2, 3, 5, 4)), "k": strided(randn(gen, 2, 3, 5, 4))}, {"scale": 0.4})]


def _scores_hidden(gen):
    return [Case({"q": randn(gen, 1, 4), "k": randn(gen, 1, 4)}),
            Case({"q": randn(gen, 2, 3, 7, 4), "k": randn(gen, 2, 3, 7, 4)}, {"scale": 0.3}),
            Case({"q": strided(randn(gen, 6, 5, dtype=F32)), "k": strided(randn(gen, 6, 5, dtype=F32))})]


def _unmasked_scores(case):
    q, k = case.inputs["q"], case.inputs["k"]
    return (q @ k.mT) * scale_of(case)


def _large_negative(fill):
    """The scores masked with a large finite number (-1e9, the dtype's lowest...) instead of -inf."""
    def make(case):
        scores = ref.masked_scores(**case.inputs, **case.options)
        value = torch.finfo(scores.dtype).min if fill == "min" else fill
        return scores.masked_fill(torch.isinf(scores), value)
    return Mistake(f"masked with {'the lowest finite number' if fill == 'min' else f'{fill:g}'} instead of -inf."
                   " In softmax attention either is accepted, because exp() of both is 0 after the softmax (the"
                   " reference uses -inf there too, and the outputs agree). Here the masked scores themselves are"
                   " the result, and the exercise asks for -inf: use float('-inf')", make)


def _scores_mistakes():
    return tuple(_large_negative(fill) for fill in (-1e9, -1e4, -1e10, -1e30, "min")) + (
        Mistake("upper triangle: the future (j > i) is visible and the past masked; mask the scores where j > i",
                anti_causal(masks.masked_scores, {"q": -2, "k": -2}, (-2, -1))),
        Mistake("off-by-one mask: the diagonal is masked too (j < i instead of j <= i); query i sees key i",
                lambda c: ref.masked_scores(**c.inputs, **c.options).masked_fill(
                    torch.eye(c.inputs["q"].shape[-2], dtype=torch.bool), float("-inf"))),
        Mistake("masked with 0 instead of -inf: after the softmax a score of 0 still gets weight exp(0) = 1",
                lambda c: _unmasked_scores(c).masked_fill(~ref.causal_mask(c.inputs["q"].shape[-2]), 0.0)),
        Mistake("future tokens leak: no mask at all; set the scores with j > i to -inf", _unmasked_scores),
        Mistake("q and k are swapped (K Q^T): row i must hold q_i . k_j", lambda c: ref.masked_scores(
            c.inputs["k"], c.inputs["q"], **c.options)),
    )


EXERCISES = [
    exercise(masks.causal_mask, _mask_cases, _mask_hidden, points=1, mistakes=_mask_mistakes(), time_dims=None,
             answers=(masks.causal_mask, masks.masked_scores, retnet.decay_mask)),
    exercise(masks.qk_pairs, _mask_cases, _mask_hidden, points=1, mistakes=_pairs_mistakes(), time_dims=None,
             answers=(masks.qk_pairs,)),
    exercise(masks.visible_keys, _visible_keys_cases, _visible_keys_hidden, points=1, time_word="key",
             mistakes=_visible_keys_mistakes(), answers=(masks.visible_keys,)),
    exercise(masks.num_visible_keys, _num_keys_cases, _num_keys_hidden, points=1, mistakes=_num_keys_mistakes(),
             time_dims=None, answers=(masks.num_visible_keys,)),
    exercise(masks.masked_scores, _scores_cases, _scores_hidden, points=2, causal=True, seq_inputs={"q": -2, "k": -2},
             mistakes=_scores_mistakes(), factors=scale_factors, answers=(masks.masked_scores,)),
]
