"""Cases, reference variants and mistakes shared by the checks of several notebooks.

Linear attention (03, 04, 08), retention (06, 08, 09) and GLA (07, 08, 09) come back in later notebooks in
chunked and Triton forms; what those checks reuse from the first notebook of each family lives here, under
public names, so no notebook's module imports another's.
"""
import torch

import linattn_ref as ref
from linattn_ref import chunk, gla, linear_attention, retnet

from .exercise import (
    ATTN_SEQ,
    F32,
    F64,
    Case,
    Mistake,
    anti_causal,
    call,
    gamma_like,
    gate_on_values,
    gates_as_alpha,
    output_only,
    qkv,
    randn,
    scale_factors,
    scale_of,
    small_qkv,
    strided,
    with_gates,
)


def linear_attention_cases(gen):
    s = small_qkv()
    # every promise of the docstring: leading batch and head dims, d_k != d_v, eps, a given scale,
    # feature_map=None (no feature map), float32 and a non-contiguous layout
    return [Case(s, {"feature_map": ref.elu_plus_one, "normalize": True}, "hand-checkable"),
            Case(qkv(gen, (), 5, 4, 3), {"feature_map": ref.elu_plus_one, "normalize": True}),
            Case(qkv(gen, (2,), 6, 3, 3, dtype=F32), {"feature_map": ref.elu_plus_one, "normalize": False}),
            Case(qkv(gen, (2, 3), 7, 4, 5, contiguous=False), {"feature_map": ref.elu_plus_one, "normalize": True,
                                                               "eps": 0.5}),
            Case(qkv(gen, (), 6, 3, 4), {"feature_map": None, "normalize": False, "scale": 0.3})]


def linear_attention_hidden(gen):
    return [Case(qkv(gen, (), 1, 4, 3), {"feature_map": ref.elu_plus_one, "normalize": True}),
            Case(qkv(gen, (2, 3), 7, 4, 5), {"feature_map": ref.elu_plus_one, "normalize": False, "scale": 0.3}),
            Case(qkv(gen, (2, 2), 6, 3, 4, dtype=F32, contiguous=False),
                 {"feature_map": ref.elu_plus_one, "normalize": True}),
            Case(qkv(gen, (), 9, 4, 4), {"feature_map": ref.elu_plus_one, "normalize": False})]


def linear_attention_state_hidden(fn):
    """Hidden cases starting from a state and returning the final one (run if the learner's function takes them)."""
    def cases(gen):
        out = linear_attention_hidden(gen)
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


def linear_attention_mistakes(fn, causal=True):
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


SIGN = "the exponent's sign is flipped: D_ij = gamma^(i-j), so older keys (larger i - j) weigh less, not more"


def no_decay(c):
    gamma = c.inputs["gamma"]
    return bool((torch.as_tensor(gamma) == 1).all())


def retention_via_core(c, log_gamma):
    """Retention by the chunk core (one chunk) with any per-step log-decay, also a positive one (a wrong idea)."""
    q, k, v = c.inputs["q"], c.inputs["k"], c.inputs["v"]
    g = torch.as_tensor(log_gamma, dtype=q.dtype)
    g = retnet.per_head(g) * torch.ones_like(q[..., :1])
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


def retention_hidden(gen):
    return [Case({**qkv(gen, (), 1, 4, 3), "gamma": 0.9}),
            Case({**qkv(gen, (2, 4), 7, 3, 5), "gamma": ref.multiscale_gammas(4)}, note="one gamma per head"),
            Case({**qkv(gen, (3,), 6, 4, 2, dtype=F32, contiguous=False), "gamma": 0.7}, {"scale": 0.4}),
            Case({**qkv(gen, (), 8, 4, 4), "gamma": 1.0})]


def retention_state_hidden(fn):
    def cases(gen):
        out = retention_hidden(gen)
        x = qkv(gen, (2, 2), 7, 3, 4)
        options = {"initial_state": randn(gen, 2, 2, 3, 4), "output_final_state": True}
        if fn is retnet.retention_chunk:
            options["chunk_size"] = 3
        out.append(Case({**x, "gamma": torch.tensor([0.7, 0.9], dtype=F64)}, options, "one gamma per head"))
        return out
    return cases


