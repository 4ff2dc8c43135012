"""The exercises of notebook 07: gated linear attention."""
import torch

from linattn_ref import gla

from ..cases import (
    F32,
    F64,
    GLA_SEQ,
    LINEAR_FORMS,
    Case,
    Mistake,
    call,
    exercise,
    gate_on_values,
    gates_as_alpha,
    qkv,
    randn,
    scale_factors,
    scale_of,
    small_qkv,
    strided,
    with_gates,
)
from ..structure import calls_grow_with_length
from .nb06_retnet import READ_BEFORE, read_before_update, state_mistakes, swapped_qk


def _gates_cases(gen):
    return [Case({"x": strided(randn(gen, 5, 6)), "w_down": randn(gen, 6, 2), "w_up": randn(gen, 2, 4),
                  "bias": randn(gen, 4)}, note="x non-contiguous"),
            Case({"x": randn(gen, 3, 4, 8, dtype=F32), "w_down": randn(gen, 8, 2, dtype=F32),
                  "w_up": randn(gen, 2, 3, dtype=F32), "bias": randn(gen, 3, dtype=F32)}, {"tau": 4.0}),
            Case({"x": randn(gen, 4, 5, dtype=F32), "w_down": randn(gen, 5, 2, dtype=F32),
                  "w_up": randn(gen, 2, 3, dtype=F32), "bias": torch.tensor([0.5, -30.0, -120.0])},
                 note="gates nearly closed: sigmoid(z) rounds to 0 in float32 for z below about -104")]


def _gates_hidden(gen):
    return [Case({"x": randn(gen, 1, 3), "w_down": randn(gen, 3, 1), "w_up": randn(gen, 1, 2), "bias": randn(gen, 2)}),
            Case({"x": strided(randn(gen, 2, 7, 6)), "w_down": randn(gen, 6, 3), "w_up": randn(gen, 3, 5),
                  "bias": randn(gen, 5)}, {"tau": 1.0})]


def _gates_mistakes():
    gates = gla.gla_gates
    tau = lambda c: c.options.get("tau", 16.0)  # noqa: E731
    return (
        Mistake("torch.log(torch.sigmoid(z)) rounds sigmoid(z) to 0 for very negative z, and log(0) = -inf: use"
                " torch.nn.functional.logsigmoid(z), which computes log(sigmoid(z)) without that rounding",
                lambda c: torch.log(torch.sigmoid(_preactivation(c))) / tau(c)),
        Mistake("these are the gates alpha = exp(g), not the log-gates: keep g = log(sigmoid(.)) / tau in log space",
                lambda c: call(gates, c).exp()),
        Mistake("not in log space: sigmoid(.) / tau is a gate divided by tau; the log-gate is logsigmoid(.) / tau",
                lambda c: (call(gates, c) * tau(c)).exp() / tau(c)),
        Mistake("the temperature is missing: divide the log-gates by tau", lambda c: call(gates, c) * tau(c)),
        Mistake("the temperature multiplies instead of divides: the log-gates are logsigmoid(.) / tau",
                lambda c: call(gates, c) * tau(c) ** 2),
        Mistake("the bias is missing: g = logsigmoid(x W_down W_up + bias) / tau",
                lambda c: call(gates, c, bias=torch.zeros_like(c.inputs["bias"]))),
    )


def _preactivation(c):
    i = c.inputs
    return i["x"] @ i["w_down"] @ i["w_up"] + i["bias"]


def _gla_cases(gen):
    s = small_qkv()
    g = torch.tensor([[-0.5, -1.0], [-1.0, 0.0], [-0.5, -0.5]], dtype=F64)
    return [Case({**s, "g": g}, {"scale": 1.0}, "hand-checkable"),
            Case({n: strided(x) for n, x in with_gates(gen, qkv(gen, (), 6, 4, 3)).items()},
                 note="non-contiguous inputs"),
            Case(with_gates(gen, qkv(gen, (2, 2), 5, 3, 3, dtype=F32)))]


def _gla_state_cases(gen):
    return _gla_cases(gen) + [Case(with_gates(gen, qkv(gen, (2,), 5, 3, 4)),
                                   {"initial_state": randn(gen, 2, 3, 4), "output_final_state": True},
                                   "from a saved state, returning the final one")]


