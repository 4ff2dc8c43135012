"""The exercises of notebook 09: the learner's own Triton kernels, from a row sum to chunked GLA.

The learner writes each kernel's body; the notebook gives the launcher, a function with the signature below
that moves the inputs to the kernel's device, launches the kernel and hands the result back on the caller's
device. The check calls that launcher on CPU tensors in float32 (Triton's CPU interpreter computes bfloat16
wrongly, and float64 is not what GPU kernels are written for), so the cases are float32 with sizes a kernel
meets: lengths that are not a multiple of the chunk, head sizes that are not powers of two, several sequences.

The references compose linattn_ref in float64 and round the result to the input's dtype once, so a correct
float32 kernel differs from them by its own rounding only.
"""
import torch

from linattn_ref import chunk, gla, linear_attention, retnet

from ..exercise import (
    ATTN_SEQ,
    F32,
    GLA_SEQ,
    LINEAR_FORMS,
    Case,
    Mistake,
    anti_causal,
    call,
    exercise,
    gate_on_values,
    gates_as_alpha,
    log_gates,
    randn,
    scale_factors,
    strided,
    undecayed_carry,
)
from ..shared import gla_as_core, retention_as_core, retention_factors

NOTEBOOK = "09_triton"

F64 = torch.float64
BLOCK_K = 16  # the reduction tile of the notebook's matmul launcher


# ---------------------------------------------------------------- references


def row_sum_triton(x):
    """out[m] = sum_n x[m, n] for x [M, N]; returns [M] in x's dtype."""
    return x.to(F64).sum(-1).to(x.dtype)


def matmul_triton(a, b):
    """a [M, K] @ b [K, N] -> [M, N] in a's dtype."""
    return (a.to(F64) @ b.to(F64)).to(a.dtype)


def intra_chunk_triton(q, k, v, chunk_size=16):
    """Each chunk's own causal block ((q_c k_c^T) * M) v_c, chunks side by side, nothing carried between them."""
    return _per_chunk(q, k, v, chunk_size, chunk.intra_chunk_scores)


def linear_attention_triton(q, k, v, chunk_size=16):
    """Causal linear attention o_i = q_i sum_{j <= i} k_j^T v_j (no feature map, no denominator, no scale)."""
    o = linear_attention.linear_attention_chunk(*_f64(q, k, v), feature_map=None, normalize=False, scale=1.0,
                                                chunk_size=chunk_size)
    return o.to(q.dtype)


def retention_triton(q, k, v, gamma, scale=None, chunk_size=16):
    """Retention S_t = gamma S_{t-1} + k_t^T v_t, o_t = scale q_t S_t; gamma a float or one per head [H]."""
    gamma = gamma.to(F64) if isinstance(gamma, torch.Tensor) else gamma
    return retnet.retention_chunk(*_f64(q, k, v), gamma, scale, chunk_size).to(q.dtype)


def gla_triton(q, k, v, g, scale=None, chunk_size=16):
    """GLA S_t = Diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t; g the log-gates, shaped like k."""
    return gla.gla_chunk(*_f64(q, k, v, g), scale, chunk_size).to(q.dtype)


def _f64(*xs):
    return [x.to(F64) for x in xs]


def _per_chunk(q, k, v, chunk_size, scores):
    """scores(q_c, k_c) @ v_c for every chunk, in float64, concatenated along time (no state between chunks)."""
    q64, k64, v64 = _f64(q, k, v)
    parts = [scores(q64[..., s:e, :], k64[..., s:e, :]) @ v64[..., s:e, :]
             for s, e in chunk.chunk_boundaries(q.shape[-2], chunk_size)]
    return torch.cat(parts, dim=-2).to(q.dtype)


# ---------------------------------------------------------------- cases


def _x(gen, *shape):
    return randn(gen, *shape, dtype=F32)


def _qkv(gen, lead, T, d_k, d_v, contiguous=True):
    """q scaled by d_k^-1/2 so that the scores are of order 1, as they are inside attention."""
    q, k, v = _x(gen, *lead, T, d_k) * d_k ** -0.5, _x(gen, *lead, T, d_k), _x(gen, *lead, T, d_v)
    if not contiguous:
        q, k, v = strided(q), strided(k), strided(v)
    return {"q": q, "k": k, "v": v}