def retention_factors(case):
    gamma = case.inputs["gamma"]
    out = scale_factors(case)
    if isinstance(gamma, float) and gamma != 1.0:
        out[gamma] = "the gamma exponent is off by one: the newest token must weigh gamma^0 = 1 (D_ii = 1)"
        out[1 / gamma] = "the gamma exponent is off by one: D_ij = gamma^(i-j), the newest token weighs gamma^0 = 1"
    return out


def retention_mistakes(fn):
    def times_gamma(power):
        def make(c):
            o = fn(**c.inputs, **output_only(c))
            return o * gamma_like(c, o) ** power
        return make

    return float32_gamma(fn) + (
        swapped_qk(fn),
        Mistake(SIGN, lambda c: None if no_decay(c) else retention_via_core(c, -torch.as_tensor(
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


def gla_hidden(gen):
    return [Case(with_gates(gen, qkv(gen, (), 1, 4, 3))),
            Case(with_gates(gen, qkv(gen, (2, 3), 7, 4, 5)), {"scale": 0.3}),
            Case({k: strided(x) for k, x in with_gates(gen, qkv(gen, (2,), 6, 3, 4, dtype=F32)).items()}),
            Case({**qkv(gen, (), 40, 4, 4, dtype=F32), "g": torch.full((40, 4), -3.0)}, note="strong decay")]


def gla_state_hidden(fn):
    def cases(gen):
        out = gla_hidden(gen)
        options = {"initial_state": randn(gen, 2, 3, 4), "output_final_state": True}
        if fn is gla.gla_chunk:
            options["chunk_size"] = 3
        out.append(Case(with_gates(gen, qkv(gen, (2,), 7, 3, 4)), options))
        return out
    return cases


def gla_mistakes(fn):
    return (
        swapped_qk(fn),
        Mistake("the log-gates are used as gates: g = log(alpha) <= 0, so the decay is exp(g), not g itself"
                " (stay in log space: exp(b_i - b_j))", gates_as_alpha),
        Mistake("the gates are ignored: each step must decay the old state by alpha_t = exp(g_t)",
                lambda c: call(fn, c, g=torch.zeros_like(c.inputs["g"]))),
        Mistake("the gate exponent is off by one: the gate decays the old state before k_t^T v_t is added, so the"
                " newest token is not decayed", lambda c: call(fn, c, k=c.inputs["k"] * c.inputs["g"].exp())),
        Mistake("the gate is applied along d_v; alpha_t has one entry per key dimension (the rows of S, d_k)",
                gate_on_values),
    )


EXP_BEFORE_MASK = ("exp before the mask: above the diagonal (j > i) b_i - b_j > 0 and exp overflows to inf under"
                   " strong gates; a 0/1 mask multiplied in afterwards gives inf * 0 = NaN. Set those exponents to"
                   " -inf before exp (masked_fill), so that exp gives 0")


def exp_then_mask(q, k, b):
    """A_ij = sum_c q_ic k_jc exp(b_ic - b_jc) * [j <= i]: the mask multiplied in after exp."""
    C = q.shape[-2]
    decay = (b.unsqueeze(-2) - b.unsqueeze(-3)).exp() * torch.ones(C, C, dtype=q.dtype).tril().unsqueeze(-1)
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, decay)


def retention_as_core(case):
    q = case.inputs["q"]
    log_gamma = gamma_like(case, q).log() if isinstance(case.inputs["gamma"], torch.Tensor) else \
        torch.tensor(case.inputs["gamma"], dtype=q.dtype).log()
    return q, case.inputs["k"], case.inputs["v"], log_gamma.expand(*q.shape[:-1], 1), scale_of(case)


def gla_as_core(case):
    i = case.inputs
    return i["q"], i["k"], i["v"], i["g"], scale_of(case)
