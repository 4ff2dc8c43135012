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
    small_qkv,
    strided,
    with_gates,
)


def _gates_cases(gen):
    return [Case({"x": randn(gen, 5, 6), "w_down": randn(gen, 6, 2), "w_up": randn(gen, 2, 4), "bias": randn(gen, 4)}),
            Case({"x": randn(gen, 3, 4, 8, dtype=F32), "w_down": randn(gen, 8, 2, dtype=F32),
                  "w_up": randn(gen, 2, 3, dtype=F32), "bias": randn(gen, 3, dtype=F32)}, {"tau": 4.0})]


def _gates_hidden(gen):
    return [Case({"x": randn(gen, 1, 3), "w_down": randn(gen, 3, 1), "w_up": randn(gen, 1, 2), "bias": randn(gen, 2)}),
            Case({"x": strided(randn(gen, 2, 7, 6)), "w_down": randn(gen, 6, 3), "w_up": randn(gen, 3, 5),
                  "bias": randn(gen, 5)}, {"tau": 1.0})]


def _gates_mistakes():
    gates = gla.gla_gates
    tau = lambda c: c.options.get("tau", 16.0)  # noqa: E731
    return (
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


def _gla_cases(gen):
    s = small_qkv()
    g = torch.tensor([[-0.5, -1.0], [-1.0, 0.0], [-0.5, -0.5]], dtype=F64)
    return [Case({**s, "g": g}, {"scale": 1.0}, "hand-checkable"),
            Case(with_gates(gen, qkv(gen, (), 6, 4, 3))),
            Case(with_gates(gen, qkv(gen, (2, 2), 5, 3, 3, dtype=F32)))]


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
        Mistake("the log-gates are used as gates: g = log(alpha) <= 0, so the decay is exp(g), not g itself"
                " (stay in log space: exp(b_i - b_j))", gates_as_alpha),
        Mistake("the gates are ignored: each step must decay the old state by alpha_t = exp(g_t)",
                lambda c: call(fn, c, g=torch.zeros_like(c.inputs["g"]))),
        Mistake("the gate exponent is off by one: the gate decays the old state before k_t^T v_t is added, so the"
                " newest token is not decayed", lambda c: call(fn, c, k=c.inputs["k"] * c.inputs["g"].exp())),
        Mistake("the gate is applied along d_v; alpha_t has one entry per key dimension (the rows of S, d_k)",
                gate_on_values),
    )


def _tau_factors(case):
    return {case.options.get("tau", 16.0): "the temperature is missing: divide by tau"}


EXERCISES = [
    exercise(gla.gla_gates, _gates_cases, _gates_hidden, points=2, factors=_tau_factors, mistakes=_gates_mistakes(),
             answers=(gla.gla_gates,)),
    exercise(gla.gla_recurrent, _gla_cases, _gla_state_hidden(gla.gla_recurrent), points=3, causal=True,
             seq_inputs=GLA_SEQ, factors=scale_factors, mistakes=_gla_mistakes(gla.gla_recurrent),
             answers=LINEAR_FORMS),
    exercise(gla.gla_parallel, _gla_cases, _gla_hidden, points=3, causal=True, seq_inputs=GLA_SEQ,
             factors=scale_factors, mistakes=_gla_mistakes(gla.gla_parallel), answers=LINEAR_FORMS),
]