def _row_sum_cases(gen):
    return [Case({"x": torch.arange(12, dtype=F32).reshape(3, 4)}, note="hand-checkable: 6, 22, 38"),
            Case({"x": _x(gen, 37, 100)}, note="N = 100 is not a power of two"),
            Case({"x": _x(gen, 33, 20).T}, note="a transposed view: stored column by column, strides (1, 20)")]


def _row_sum_hidden(gen):
    return [Case({"x": _x(gen, 1, 1)}), Case({"x": strided(_x(gen, 7, 40))}, note="stored column by column"),
            Case({"x": _x(gen, 5, 300)})]


def _matmul_cases(gen):
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    return [Case({"a": a, "b": b}, note="hand-checkable: [[4, 5], [10, 11]]"),
            Case({"a": _x(gen, 37, 50), "b": _x(gen, 50, 19)}, note="K = 50: four tiles of 16, the last one partial"),
            Case({"a": strided(_x(gen, 20, 24)), "b": strided(_x(gen, 24, 17))},
                 note="a and b stored column by column: the kernel must use their strides")]


def _matmul_hidden(gen):
    return [Case({"a": _x(gen, 1, 1), "b": _x(gen, 1, 1)}),
            Case({"a": strided(_x(gen, 30, 40)), "b": strided(_x(gen, 40, 23))},
                 note="a and b stored column by column"),
            Case({"a": _x(gen, 33, 64), "b": _x(gen, 64, 40)})]


def _attn_cases(gen, extra=lambda x, n: x, options=lambda n: {}):
    """Sequences as a chunk kernel meets them: a short last chunk, d_k != d_v, d not a power of two, a batch of
    heads (B = 2 sequences of each of H = 2 heads: program n works on head n % H)."""
    shapes = [((), 37, 16, 16, 16), ((2, 2), 64, 32, 24, 16)]
    return [Case(extra(_qkv(gen, lead, T, dk, dv), n), {**options(n), "chunk_size": C}, f"T={T}, chunk_size={C}")
            for n, (lead, T, dk, dv, C) in enumerate(shapes)]


def _attn_hidden(gen, extra=lambda x, n: x, options=lambda n: {}):
    shapes = [((), 1, 16, 16, 16, True), ((2, 3), 23, 20, 12, 16, False), ((), 50, 16, 16, 32, True),
              ((3,), 61, 16, 32, 16, True)]
    return [Case(extra(_qkv(gen, lead, T, dk, dv, contiguous), n), {**options(n), "chunk_size": C},
                 f"T={T}, chunk_size={C}")
            for n, (lead, T, dk, dv, C, contiguous) in enumerate(shapes)]


def _gamma(n, x):
    """A float decay, or one per head when q is [B, H, T, d]."""
    H = x["q"].shape[-3] if x["q"].ndim >= 3 else 1
    return torch.linspace(0.6, 0.95, H, dtype=F64) if n % 2 else 0.9


def _with_gamma(x, n):
    return {**x, "gamma": _gamma(n, x)}


def _ret_options(n):
    return {"scale": 0.4} if n == 1 else {}


def _with_gates(gen):
    def extra(x, n):
        return {**x, "g": log_gates(gen, *x["k"].shape, dtype=F32)}
    return extra


def _strong_gates(gen, T, value):
    strong = _qkv(gen, (), T, 16, 16)
    strong["g"] = torch.full_like(strong["k"], value)
    return Case(strong, {"chunk_size": 32}, f"strong decay: log-gates of {value}, T={T}, chunk_size=32: exp(-b_j)"
                                            " overflows float32 within one chunk")


def _gla_cases(gen):
    return _attn_cases(gen, _with_gates(gen), lambda n: {"scale": 0.3} if n == 1 else {}) + [
        _strong_gates(gen, 40, -3.5)]


def _gla_hidden(gen):
    return _attn_hidden(gen, _with_gates(gen), lambda n: {"scale": 0.3} if n == 1 else {}) + [
        _strong_gates(gen, 45, -4.0)]


