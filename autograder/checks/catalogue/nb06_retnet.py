"""The exercises of notebook 06: RetNet's decay mask, multi-scale decays and retention."""
import torch

import linattn_ref as ref
from linattn_ref import chunk, retnet

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
    gamma_like,
    output_only,
    qkv,
    randn,
    scale_factors,
    scale_of,
    small_qkv,
)
from ..structure import calls_grow_with_length


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
        Mistake(SIGN, lambda c: None if _no_decay(c) else _inverse(mask(**c.inputs))),
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
SIGN = "the exponent's sign is flipped: D_ij = gamma^(i-j), so older keys (larger i - j) weigh less, not more"


def _no_decay(c):
    gamma = c.inputs["gamma"]
    return bool((torch.as_tensor(gamma) == 1).all())


def _inverse(D):
    """gamma^(j-i) below the diagonal, from D = gamma^(i-j): the decay with the exponent's sign flipped."""
    return torch.where(D > 0, 1 / D, 0.0)


def _retention_via_core(c, log_gamma):
    """Retention by the chunk core (one chunk) with any per-step log-decay, also a positive one (a wrong idea)."""
    q, k, v = c.inputs["q"], c.inputs["k"], c.inputs["v"]
    g = torch.as_tensor(log_gamma, dtype=q.dtype)
    g = (g.view(-1, 1, 1) if g.ndim == 1 else g) * torch.ones_like(q[..., :1])
    return chunk.chunk_gated_linear_attention(q, k, v, g, scale_of(c), q.shape[-2], c.options.get("initial_state"),
                                              c.options.get("output_final_state", False))


def state_mistakes(fn):
    """The saved state in and out: initial_state ignored, or the final state not returned."""
    return (
        Mistake("initial_state is ignored: the recurrence must start from the given state S_{-1} (zeros only when"
                " it is None)", lambda c: None if c.options.get("initial_state") is None
                else call(fn, c, initial_state=None)),
        Mistake("output_final_state=True asks for the pair (o, S_T): return the final state together with the"
                " output", lambda c: call(fn, c, output_final_state=False) if c.options.get("output_final_state")
                else None),
    )


def read_before_update(fn):
    """o_t = scale * q_t S_{t-1}: the state read before k_t^T v_t is added (the final state is still right)."""
    def make(c):
        q, S0 = c.inputs["q"], c.options.get("initial_state")
        q_next = torch.cat([q[..., 1:, :], torch.zeros_like(q[..., :1, :])], dim=-2)
        shifted = fn(**{**c.inputs, "q": q_next}, **output_only(c))  # row t - 1 holds q_t S_{t-1}
        first = torch.zeros_like(shifted[..., :1, :]) if S0 is None else (q[..., :1, :] * scale_of(c)) @ S0
        o = torch.cat([first.to(shifted.dtype), shifted[..., :-1, :]], dim=-2)
        return (o, call(fn, c)[1]) if c.options.get("output_final_state") else o
    return make


SWAPPED = ("q and k are swapped: the score of query i and key j is q_i . k_j (Q K^T, one row per query), not"
           " k_i . q_j (K Q^T)")


def swapped_qk(fn):
    return Mistake(SWAPPED, lambda c: call(fn, c, q=c.inputs["k"], k=c.inputs["q"]))


FLOAT32_GAMMA = ("gamma was rounded to float32 on the way: torch.tensor(0.9) and torch.as_tensor(0.9) are float32"
                 " unless told otherwise, and 0.9 becomes 0.89999998. Build it in q's dtype:"
                 " torch.as_tensor(gamma, dtype=q.dtype)")


def _float32_gamma(c, log=False):
    """The case's gamma as float32 would hold it (log=True: its log taken in float32 too), or None if exact."""
    gamma = torch.as_tensor(c.inputs["gamma"], dtype=F64)
    rounded = gamma.float().log().double().exp() if log else gamma.float().double()
    if torch.equal(rounded, gamma) or (rounded > 1).any():
        return None
    return rounded if isinstance(c.inputs["gamma"], torch.Tensor) else rounded.item()


def float32_gamma(fn, mask=False):
    def make(log):
        def alternative(c):
            gamma = _float32_gamma(c, log)
            return None if gamma is None else call(fn, c, gamma=gamma)
        return alternative
    return (Mistake(FLOAT32_GAMMA, make(False)),) + (() if mask else (Mistake(FLOAT32_GAMMA, make(True)),))


