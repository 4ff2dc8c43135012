"""The exercises of notebook 06: RetNet's decay mask, multi-scale decays and retention."""
import torch

import linattn_ref as ref
from linattn_ref import retnet

from ..exercise import (
    ATTN_SEQ,
    F32,
    F64,
    LINEAR_FORMS,
    Case,
    Mistake,
    exercise,
    gamma_like,
    qkv,
    randn,
    scale_of,
    small_qkv,
)
from ..shared import (
    READ_BEFORE,
    SIGN,
    float32_gamma,
    no_decay,
    read_before_update,
    retention_factors,
    retention_hidden,
    retention_mistakes,
    retention_state_hidden,
    state_mistakes,
)
from ..structure import calls_grow_with_length

NOTEBOOK = "06_retnet"


def _decay_cases(gen):
    return [Case({"T": 4, "gamma": 0.5}, note="hand-checkable"), Case({"T": 6, "gamma": 0.9}),
            Case({"T": 4, "gamma": torch.tensor([0.5, 0.9], dtype=F64)}, note="one gamma per head"),
            Case({"T": 300, "gamma": 0.05}, note="strong decay: gamma^(i-j) above the diagonal is 20^299 = inf")]


def _decay_hidden(gen):
    return [Case({"T": 1, "gamma": 0.9}), Case({"T": 5, "gamma": torch.tensor([0.5, 0.8, 0.97], dtype=F64)}),
            Case({"T": 9, "gamma": 1.0}), Case({"T": 200, "gamma": 0.99})]


def _decay_mistakes():
    def full(c):
        i = torch.arange(c.inputs["T"], dtype=F64)
        g = gamma_like(c, i)
        return g ** (i.view(-1, 1) - i.view(1, -1))

    def absolute(c):
        i = torch.arange(c.inputs["T"], dtype=F64)
        return gamma_like(c, i) ** (i.view(-1, 1) - i.view(1, -1)).abs()

    mask = ref.decay_mask
    return float32_gamma(mask, mask=True) + (
        Mistake(OVERFLOW, lambda c: _decay_times_mask(c.inputs["T"], c.inputs["gamma"])),
        Mistake(SIGN, lambda c: None if no_decay(c) else _inverse(mask(**c.inputs))),
        Mistake("the gamma exponent is off by one: D_ij = gamma^(i-j), so the diagonal is gamma^0 = 1",
                lambda c: mask(**c.inputs) * gamma_like(c, mask(**c.inputs))),
        Mistake("the gamma exponent is off by one: D_ij = gamma^(i-j), so the diagonal is gamma^0 = 1",
                lambda c: mask(**c.inputs) / gamma_like(c, mask(**c.inputs))),
        Mistake("upper triangle: D_ij = gamma^(i-j) below the diagonal (j <= i) and 0 above it",
                lambda c: mask(**c.inputs).mT),
        Mistake("the future is not masked: above the diagonal (j > i) D must be 0, not gamma^(i-j)", full),
        Mistake("the future is not masked: above the diagonal (j > i) D must be 0, not gamma^|i-j|", absolute),
    )


OVERFLOW = ("gamma^(i-j) above the diagonal (j > i) is gamma to a negative power: it overflows to inf for long"
            " sequences, and inf * 0 = NaN when the mask multiplies it. Clamp the exponent at 0 before the power, or"
            " choose with torch.where")


def _inverse(D):
    """gamma^(j-i) below the diagonal, from D = gamma^(i-j): the decay with the exponent's sign flipped."""
    return torch.where(D > 0, 1 / D, 0.0)


def _decay_times_mask(T, gamma, dtype=F64):
    """gamma^(i-j) for every pair times the 0/1 causal mask: NaN where the power overflowed above the diagonal."""
    i = torch.arange(T, dtype=dtype)
    d = i.view(-1, 1) - i.view(1, -1)
    g = torch.as_tensor(gamma, dtype=dtype)
    g = retnet.per_head(g)
    return g ** d * (d >= 0)