# ---------------------------------------------------------------- mistakes


def _as_strided_sum(x, stride_row, stride_col):
    return row_sum_triton(torch.as_strided(x, x.shape, (stride_row, stride_col), x.storage_offset()))


def _row_sum_mistakes():
    def strides_ignored(c):
        x = c.inputs["x"]
        return None if x.is_contiguous() else _as_strided_sum(x, x.shape[1], 1)

    def column_stride_ignored(c):
        x = c.inputs["x"]
        return None if x.stride(1) == 1 else _as_strided_sum(x, x.stride(0), 1)

    def only_row_zero(c):
        x = c.inputs["x"]
        out = torch.zeros(x.shape[0], dtype=x.dtype)
        out[0] = row_sum_triton(x[:1])[0]
        return None if x.shape[0] < 2 else out

    return (
        Mistake("the strides are ignored: element (m, n) is at x + m * stride_row + n * stride_col, and here the"
                " rows are not stored one after the other", strides_ignored),
        Mistake("the column stride is ignored: element (m, n) is at x + m * stride_row + n * stride_col, and here"
                " the columns are not next to each other in memory", column_stride_ignored),
        Mistake("every program works on row 0, and the other rows are never written: the grid is (M,), so program m"
                " gets m = tl.program_id(0)", only_row_zero),
    )


def _matmul_mistakes():
    def k_tiles(pick):
        def make(c):
            a, b = c.inputs["a"], c.inputs["b"]
            starts = list(range(0, a.shape[1], BLOCK_K))
            if len(starts) < 2:
                return None
            s = pick(starts)
            return matmul_triton(a[:, s:s + BLOCK_K], b[s:s + BLOCK_K])
        return make

    return (
        Mistake("only the first tile of the reduction is summed: loop over K in steps of BK and add each tile's"
                " product to the accumulator", k_tiles(lambda starts: starts[0])),
        Mistake("only the last tile of the reduction survives: create the accumulator once, before the loop, and"
                " add to it (acc += tl.dot(...)) instead of replacing it", k_tiles(lambda starts: starts[-1])),
        Mistake("the strides are ignored: element (i, j) of a is at a + i * stride_am + j * stride_ak",
                lambda c: None if c.inputs["a"].is_contiguous() and c.inputs["b"].is_contiguous() else
                matmul_triton(*(torch.as_strided(x, x.shape, (x.shape[1], 1), x.storage_offset())
                                for x in (c.inputs["a"], c.inputs["b"])))),
    )


def _mask_mistakes(carry):
    """The causal mask inside a chunk got wrong; the state part (when there is one) right."""
    def with_intra(scores):
        def make(c):
            q, k, v = (c.inputs[n] for n in "qkv")
            C = c.options["chunk_size"]
            out = _per_chunk(q, k, v, C, scores)
            if carry:  # add what the carried state contributes, which these slips leave correct
                out = out + (linear_attention_triton(q, k, v, C) - intra_chunk_triton(q, k, v, C))
            return out
        return make

    return (
        Mistake("upper triangle: inside a chunk, query i sees keys j <= i (rows[:, None] >= rows[None, :])",
                with_intra(lambda qc, kc: (qc @ kc.mT).triu())),
        Mistake("off-by-one mask: the diagonal is masked too (j < i instead of j <= i); position i sees itself",
                with_intra(lambda qc, kc: (qc @ kc.mT).tril(-1))),
        Mistake("future tokens leak: inside a chunk the scores with j > i must be set to 0 (tl.where) before"
                " multiplying by v", with_intra(lambda qc, kc: qc @ kc.mT)),
    )


