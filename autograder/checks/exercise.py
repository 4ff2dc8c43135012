"""What an exercise is: its cases, the mistakes it recognises, and helpers to draw inputs and build mistakes.

An exercise id is the name of the function the learner writes; its reference is the `linattn_ref`
function of that name. Each exercise knows how to draw its cases (seeded, so every run sees the same
ones), whether its output is causal (so the future-leak probe applies), which `linattn_ref` functions
count as the answer (the learner may not call them), and the mistakes it can recognise by name.

A mistake is an "alternative reference": a function of the case giving the output a particular wrong
idea produces (the mask the wrong way up, the denominator forgotten, the chunk state dropped...). When a
learner's output matches one, the check names the mistake. The exercises themselves are in `notebooks/`,
one module per notebook.
"""
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F

from linattn_ref import chunk, gla, linear_attention, memory, retnet, softmax_attention
from linattn_ref.tolerances import ELEMENTWISE

from .observation import decode, encode

F64, F32 = torch.float64, torch.float32

# Keyword arguments a learner's version may leave out; cases using them run only if the function takes them.
OPTIONAL_PARAMS = ("eps", "initial_state", "output_final_state", "initial")
GATE_INPUTS = ("g", "a")  # inputs that must stay in range when perturbed (log-gates <= 0, scan factors)


@dataclass
class Case:
    """One call: positional inputs by the reference's parameter names (in order) and keyword options."""

    inputs: dict
    options: dict = field(default_factory=dict)
    note: str = ""

    def describe(self):
        parts = [f"{name}={_describe(x)}" for name, x in self.inputs.items()]
        parts += [f"{name}={_describe(x)}" for name, x in self.options.items()]
        return ", ".join(parts) + (f" ({self.note})" if self.note else "")

    def optional_params(self):
        return [name for name in self.options if name in OPTIONAL_PARAMS]

    def to_payload(self):
        """The case as plain data (see observation.py): it travels to a grading kernel and back."""
        return {"inputs": encode(self.inputs), "options": encode(self.options), "note": self.note}

    @classmethod
    def from_payload(cls, data):
        return cls(decode(data["inputs"]), decode(data["options"]), str(data.get("note", "")))


def _describe(x):
    if isinstance(x, torch.Tensor):
        layout = "" if x.is_contiguous() else " non-contiguous"
        return f"<{list(x.shape)} {str(x.dtype).replace('torch.', '')}{layout}>"
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(_describe(e) for e in x) + ")"
    if callable(x):
        return getattr(x, "__name__", type(x).__name__)
    return repr(x)


@dataclass
class Mistake:
    """A named wrong idea: `make(case)` computes the output it would give."""

    message: str
    make: object


@dataclass
class Exercise:
    name: str
    reference: object
    visible_cases: object  # generator -> [Case]: a few fixed hand-checkable cases and a few random ones
    hidden_cases: object  # generator -> [Case]: held-out edge cases
    points: int
    causal: bool = False  # output position i may depend on inputs at positions <= i only
    answers: tuple = ()  # linattn_ref functions that compute this answer; calling them fails the check
    mistakes: tuple = ()
    seq_inputs: dict = field(default_factory=dict)  # input name -> its time axis (perturbed by the leak probe)
    time_dims: object = -2  # the output's time axis (a tuple for tuple outputs; None where it has none)
    time_word: str = "query"  # how a position on the time axis is called in messages
    output_names: tuple = None
    factors: object = None  # case -> {factor: message}: what an output off by a constant factor means
    structure: tuple = ()  # structure.Rule: how a right result must be computed (token by token, no T x T, ...)
    randomized: bool = False  # a random result (a data generator): judged by its structure rules, not value by value

    @property
    def tolerance(self):
        """{dtype of the expected result: (rtol, atol)}: the course's one table, linattn_ref.tolerances."""
        return ELEMENTWISE

    @cached_property
    def _cases(self):
        return self._draw(None)

    def _draw(self, seed):
        """The cases drawn from a generator seeded by the exercise's name, or by seed (other random values)."""
        gen = torch.Generator().manual_seed(zlib.crc32(self.name.encode()) if seed is None else seed)
        return self.visible_cases(gen), self.hidden_cases(gen)

    def cases(self, hidden=False, seed=None):
        """The visible cases (and the held-out ones). seed None gives the fixed cases of self-study; another
        seed keeps the hand-checkable cases and draws new random values of the same sizes."""
        visible, held_out = self._cases if seed is None else self._draw(seed)
        return list(visible) + list(held_out) if hidden else list(visible)

    def __repr__(self):
        return f"Exercise({self.name!r}, reference=linattn_ref.{self.reference.__name__}, points={self.points})"


def exercise(fn, visible, hidden, points, **kw):
    """The Exercise whose reference is the linattn_ref function fn (its id is fn's name)."""
    return Exercise(fn.__name__, fn, visible, hidden, points, **kw)


# ---------------------------------------------------------------- drawing inputs

def randn(gen, *shape, dtype=F64):
    return torch.randn(*shape, generator=gen, dtype=F64).to(dtype)


def log_gates(gen, *shape, dtype=F64):
    """GLA log-gates g = log(sigmoid(z)) <= 0, gates alpha around 0.7-0.95."""
    return F.logsigmoid(randn(gen, *shape) + 2.0).to(dtype)


def strided(x):
    """The same values in a non-contiguous layout (last two axes stored transposed)."""
    return x.mT.contiguous().mT if x.ndim >= 2 else torch.stack([x, x], -1)[..., 0]


