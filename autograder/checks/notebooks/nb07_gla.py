"""The exercises of notebook 07: gated linear attention."""
import torch

from linattn_ref import gla

from ..exercise import (
    F32,
    F64,
    GLA_SEQ,
    LINEAR_FORMS,
    Case,
    Mistake,
    call,
    exercise,
    qkv,
    randn,
    scale_factors,
    scale_of,
    small_qkv,
    strided,
    with_gates,
)
from ..shared import (
    EXP_BEFORE_MASK,
    READ_BEFORE,
    exp_then_mask,
    gla_hidden,
    gla_mistakes,
    gla_state_hidden,
    read_before_update,
    state_mistakes,
)
from ..structure import calls_grow_with_length

NOTEBOOK = "07_gla"


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


NAIVE = ("the naive form divides by the cumulative gates, K / B with B = exp(cumsum g): under strong gates 1 / B"
         " overflows float32 (cumsum g below -88.7) and inf * 0 gives NaN. Work in log space: exp(b_i - b_j) with"
         " j <= i, never above 1")


def _parallel_mistakes():
    def exp_first(c):
        q, k, v, g = (c.inputs[n] for n in "qkvg")
        return exp_then_mask(q * scale_of(c), k, g.cumsum(-2)) @ v
    return (Mistake(NAIVE, lambda c: gla.gla_parallel_naive(**c.inputs, **c.options)),
            Mistake(EXP_BEFORE_MASK, exp_first))


def _tau_factors(case):
    return {case.options.get("tau", 16.0): "the temperature is missing: divide by tau"}


EXERCISES = [
    exercise(gla.gla_gates, _gates_cases, _gates_hidden, points=2, factors=_tau_factors, mistakes=_gates_mistakes(),
             answers=(gla.gla_gates,), time_word="token"),
    exercise(gla.gla_recurrent, _gla_state_cases, gla_state_hidden(gla.gla_recurrent), points=3, causal=True,
             seq_inputs=GLA_SEQ, factors=scale_factors,
             mistakes=state_mistakes(gla.gla_recurrent) + gla_mistakes(gla.gla_recurrent)
             + (Mistake(READ_BEFORE, read_before_update(gla.gla_recurrent)),), answers=LINEAR_FORMS,
             structure=(calls_grow_with_length("update the state once per token, S_t = Diag(exp(g_t)) S_{t-1} +"
                                               " k_t^T v_t, and read o_t = scale * q_t S_t", names=tuple("qkvg")),)),
    exercise(gla.gla_parallel, _gla_parallel_cases, gla_hidden, points=3, causal=True, seq_inputs=GLA_SEQ,
             factors=scale_factors, mistakes=_parallel_mistakes() + gla_mistakes(gla.gla_parallel),
             answers=LINEAR_FORMS),
]