def _state_mistakes():
    def state_after(c, transpose=False, include_chunk=False):
        q, k, v = _f64(*(c.inputs[n] for n in "qkv"))
        C, T = c.options["chunk_size"], q.shape[-2]
        if transpose and k.shape[-1] != v.shape[-1]:
            return None
        parts = []
        for s, e in chunk.chunk_boundaries(T, C):
            upto = e if include_chunk else s
            S = k[..., :upto, :].mT @ v[..., :upto, :]  # the sum of k_j^T v_j over the keys the state holds
            S = S.mT if transpose else S
            parts.append(chunk.intra_chunk_scores(q[..., s:e, :], k[..., s:e, :]) @ v[..., s:e, :] + q[..., s:e, :] @ S)
        return torch.cat(parts, dim=-2).to(c.inputs["q"].dtype)

    return (
        Mistake("the state is not carried across chunks: each chunk must also read q_c S, the sum of k_j^T v_j over"
                " all earlier chunks (the output matches attention restricted to each chunk)",
                lambda c: call(intra_chunk_triton, c)),
        Mistake("the state is updated before it is read: o_c = (masked scores) v_c + q_c S uses S of the earlier"
                " chunks only; add k_c^T v_c to S after computing o_c", lambda c: state_after(c, include_chunk=True)),
        Mistake("the state is the wrong way round: S = sum_j k_j^T v_j is [d_k, d_v], and the output reads q_c S",
                lambda c: state_after(c, transpose=True)),
    )


def _chunk_local(fn, seq):
    """fn on each chunk separately, outputs concatenated: nothing carried from one chunk to the next."""
    def make(c):
        C, T = c.options["chunk_size"], c.inputs["q"].shape[-2]
        parts = [fn(**{n: x[..., s:e, :] if n in seq else x for n, x in c.inputs.items()}, **c.options)
                 for s, e in chunk.chunk_boundaries(T, C)]
        return torch.cat(parts, dim=-2)
    return Mistake("the state is not carried across chunks: each chunk must also read the (decayed) state of all"
                   " earlier chunks (the output matches attention restricted to each chunk)", make)


def _retention_last_off_by_one(c):
    """The chunk loop with b_last = (L - 1) log(gamma) for a chunk of L real rows: the state decays by gamma^(L-1)
    per chunk and key j enters it with gamma^(L-2-j), one step short of gamma^L and gamma^(L-1-j)."""
    q, k, v = _f64(*(c.inputs[n] for n in "qkv"))
    q = q * retention_scale(c)
    gamma = c.inputs["gamma"]
    lg = gamma.to(F64).log().view(-1, 1) if isinstance(gamma, torch.Tensor) else torch.tensor(gamma, dtype=F64).log()
    S, outs = torch.zeros(k.shape[-1], v.shape[-1], dtype=F64), []
    for s, e in chunk.chunk_boundaries(q.shape[-2], c.options["chunk_size"]):
        qc, kc, vc = q[..., s:e, :], k[..., s:e, :], v[..., s:e, :]
        b = torch.arange(1, e - s + 1, dtype=F64) * lg  # [..., L]: b_i = (i + 1) log(gamma), right
        b_last = (e - s - 1) * lg  # the slip: one step short
        causal = torch.ones(e - s, e - s, dtype=torch.bool).tril()
        decay = torch.where(causal, (b[..., :, None] - b[..., None, :]).exp(), 0.0)
        outs.append(((qc @ kc.mT) * decay) @ vc + (qc * b.exp()[..., None]) @ S)
        S = b_last.exp()[..., None] * S + (kc * (b_last - b).exp()[..., None]).mT @ vc
    return torch.cat(outs, dim=-2).to(c.inputs["q"].dtype)


def retention_scale(c):
    scale = c.options.get("scale")
    return c.inputs["q"].shape[-1] ** -0.5 if scale is None else scale