READ_BEFORE = ("the state is read before it is updated: o_t = scale * q_t S_t reads the state after k_t^T v_t is"
               " added, so token t sees itself; reading first gives q_t S_{t-1} (and o_0 = 0 from a zero state)")


def _decay_times_mask(T, gamma, dtype=F64):
    """gamma^(i-j) for every pair times the 0/1 causal mask: NaN where the power overflowed above the diagonal."""
    i = torch.arange(T, dtype=dtype)
    d = i.view(-1, 1) - i.view(1, -1)
    g = torch.as_tensor(gamma, dtype=dtype)
    g = g.view(-1, 1, 1) if g.ndim == 1 else g
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


def _ret_hidden(gen):
    return [Case({**qkv(gen, (), 1, 4, 3), "gamma": 0.9}),
            Case({**qkv(gen, (2, 4), 7, 3, 5), "gamma": ref.multiscale_gammas(4)}, note="one gamma per head"),
            Case({**qkv(gen, (3,), 6, 4, 2, dtype=F32, contiguous=False), "gamma": 0.7}, {"scale": 0.4}),
            Case({**qkv(gen, (), 8, 4, 4), "gamma": 1.0})]


def _ret_state_hidden(fn):
    def cases(gen):
        out = _ret_hidden(gen)
        x = qkv(gen, (2, 2), 7, 3, 4)
        options = {"initial_state": randn(gen, 2, 2, 3, 4), "output_final_state": True}
        if fn is retnet.retention_chunk:
            options["chunk_size"] = 3
        out.append(Case({**x, "gamma": torch.tensor([0.7, 0.9], dtype=F64)}, options, "one gamma per head"))
        return out
    return cases


def _ret_factors(case):
    gamma = case.inputs["gamma"]
    out = scale_factors(case)
    if isinstance(gamma, float) and gamma != 1.0:
        out[gamma] = "the gamma exponent is off by one: the newest token must weigh gamma^0 = 1 (D_ii = 1)"
        out[1 / gamma] = "the gamma exponent is off by one: D_ij = gamma^(i-j), the newest token weighs gamma^0 = 1"
    return out


def _ret_mistakes(fn):
    def times_gamma(power):
        def make(c):
            o = fn(**c.inputs, **output_only(c))
            return o * gamma_like(c, o) ** power
        return make

    return float32_gamma(fn) + (
        swapped_qk(fn),
        Mistake(SIGN, lambda c: None if _no_decay(c) else _retention_via_core(c, -torch.as_tensor(
            c.inputs["gamma"], dtype=c.inputs["q"].dtype).log())),
        Mistake("the gamma exponent is off by one: D_ij = gamma^(i-j), the newest token weighs gamma^0 = 1",
                times_gamma(1)),
        Mistake("the gamma exponent is off by one: D_ij = gamma^(i-j), the newest token weighs gamma^0 = 1",
                times_gamma(-1)),
        Mistake("there is no decay: each step must multiply the old state (or the score j steps back) by gamma",
                lambda c: call(fn, c, gamma=1.0) if not (isinstance(c.inputs["gamma"], float)
                                                         and c.inputs["gamma"] == 1.0) else None),
        Mistake("upper triangle: the decay mask is transposed, the future is visible and the past masked",
                anti_causal(fn, ATTN_SEQ)),
    )


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
    exercise(retnet.retention_parallel, _ret_parallel_cases, _ret_hidden, points=2, causal=True, seq_inputs=ATTN_SEQ,
             factors=_ret_factors, mistakes=_ret_overflow_mistakes() + _ret_mistakes(retnet.retention_parallel),
             answers=LINEAR_FORMS),
    exercise(retnet.retention_recurrent, _ret_state_cases, _ret_state_hidden(retnet.retention_recurrent), points=2,
             causal=True, seq_inputs=ATTN_SEQ, factors=_ret_factors,
             mistakes=state_mistakes(retnet.retention_recurrent) + _ret_mistakes(retnet.retention_recurrent)
             + (Mistake(READ_BEFORE, read_before_update(retnet.retention_recurrent)),),
             answers=LINEAR_FORMS, structure=(calls_grow_with_length(ONE_STEP),)),
]