def qkv(gen, lead=(), T=5, d_k=4, d_v=None, dtype=F64, contiguous=True):
    d_v = d_k if d_v is None else d_v
    q, k, v = (randn(gen, *lead, T, d, dtype=dtype) for d in (d_k, d_k, d_v))
    if not contiguous:
        q, k, v = strided(q), strided(k), strided(v)
    return {"q": q, "k": k, "v": v}


def small_qkv():
    """Hand-checkable integers: T=3, d=2."""
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64)
    k = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=F64)
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=F64)
    return {"q": q, "k": k, "v": v}


def with_gates(gen, inputs):
    k = inputs["k"]
    return {**inputs, "g": log_gates(gen, *k.shape, dtype=k.dtype)}


# ---------------------------------------------------------------- helpers for mistakes

def call(fn, case, **override):
    """fn called with the case's arguments by name, some replaced."""
    return fn(**{**case.inputs, **case.options, **override})


def output_only(case):
    """The case's options without output_final_state (mistakes compare the output o)."""
    return {k: v for k, v in case.options.items() if k != "output_final_state"}


def anti_causal(fn, seq, out_dims=(-2,)):
    """fn run on the time-reversed sequence, reversed back: the same rule with the upper triangle."""
    def make(case):
        inputs = {n: (x.flip(seq[n]) if n in seq and isinstance(x, torch.Tensor) else x)
                  for n, x in case.inputs.items()}
        return fn(**inputs, **output_only(case)).flip(out_dims)
    return make


def chunk_local(fn, seq):
    """fn run on each chunk separately and concatenated: the state is not carried across chunk boundaries."""
    def make(case):
        C = case.options["chunk_size"]
        T = case.inputs["q"].shape[-2]
        outs = []
        for start, end in chunk.chunk_boundaries(T, C):
            inputs = {n: (x[..., start:end, :] if n in seq and x is not None else x)
                      for n, x in case.inputs.items()}
            outs.append(fn(**inputs, **{**output_only(case), "initial_state": None}))
        return torch.cat(outs, dim=-2)
    return make


def undecayed_carry(gated_inputs):
    """Chunked output whose carried state reaches each position without the decay since the chunk's start.

    gated_inputs(case) -> (q, k, v, g, scale) of the case as the gated chunk core takes them.
    """
    core = chunk.chunk_gated_linear_attention

    def make(case):
        q, k, v, g, scale = gated_inputs(case)
        if g is None:
            return None
        C, T = case.options["chunk_size"], q.shape[-2]
        outs = []
        for start, end in chunk.chunk_boundaries(T, C):
            local = core(q[..., start:end, :], k[..., start:end, :], v[..., start:end, :], g[..., start:end, :],
                         scale, C)
            if start:
                _, S = core(q[..., :start, :], k[..., :start, :], v[..., :start, :], g[..., :start, :], scale, C,
                            output_final_state=True)
                local = local + (q[..., start:end, :] * scale) @ S
            outs.append(local)
        return torch.cat(outs, dim=-2)
    return make


def d_k_of(case):
    return next(x for n, x in case.inputs.items() if n in ("q", "qp", "qp_t", "q_t")).shape[-1]


def scale_of(case):
    scale = case.options.get("scale")
    return d_k_of(case) ** -0.5 if scale is None else scale


def scale_factors(case):
    s = scale_of(case)
    return {1 / s: f"missing the scale: multiply the scores by scale = d_k ** -0.5 (here {s:.4g});"
                   " the result is too large by exactly 1/scale",
            s: "the scale is applied twice (once to q and once to the scores?)"}


def gamma_like(case, out):
    """gamma broadcast against an output [..., H, T, d]: a float, or [H] viewed as [H, 1, 1]."""
    return retnet.per_head(case.inputs["gamma"], out.dtype)


def gates_as_alpha(case):
    """S_t = g_t * S_{t-1} + k_t^T v_t: the log-gates used as if they were the gates alpha themselves."""
    q, k, v, g = (case.inputs[n] for n in "qkvg")
    q = q * scale_of(case)
    kv = k.unsqueeze(-1) * v.unsqueeze(-2)  # [..., T, d_k, d_v]
    S = memory.linear_scan_sequential(g.unsqueeze(-1).movedim(-3, 0), kv.movedim(-3, 0)).movedim(0, -3)
    return (q.unsqueeze(-2) @ S).squeeze(-2)


def gate_on_values(case):
    """The gate broadcast along d_v (columns of S) instead of d_k (rows)."""
    q, k, v, g = (case.inputs[n] for n in "qkvg")
    kv = k.unsqueeze(-1) * v.unsqueeze(-2)
    S = memory.linear_scan_sequential(g.exp().unsqueeze(-2).movedim(-3, 0), kv.movedim(-3, 0)).movedim(0, -3)
    return ((q * scale_of(case)).unsqueeze(-2) @ S).squeeze(-2)


ATTN_SEQ = {"q": -2, "k": -2, "v": -2}
GLA_SEQ = {**ATTN_SEQ, "g": -2}

# The forms of one computation: calling any of them gives the answer away.
SOFTMAX_FORMS = (softmax_attention.softmax_attention_parallel, softmax_attention.softmax_attention_recurrent)
LINEAR_FORMS = (
    linear_attention.linear_attention_noncausal, linear_attention.linear_attention_parallel,
    linear_attention.linear_attention_recurrent, linear_attention.linear_attention_chunk,
    retnet.retention_parallel, retnet.retention_recurrent, retnet.retention_chunk,
    gla.gla_parallel, gla.gla_parallel_naive, gla.gla_recurrent, gla.gla_chunk,
    chunk.chunk_gated_linear_attention, chunk.intra_chunk_scores, chunk.chunk_states,
)