def _strong_gates(gen, T=48, d_k=3, d_v=2, lead=(), log_gate=-2.5):
    """float32 gates alpha = exp(-2.5) ~ 0.08: cumsum g passes -88.7 (exp overflows float32) after 36 steps."""
    return {**qkv(gen, lead, T, d_k, d_v, dtype=F32), "g": torch.full((*lead, T, d_k), log_gate)}


def _gla_parallel_cases(gen):
    return _gla_cases(gen) + [Case(_strong_gates(gen), note="strong gates in float32")]


def _gla_hidden(gen):
    return [Case(with_gates(gen, qkv(gen, (), 1, 4, 3))),
            Case(with_gates(gen, qkv(gen, (2, 3), 7, 4, 5)), {"scale": 0.3}),
            Case({k: strided(x) for k, x in with_gates(gen, qkv(gen, (2,), 6, 3, 4, dtype=F32)).items()}),
            Case({**qkv(gen, (), 40, 4, 4, dtype=F32), "g": torch.full((40, 4), -3.0)}, note="strong decay")]


def _gla_state_hidden(fn):
    def cases(gen):
        out = _gla_hidden(gen)
        options = {"initial_state": randn(gen, 2, 3, 4), "output_final_state": True}
        if fn is gla.gla_chunk:
            options["chunk_size"] = 3
        out.append(Case(with_gates(gen, qkv(gen, (2,), 7, 3, 4)), options))
        return out
    return cases


def _gla_mistakes(fn):
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


NAIVE = ("the naive form divides by the cumulative gates, K / B with B = exp(cumsum g): under strong gates 1 / B"
         " overflows float32 (cumsum g below -88.7) and inf * 0 gives NaN. Work in log space: exp(b_i - b_j) with"
         " j <= i, never above 1")
EXP_BEFORE_MASK = ("exp before the mask: above the diagonal (j > i) b_i - b_j > 0 and exp overflows to inf under"
                   " strong gates; a 0/1 mask multiplied in afterwards gives inf * 0 = NaN. Set those exponents to"
                   " -inf before exp (masked_fill), so that exp gives 0")


def _exp_then_mask(q, k, b):
    """A_ij = sum_c q_ic k_jc exp(b_ic - b_jc) * [j <= i]: the mask multiplied in after exp."""
    C = q.shape[-2]
    decay = (b.unsqueeze(-2) - b.unsqueeze(-3)).exp() * torch.ones(C, C, dtype=q.dtype).tril().unsqueeze(-1)
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, decay)


def _parallel_mistakes():
    def exp_then_mask(c):
        q, k, v, g = (c.inputs[n] for n in "qkvg")
        return _exp_then_mask(q * scale_of(c), k, g.cumsum(-2)) @ v
    return (Mistake(NAIVE, lambda c: gla.gla_parallel_naive(**c.inputs, **c.options)),
            Mistake(EXP_BEFORE_MASK, exp_then_mask))


def _tau_factors(case):
    return {case.options.get("tau", 16.0): "the temperature is missing: divide by tau"}


EXERCISES = [
    exercise(gla.gla_gates, _gates_cases, _gates_hidden, points=2, factors=_tau_factors, mistakes=_gates_mistakes(),
             answers=(gla.gla_gates,), time_word="token"),
    exercise(gla.gla_recurrent, _gla_state_cases, _gla_state_hidden(gla.gla_recurrent), points=3, causal=True,
             seq_inputs=GLA_SEQ, factors=scale_factors,
             mistakes=state_mistakes(gla.gla_recurrent) + _gla_mistakes(gla.gla_recurrent)
             + (Mistake(READ_BEFORE, read_before_update(gla.gla_recurrent)),), answers=LINEAR_FORMS,
             structure=(calls_grow_with_length("update the state once per token, S_t = Diag(exp(g_t)) S_{t-1} +"
                                               " k_t^T v_t, and read o_t = scale * q_t S_t", names=tuple("qkvg")),)),
    exercise(gla.gla_parallel, _gla_parallel_cases, _gla_hidden, points=3, causal=True, seq_inputs=GLA_SEQ,
             factors=scale_factors, mistakes=_parallel_mistakes() + _gla_mistakes(gla.gla_parallel),
             answers=LINEAR_FORMS),
]