def _gammas_mistakes():
    return (
        Mistake("the head index is off by one: gamma_h = 1 - 2^(-5-h) with h counted from 0",
                lambda c: 1 - 2.0 ** (-6.0 - torch.arange(c.inputs["n_heads"], dtype=F64))),
        Mistake("that is 2^(-5-h); the decay is gamma_h = 1 - 2^(-5-h)",
                lambda c: 1 - ref.multiscale_gammas(**c.inputs)),
        Mistake("the exponent's sign: gamma_h = 1 - 2^(-5-h), each head's decay closer to 1",
                lambda c: 1 - 2.0 ** (-5.0 + torch.arange(c.inputs["n_heads"], dtype=F64))),
    )


def _ret_cases(gen):
    s = small_qkv()
    return [Case({**s, "gamma": 0.5}, {"scale": 1.0}, "hand-checkable"),
            Case({**qkv(gen, (), 6, 4, 3, contiguous=False), "gamma": 0.9}, note="non-contiguous inputs"),
            Case({**qkv(gen, (2, 3), 5, 4, 4, dtype=F32), "gamma": torch.tensor([0.6, 0.8, 0.95], dtype=F64)},
                 note="one gamma per head")]


def _ret_parallel_cases(gen):
    return _ret_cases(gen) + [Case({**qkv(gen, (), 200, 2, 3, dtype=F32), "gamma": 0.02},
                                   note="strong decay: gamma^(i-j) above the diagonal overflows")]


def _ret_state_cases(gen):
    return _ret_cases(gen) + [Case({**qkv(gen, (2, 2), 5, 3, 4), "gamma": torch.tensor([0.7, 0.9], dtype=F64)},
                                   {"initial_state": randn(gen, 2, 2, 3, 4), "output_final_state": True},
                                   "from a saved state, returning the final one")]


def _ret_overflow_mistakes():
    def make(dtype):
        def alternative(c):
            q, k, v = c.inputs["q"], c.inputs["k"], c.inputs["v"]
            D = _decay_times_mask(q.shape[-2], c.inputs["gamma"], dtype or q.dtype).to(q.dtype)
            return ((q @ k.mT) * scale_of(c) * D) @ v
        return alternative
    return (Mistake(OVERFLOW, make(F64)), Mistake(OVERFLOW, make(None)))


ONE_STEP = "update the state once per token, S_t = gamma * S_{t-1} + k_t^T v_t, and read o_t = scale * q_t S_t"


def _gammas_cases(gen):
    return [Case({"n_heads": 1}), Case({"n_heads": 4})]


def _gammas_hidden(gen):
    return [Case({"n_heads": 8}), Case({"n_heads": 24})]


EXERCISES = [
    exercise(retnet.decay_mask, _decay_cases, _decay_hidden, points=2, time_dims=None, mistakes=_decay_mistakes(),
             answers=(retnet.decay_mask,)),
    exercise(retnet.multiscale_gammas, _gammas_cases, _gammas_hidden, points=1, time_dims=None,
             mistakes=_gammas_mistakes(), answers=(retnet.multiscale_gammas,)),
    exercise(retnet.retention_parallel, _ret_parallel_cases, retention_hidden, points=2, causal=True,
             seq_inputs=ATTN_SEQ, factors=retention_factors, answers=LINEAR_FORMS,
             mistakes=_ret_overflow_mistakes() + retention_mistakes(retnet.retention_parallel)),
    exercise(retnet.retention_recurrent, _ret_state_cases, retention_state_hidden(retnet.retention_recurrent), points=2,
             causal=True, seq_inputs=ATTN_SEQ, factors=retention_factors,
             mistakes=state_mistakes(retnet.retention_recurrent) + retention_mistakes(retnet.retention_recurrent)
             + (Mistake(READ_BEFORE, read_before_update(retnet.retention_recurrent)),),
             answers=LINEAR_FORMS, structure=(calls_grow_with_length(ONE_STEP),)),
]