def _ret_mistakes():
    fn = retention_triton

    def times_gamma(power):
        def make(c):
            o = fn(**c.inputs, **c.options)
            gamma = c.inputs["gamma"]
            gamma = retnet.per_head(gamma, o.dtype)
            return o * gamma ** power
        return make

    def head_zero(c):
        gamma = c.inputs["gamma"]
        if not isinstance(gamma, torch.Tensor) or gamma.numel() < 2:
            return None
        return call(fn, c, gamma=float(gamma[0]))

    return (
        _chunk_local(fn, ATTN_SEQ),
        Mistake("the carried state is not decayed inside the chunk: position i reads S through q_i gamma^(i+1),"
                " the decay from the chunk's start to i", undecayed_carry(retention_as_core)),
        Mistake("there is no decay: the scores inside a chunk decay by gamma^(i-j) and the state by gamma per step",
                lambda c: call(fn, c, gamma=1.0)),
        Mistake("every head uses the decay of head 0: program n works on head n % H: tl.load(log_gamma + n % H)",
                head_zero),
        Mistake("the gamma exponent is off by one: the newest token weighs gamma^0 = 1", times_gamma(1)),
        Mistake("the gamma exponent is off by one: the newest token weighs gamma^0 = 1", times_gamma(-1)),
        Mistake("upper triangle: the decayed scores are kept above the diagonal instead of below",
                anti_causal(fn, ATTN_SEQ)),
        Mistake("the decay exponent is off by one at the end of the chunk: a chunk of L real rows decays the state"
                " by gamma^L = exp(b_last) with b_last = L log(gamma) (tl.minimum(T - start, BT) * log_gamma), and"
                " key j enters it with gamma^(L-1-j) = exp(b_last - b_j)", _retention_last_off_by_one),
    )


def _gla_mistakes():
    fn = gla_triton
    return (
        _chunk_local(fn, GLA_SEQ),
        Mistake("the carried state is not decayed inside the chunk: position i reads S through q_i * exp(b_i),"
                " the decay from the chunk's start to i", undecayed_carry(gla_as_core)),
        Mistake("the gates are ignored: the state must decay by exp(g_t) at every step",
                lambda c: call(fn, c, g=torch.zeros_like(c.inputs["g"]))),
        Mistake("the log-gates are used as gates: g = log(alpha) <= 0, so the decay is exp(g), not g itself"
                " (stay in log space: exp(b_i - b_j))", gates_as_alpha),
        Mistake("the gate exponent is off by one: the newest token is not decayed (b is the cumulative sum up to and"
                " including i, and the decay from j to i is exp(b_i - b_j))",
                lambda c: call(fn, c, k=c.inputs["k"] * c.inputs["g"].exp())),
        Mistake("the gate is applied along d_v; alpha_t has one entry per key dimension (the rows of S, d_k)",
                gate_on_values),
    )


TRITON_ANSWERS = LINEAR_FORMS + (row_sum_triton, matmul_triton, intra_chunk_triton, linear_attention_triton,
                                 retention_triton, gla_triton)


EXERCISES = [
    exercise(row_sum_triton, _row_sum_cases, _row_sum_hidden, points=2, time_dims=None, time_word="row",
             mistakes=_row_sum_mistakes(), answers=(row_sum_triton,)),
    exercise(matmul_triton, _matmul_cases, _matmul_hidden, points=2, time_dims=None, mistakes=_matmul_mistakes(),
             answers=(matmul_triton,)),
    exercise(intra_chunk_triton, _attn_cases, _attn_hidden, points=2, causal=True, seq_inputs=ATTN_SEQ,
             mistakes=_mask_mistakes(carry=False) + (
                 Mistake("this kernel computes each chunk's own block only: the chunks do not see each other here"
                         " (carrying a state between them is the next exercise)",
                         lambda c: call(linear_attention_triton, c)),),
             answers=TRITON_ANSWERS),
    exercise(linear_attention_triton, _attn_cases, _attn_hidden, points=3, causal=True, seq_inputs=ATTN_SEQ,
             mistakes=_state_mistakes() + _mask_mistakes(carry=True), answers=TRITON_ANSWERS),
    exercise(retention_triton, lambda gen: _attn_cases(gen, _with_gamma, _ret_options),
             lambda gen: _attn_hidden(gen, _with_gamma, _ret_options), points=3, causal=True, seq_inputs=ATTN_SEQ,
             factors=retention_factors, mistakes=_ret_mistakes(), answers=TRITON_ANSWERS),
    exercise(gla_triton, _gla_cases, _gla_hidden, points=3, causal=True,
             seq_inputs=GLA_SEQ, factors=scale_factors, mistakes=_gla_mistakes(), answers=TRITON_ANSWERS),
]
