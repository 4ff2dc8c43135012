"""The exercises of notebook 03: feature maps and kernelized linear attention."""
import torch
import torch.nn.functional as F

import linattn_ref as ref
from linattn_ref import linear_attention

from ..exercise import (
    ATTN_SEQ,
    F32,
    F64,
    LINEAR_FORMS,
    Case,
    Mistake,
    exercise,
    randn,
    scale_factors,
    strided,
)
from ..shared import linear_attention_cases, linear_attention_hidden, linear_attention_mistakes
from ..structure import no_square_matrix

NOTEBOOK = "03_linear_attention"


def _elu_cases(gen):
    return [Case({"x": torch.tensor([[-2.0, -0.5, 0.0], [0.5, 1.0, 3.0]], dtype=F64)}, note="hand-checkable"),
            Case({"x": randn(gen, 5, 4, dtype=F32)}),
            Case({"x": strided(randn(gen, 2, 3, 4, 5) * 10)}, note="large values, any shape")]


def _elu_hidden(gen):
    return [Case({"x": randn(gen, 2, 3, 4, 5)}), Case({"x": strided(randn(gen, 6, 3, dtype=F32))}),
            Case({"x": torch.tensor([-30.0, -1e-3, 1e-3, 30.0], dtype=F64)})]


def _elu_mistakes():
    return (
        Mistake("forgot the + 1: elu(x) is negative for x < 0, phi must be positive", lambda c: F.elu(c.inputs["x"])),
        Mistake("relu(x) + 1 is not elu(x) + 1: below 0, elu(x) = exp(x) - 1", lambda c: torch.relu(c.inputs["x"]) + 1),
        Mistake("exp(x) is a different feature map; phi(x) = elu(x) + 1", lambda c: c.inputs["x"].exp()),
        Mistake("x + 1 is elu(x) + 1 only for x >= 0; below 0, elu(x) = exp(x) - 1", lambda c: c.inputs["x"] + 1),
    )


EXERCISES = [
    exercise(ref.elu_plus_one, _elu_cases, _elu_hidden, points=1, time_dims=None, mistakes=_elu_mistakes(),
             answers=(ref.elu_plus_one,)),
    exercise(linear_attention.linear_attention_noncausal, linear_attention_cases, linear_attention_hidden, points=2,
             factors=scale_factors, answers=LINEAR_FORMS,
             mistakes=linear_attention_mistakes(linear_attention.linear_attention_noncausal, causal=False),
             structure=(no_square_matrix(why="the point of this form is to sum k'^T v first, a d_k x d_v matrix,"
                                             " so the cost grows like T, not T^2: never form a T x T matrix"),)),
    exercise(linear_attention.linear_attention_parallel, linear_attention_cases, linear_attention_hidden, points=2,
             causal=True, seq_inputs=ATTN_SEQ, factors=scale_factors, answers=LINEAR_FORMS,
             mistakes=linear_attention_mistakes(linear_attention.linear_attention_parallel)),
]
