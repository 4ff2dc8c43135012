"""Wrong answers to notebook 09: the learner's Triton kernels, each launched the way the notebook launches it.

Each kernel takes compile-time flags (constexpr) that put in one slip a learner makes; with every flag off it
is the correct kernel. CORRECT (exercise id -> launcher) holds right answers written differently from the
notebook's solutions, for tests that need one.
Without a GPU the kernels run in Triton's interpreter, which must be on before they are defined.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ.setdefault("TRITON_FRONT_END_DEBUGGING", "1")  # errors inside a kernel raised as themselves

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from . import default_scale, wrong  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# the causal mask inside a chunk: right (j <= i), the upper triangle, the diagonal dropped, none at all
MASK_RIGHT, MASK_UPPER, MASK_STRICT, MASK_NONE = 0, 1, 2, 3


def _tile(n):
    return max(16, triton.next_power_of_2(n))


def _sequences(*xs):
    return [x.reshape(-1, *x.shape[-2:]).to(DEVICE).contiguous() for x in xs]


# ---------------------------------------------------------------- row_sum_triton


@triton.jit
def _row_sum_kernel(x, out, N, stride_row, stride_col, BLOCK: tl.constexpr, ROW_STRIDE_N: tl.constexpr,
                    UNIT_COLUMNS: tl.constexpr, AXIS_1: tl.constexpr, NO_MASK: tl.constexpr):
    m = tl.program_id(1) if AXIS_1 else tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    row = m * N if ROW_STRIDE_N else m * stride_row
    step = 1 if UNIT_COLUMNS else stride_col
    if NO_MASK:  # the lanes past N read on into the next row, and past the end of x on the last
        values = tl.load(x + row + cols * step)
    else:
        values = tl.load(x + row + cols * step, mask=cols < N, other=0.0)
    tl.store(out + m, tl.sum(values, axis=0))


def _row_sum(x, row_stride_n=False, unit_columns=False, axis_1=False, no_mask=False):
    M, N = x.shape
    x_dev = x.to(DEVICE)
    out = torch.zeros(M, dtype=x.dtype, device=DEVICE)
    _row_sum_kernel[(M,)](x_dev, out, N, x_dev.stride(0), x_dev.stride(1), BLOCK=triton.next_power_of_2(N),
                          ROW_STRIDE_N=row_stride_n, UNIT_COLUMNS=unit_columns, AXIS_1=axis_1, NO_MASK=no_mask)
    return out.to(x.device)


@wrong("row_sum_triton", "strides are ignored")
def row_sum_as_if_contiguous(x):
    return _row_sum(x, row_stride_n=True, unit_columns=True)


@wrong("row_sum_triton", "column stride is ignored")
def row_sum_contiguous_columns(x):
    return _row_sum(x, unit_columns=True)


@wrong("row_sum_triton", "every program works on row 0")
def row_sum_wrong_axis(x):
    return _row_sum(x, axis_1=True)


@wrong("row_sum_triton", "a load 28 elements past the end of `x`")
def row_sum_unmasked_load(x):
    return _row_sum(x, no_mask=True)


# ---------------------------------------------------------------- matmul_triton


@triton.jit
def _matmul_kernel(a, b, c, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, BM: tl.constexpr,
                   BN: tl.constexpr, BK: tl.constexpr, ONE_TILE: tl.constexpr, RESET: tl.constexpr,
                   CONTIGUOUS: tl.constexpr, STORE_UNMASKED: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    if CONTIGUOUS:  # as if every tensor were stored row by row
        stride_am, stride_ak, stride_bk, stride_bn = K, 1, N, 1
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for start in range(0, BK if ONE_TILE else K, BK):
        ks = start + tl.arange(0, BK)
        a_tile = tl.load(a + rows[:, None] * stride_am + ks[None, :] * stride_ak,
                         mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        b_tile = tl.load(b + ks[:, None] * stride_bk + cols[None, :] * stride_bn,
                         mask=(ks[:, None] < K) & (cols[None, :] < N), other=0.0)
        if RESET:
            acc = tl.dot(a_tile, b_tile)
        else:
            acc += tl.dot(a_tile, b_tile)
    if STORE_UNMASKED:
        tl.store(c + rows[:, None] * N + cols[None, :], acc)
    else:
        tl.store(c + rows[:, None] * N + cols[None, :], acc, mask=(rows[:, None] < M) & (cols[None, :] < N))


def _matmul(a, b, one_tile=False, reset=False, contiguous=False, store_unmasked=False):
    (M, K), N = a.shape, b.shape[1]
    a_dev, b_dev = a.to(DEVICE), b.to(DEVICE)
    c = torch.zeros(M, N, dtype=a.dtype, device=DEVICE)
    _matmul_kernel[(triton.cdiv(M, 16), triton.cdiv(N, 16))](
        a_dev, b_dev, c, M, N, K, a_dev.stride(0), a_dev.stride(1), b_dev.stride(0), b_dev.stride(1),
        BM=16, BN=16, BK=16, ONE_TILE=one_tile, RESET=reset, CONTIGUOUS=contiguous, STORE_UNMASKED=store_unmasked)
    return c.to(a.device)


@wrong("matmul_triton", "only the first tile of the reduction")
def matmul_no_loop(a, b):
    return _matmul(a, b, one_tile=True)


@wrong("matmul_triton", "only the last tile of the reduction")
def matmul_accumulator_replaced(a, b):
    return _matmul(a, b, reset=True)


@wrong("matmul_triton", "a store 42 elements past the end of `c`")
def matmul_unmasked_store(a, b):
    return _matmul(a, b, store_unmasked=True)


@wrong("matmul_triton", "strides are ignored")
def matmul_assumes_contiguous(a, b):
    return _matmul(a, b, contiguous=True)


# ---------------------------------------------------------------- the chunk kernels


@triton.jit
def _causal(pos, MASK: tl.constexpr):
    if MASK == 1:
        keep = pos[:, None] <= pos[None, :]
    elif MASK == 2:
        keep = pos[:, None] > pos[None, :]
    elif MASK == 3:
        keep = (pos[:, None] >= 0) & (pos[None, :] >= 0)  # every pair
    else:
        keep = pos[:, None] >= pos[None, :]
    return keep


@triton.jit
def _intra_kernel(q, k, v, o, T, K, V, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, MASK: tl.constexpr,
                  ROWS_TO_T: tl.constexpr):
    n, c = tl.program_id(0), tl.program_id(1)
    pos = tl.arange(0, BT)
    rows = c * BT + pos
    ck, cv = tl.arange(0, BK), tl.arange(0, BV)
    row_ok = rows <= T if ROWS_TO_T else rows < T
    q_c = tl.load(q + n * T * K + rows[:, None] * K + ck[None, :], mask=row_ok[:, None] & (ck[None, :] < K), other=0.0)
    k_c = tl.load(k + n * T * K + rows[:, None] * K + ck[None, :], mask=row_ok[:, None] & (ck[None, :] < K), other=0.0)
    v_c = tl.load(v + n * T * V + rows[:, None] * V + cv[None, :], mask=row_ok[:, None] & (cv[None, :] < V), other=0.0)
    A = tl.where(_causal(pos, MASK), tl.dot(q_c, tl.trans(k_c)), 0.0)
    tl.store(o + n * T * V + rows[:, None] * V + cv[None, :], tl.dot(A, v_c), mask=row_ok[:, None] & (cv[None, :] < V))


def _intra(q, k, v, chunk_size, mask=MASK_RIGHT, rows_to_t=False):
    *lead, T, K = q.shape
    V = v.shape[-1]
    qs, ks, vs = _sequences(q, k, v)
    o = torch.zeros(qs.shape[0], T, V, dtype=q.dtype, device=DEVICE)
    _intra_kernel[(qs.shape[0], triton.cdiv(T, chunk_size))](qs, ks, vs, o, T, K, V, BT=chunk_size, BK=_tile(K),
                                                              BV=_tile(V), MASK=mask, ROWS_TO_T=rows_to_t)
    return o.reshape(*lead, T, V).to(q.device)


@wrong("intra_chunk_triton", "upper triangle")
def intra_upper(q, k, v, chunk_size=16):
    return _intra(q, k, v, chunk_size, MASK_UPPER)


@wrong("intra_chunk_triton", "off-by-one mask")
def intra_strict(q, k, v, chunk_size=16):
    return _intra(q, k, v, chunk_size, MASK_STRICT)


@wrong("intra_chunk_triton", "future tokens leak")
def intra_unmasked(q, k, v, chunk_size=16):
    return _intra(q, k, v, chunk_size, MASK_NONE)


@wrong("intra_chunk_triton", "a load 16 elements past the end of `q`")
def intra_row_mask_to_t(q, k, v, chunk_size=16):
    """rows <= T: one row too many in the short last chunk, read past the end of the last sequence."""
    return _intra(q, k, v, chunk_size, rows_to_t=True)


# One loop over the chunks for linear attention (GATE 0), retention (GATE 1) and GLA (GATE 2), as the notebook
# builds them one after the other.
@triton.jit
def _chunk_kernel(q, k, v, g, o, log_gamma, T, K, V, H, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                  GATE: tl.constexpr, MASK: tl.constexpr, CARRY: tl.constexpr, READ_AFTER_UPDATE: tl.constexpr,
                  STATE_TRANSPOSED: tl.constexpr, DECAY_CARRY: tl.constexpr, HEAD_ZERO: tl.constexpr,
                  SPLIT_EXP: tl.constexpr, STORE_UNMASKED: tl.constexpr = False, V_LIKE_K: tl.constexpr = False,
                  B_FROM_ZERO: tl.constexpr = False, LAST_SHORT: tl.constexpr = False, HEAD_N: tl.constexpr = False):
    n = tl.program_id(0)
    q += n * T * K
    k += n * T * K
    g += n * T * K
    v += n * T * V
    o += n * T * V
    pos, ck, cv = tl.arange(0, BT), tl.arange(0, BK), tl.arange(0, BV)
    causal = _causal(pos, MASK)
    if GATE == 1:
        lg = tl.load(log_gamma) if HEAD_ZERO else tl.load(log_gamma + n) if HEAD_N else tl.load(log_gamma + n % H)
        b = (pos + (0 if B_FROM_ZERO else 1)).to(tl.float32) * lg  # B_FROM_ZERO: the exponent off by one
    S = tl.zeros([BK, BV], dtype=tl.float32)
    for start in range(0, T, BT):
        rows = start + pos
        row_ok = rows < T
        qk_mask = row_ok[:, None] & (ck[None, :] < K)
        q_c = tl.load(q + rows[:, None] * K + ck[None, :], mask=qk_mask, other=0.0)
        k_c = tl.load(k + rows[:, None] * K + ck[None, :], mask=qk_mask, other=0.0)
        if V_LIKE_K:  # v's rows taken K apart, as if d_v were d_k
            v_c = tl.load(v + rows[:, None] * K + cv[None, :], mask=row_ok[:, None] & (cv[None, :] < V), other=0.0)
        else:
            v_c = tl.load(v + rows[:, None] * V + cv[None, :], mask=row_ok[:, None] & (cv[None, :] < V), other=0.0)
        if not CARRY:
            S = tl.zeros([BK, BV], dtype=tl.float32)
        if GATE == 0:
            A = tl.where(causal, tl.dot(q_c, tl.trans(k_c)), 0.0)
            q_read, k_end, decay = q_c, k_c, 1.0
        elif GATE == 1:
            A = tl.dot(q_c, tl.trans(k_c)) * tl.exp(tl.where(causal, b[:, None] - b[None, :], float("-inf")))
            b_last = (tl.minimum(T - start, BT) - (1 if LAST_SHORT else 0)).to(tl.float32) * lg
            q_read = q_c * tl.exp(b)[:, None] if DECAY_CARRY else q_c
            k_end, decay = k_c * tl.exp(b_last - b)[:, None], tl.exp(b_last)
        else:
            g_c = tl.load(g + rows[:, None] * K + ck[None, :], mask=qk_mask, other=0.0)
            bg = tl.cumsum(g_c, axis=0)
            bg_last = tl.sum(g_c, axis=0)
            if SPLIT_EXP:  # exp(b_i) * exp(-b_j): the second factor overflows under strong decay
                A = tl.where(causal, tl.dot(q_c * tl.exp(bg), tl.trans(k_c * tl.exp(-bg))), 0.0)
            else:
                diff = tl.where(causal[:, :, None], bg[:, None, :] - bg[None, :, :], float("-inf"))
                A = tl.sum(q_c[:, None, :] * k_c[None, :, :] * tl.exp(diff), axis=2)
            q_read = q_c * tl.exp(bg) if DECAY_CARRY else q_c
            k_end, decay = k_c * tl.exp(bg_last[None, :] - bg), tl.exp(bg_last)[:, None]
        if READ_AFTER_UPDATE:
            S = S * decay + tl.dot(tl.trans(k_end), v_c)
        if STATE_TRANSPOSED:  # S^T: [d_v, d_k]; the shapes only agree when d_k and d_v tile alike
            o_c = tl.dot(A, v_c) + tl.dot(q_read, tl.trans(S))
        else:
            o_c = tl.dot(A, v_c) + tl.dot(q_read, S)
        if not READ_AFTER_UPDATE:
            S = S * decay + tl.dot(tl.trans(k_end), v_c)
        if STORE_UNMASKED:
            tl.store(o + rows[:, None] * V + cv[None, :], o_c)
        else:
            tl.store(o + rows[:, None] * V + cv[None, :], o_c, mask=row_ok[:, None] & (cv[None, :] < V))


def _chunked(q, k, v, chunk_size, gate=0, g=None, gamma=None, scale=1.0, mask=MASK_RIGHT, carry=True,
             read_after_update=False, state_transposed=False, decay_carry=True, head_zero=False, split_exp=False,
             **slips):
    *lead, T, K = q.shape
    V = v.shape[-1]
    H = q.shape[-3] if q.ndim >= 3 else 1
    qs, ks, vs = _sequences(q * scale, k, v)
    gs = _sequences(g)[0] if g is not None else qs
    log_gamma = torch.as_tensor(1.0 if gamma is None else gamma, dtype=torch.float32).log().expand(H)
    o = torch.zeros(qs.shape[0], T, V, dtype=q.dtype, device=DEVICE)
    _chunk_kernel[(qs.shape[0],)](
        qs, ks, vs, gs, o, log_gamma.to(DEVICE).contiguous(), T, K, V, H, BT=chunk_size, BK=_tile(K), BV=_tile(V),
        GATE=gate, MASK=mask, CARRY=carry, READ_AFTER_UPDATE=read_after_update, STATE_TRANSPOSED=state_transposed,
        DECAY_CARRY=decay_carry, HEAD_ZERO=head_zero, SPLIT_EXP=split_exp, **{k.upper(): v for k, v in slips.items()})
    return o.reshape(*lead, T, V).to(q.device)



@wrong("linear_attention_triton", "not carried across chunks")
def linear_no_carry(q, k, v, chunk_size=16):
    return _chunked(q, k, v, chunk_size, carry=False)


@wrong("linear_attention_triton", "updated before it is read")
def linear_update_first(q, k, v, chunk_size=16):
    return _chunked(q, k, v, chunk_size, read_after_update=True)


@wrong("linear_attention_triton", "wrong way round")
def linear_state_transposed(q, k, v, chunk_size=16):
    return _chunked(q, k, v, chunk_size, state_transposed=True)


@wrong("linear_attention_triton", "upper triangle")
def linear_upper(q, k, v, chunk_size=16):
    return _chunked(q, k, v, chunk_size, mask=MASK_UPPER)


@wrong("linear_attention_triton", "off-by-one mask")
def linear_strict(q, k, v, chunk_size=16):
    return _chunked(q, k, v, chunk_size, mask=MASK_STRICT)


@wrong("linear_attention_triton", "a store 176 elements past the end of `o`")
def linear_unmasked_store(q, k, v, chunk_size=16):
    return _chunked(q, k, v, chunk_size, store_unmasked=True)


@wrong("linear_attention_triton", "a load 504 elements past the end of `v` (384 of its 384 lanes)")
def linear_assumes_dk_equals_dv(q, k, v, chunk_size=16):
    return _chunked(q, k, v, chunk_size, v_like_k=True)


@wrong("retention_triton", "decay exponent is off by one at the end of the chunk")
def retention_last_off_by_one(q, k, v, gamma, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 1, gamma=gamma, scale=default_scale(q, scale), last_short=True)


@wrong("retention_triton", "a load 1 element past the end of `log_gamma`")
def retention_head_is_program(q, k, v, gamma, scale=None, chunk_size=16):
    """tl.load(log_gamma + n): right while B = 1, past the end of log_gamma for the second sequence of heads."""
    return _chunked(q, k, v, chunk_size, 1, gamma=gamma, scale=default_scale(q, scale), head_n=True)


def retention_b_from_zero(q, k, v, gamma, scale=None, chunk_size=16):
    """b_i = i log(gamma) with b_last = L log(gamma): both off by one, which cancel: a right answer."""
    return _chunked(q, k, v, chunk_size, 1, gamma=gamma, scale=default_scale(q, scale), b_from_zero=True)


@wrong("retention_triton", "not decayed inside the chunk")
def retention_undecayed_carry(q, k, v, gamma, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 1, gamma=gamma, scale=default_scale(q, scale), decay_carry=False)


@wrong("retention_triton", "decay of head 0")
def retention_first_head(q, k, v, gamma, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 1, gamma=gamma, scale=default_scale(q, scale), head_zero=True)


@wrong("retention_triton", "there is no decay")
def retention_no_decay(q, k, v, gamma, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 0, scale=default_scale(q, scale))


@wrong("retention_triton", "not carried across chunks")
def retention_no_carry(q, k, v, gamma, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 1, gamma=gamma, scale=default_scale(q, scale), carry=False)


@wrong("gla_triton", "gates are ignored")
def gla_no_gates(q, k, v, g, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 0, scale=default_scale(q, scale))


@wrong("gla_triton", "not decayed inside the chunk")
def gla_undecayed_carry(q, k, v, g, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 2, g=g, scale=default_scale(q, scale), decay_carry=False)


@wrong("gla_triton", "strong decay")
def gla_split_exponent(q, k, v, g, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 2, g=g, scale=default_scale(q, scale), split_exp=True)


@wrong("gla_triton", "future tokens leak")
def gla_upper(q, k, v, g, scale=None, chunk_size=16):
    return _chunked(q, k, v, chunk_size, 2, g=g, scale=default_scale(q, scale), mask=MASK_UPPER)


# ---------------------------------------------------------------- right answers, written differently
# (tiles of 16 columns in a loop, products as broadcast sums instead of tl.dot, the decay from powers of
# gamma, GLA's scores from one tl.dot with the exponent split at the chunk's middle)


@triton.jit
def _row_sum_by_tiles(x, out, N, stride_row, stride_col, BLOCK: tl.constexpr):
    m = tl.program_id(0)
    total = 0.0
    for start in range(0, N, 16):
        cols = start + tl.arange(0, 16)
        total += tl.sum(tl.load(x + m * stride_row + cols * stride_col, mask=cols < N, other=0.0), axis=0)
    tl.store(out + m, total)


@triton.jit
def _matmul_by_sums(a, b, c, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, BM: tl.constexpr,
                    BN: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for start in range(0, K, BK):
        ks = start + tl.arange(0, BK)
        a_tile = tl.load(a + rows[:, None] * stride_am + ks[None, :] * stride_ak,
                         mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        b_tile = tl.load(b + ks[:, None] * stride_bk + cols[None, :] * stride_bn,
                         mask=(ks[:, None] < K) & (cols[None, :] < N), other=0.0)
        acc += tl.sum(a_tile[:, :, None] * b_tile[None, :, :], axis=1)
    tl.store(c + rows[:, None] * N + cols[None, :], acc, mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def _intra_transposed(q, k, v, o, T, K, V, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    n, c = tl.program_id(0), tl.program_id(1)
    rows = c * BT + tl.arange(0, BT)
    ck, cv = tl.arange(0, BK), tl.arange(0, BV)
    qk = (rows[:, None] < T) & (ck[None, :] < K)
    q_c = tl.load(q + n * T * K + rows[:, None] * K + ck[None, :], mask=qk, other=0.0)
    k_c = tl.load(k + n * T * K + rows[:, None] * K + ck[None, :], mask=qk, other=0.0)
    v_c = tl.load(v + n * T * V + rows[:, None] * V + cv[None, :], mask=(rows[:, None] < T) & (cv[None, :] < V),
                  other=0.0)
    scores_t = tl.where(rows[:, None] <= rows[None, :], tl.dot(k_c, tl.trans(q_c)), 0.0)  # [key j, query i]
    o_c = tl.dot(tl.trans(scores_t), v_c)
    tl.store(o + n * T * V + rows[:, None] * V + cv[None, :], o_c, mask=(rows[:, None] < T) & (cv[None, :] < V))


@triton.jit
def _gated_by_powers(q, k, v, g, o, log_gamma, T, K, V, H, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                     GATE: tl.constexpr):
    n = tl.program_id(0)
    pos, ck, cv = tl.arange(0, BT), tl.arange(0, BK), tl.arange(0, BV)
    lg = tl.load(log_gamma + n % H)
    S = tl.zeros([BK, BV], dtype=tl.float32)
    for start in range(0, T, BT):
        rows = start + pos
        qk = (rows[:, None] < T) & (ck[None, :] < K)
        q_c = tl.load(q + n * T * K + rows[:, None] * K + ck[None, :], mask=qk, other=0.0)
        k_c = tl.load(k + n * T * K + rows[:, None] * K + ck[None, :], mask=qk, other=0.0)
        v_c = tl.load(v + n * T * V + rows[:, None] * V + cv[None, :], mask=(rows[:, None] < T) & (cv[None, :] < V),
                      other=0.0)
        if GATE == 2:  # scores from one product: exp(b_i - b_j) = exp(b_i - b_mid) exp(b_mid - b_j)
            g_c = tl.load(g + n * T * K + rows[:, None] * K + ck[None, :], mask=qk, other=0.0)
            b = tl.cumsum(g_c, axis=0)
            b_mid = tl.sum(tl.where(pos[:, None] < BT // 2, g_c, 0.0), axis=0)
            b_last = tl.sum(g_c, axis=0)
            scores = tl.dot(q_c * tl.exp(b - b_mid[None, :]), tl.trans(k_c * tl.exp(b_mid[None, :] - b)))
            scores = tl.where(pos[:, None] >= pos[None, :], scores, 0.0)
            o_c = tl.dot(scores, v_c) + tl.dot(q_c * tl.exp(b), S)
            S = S * tl.exp(b_last)[:, None] + tl.dot(tl.trans(k_c * tl.exp(b_last[None, :] - b)), v_c)
        else:  # gamma^(i-j), gamma^(i+1) and gamma^(L-1-j) as powers, the future zeroed after the exponential
            length = tl.minimum(T - start, BT)
            steps = (pos[:, None] - pos[None, :]).to(tl.float32)
            decay = tl.where(pos[:, None] >= pos[None, :], tl.exp(steps * lg), 0.0)
            scores = tl.sum(q_c[:, None, :] * k_c[None, :, :], axis=2) * decay
            o_c = tl.dot(scores, v_c) + tl.exp((pos + 1).to(tl.float32) * lg)[:, None] * tl.dot(q_c, S)
            to_end = tl.exp((length - 1 - pos).to(tl.float32) * lg)
            S = tl.exp(length.to(tl.float32) * lg) * S + tl.sum(
                (k_c * to_end[:, None])[:, :, None] * v_c[:, None, :], axis=0)
        tl.store(o + n * T * V + rows[:, None] * V + cv[None, :], o_c, mask=(rows[:, None] < T) & (cv[None, :] < V))


def _row_sum_alternative(x):
    M, N = x.shape
    x_dev = x.to(DEVICE)
    out = torch.zeros(M, dtype=x.dtype, device=DEVICE)
    _row_sum_by_tiles[(M,)](x_dev, out, N, x_dev.stride(0), x_dev.stride(1), BLOCK=triton.next_power_of_2(N))
    return out.to(x.device)


def _matmul_alternative(a, b):
    (M, K), N = a.shape, b.shape[1]
    a_dev, b_dev = a.to(DEVICE), b.to(DEVICE)
    c = torch.zeros(M, N, dtype=a.dtype, device=DEVICE)
    _matmul_by_sums[(triton.cdiv(M, 16), triton.cdiv(N, 16))](
        a_dev, b_dev, c, M, N, K, a_dev.stride(0), a_dev.stride(1), b_dev.stride(0), b_dev.stride(1),
        BM=16, BN=16, BK=16)
    return c.to(a.device)


def _intra_alternative(q, k, v, chunk_size=16):
    *lead, T, K = q.shape
    V = v.shape[-1]
    qs, ks, vs = _sequences(q, k, v)
    o = torch.zeros(qs.shape[0], T, V, dtype=q.dtype, device=DEVICE)
    _intra_transposed[(qs.shape[0], triton.cdiv(T, chunk_size))](qs, ks, vs, o, T, K, V, BT=chunk_size,
                                                                  BK=_tile(K), BV=_tile(V))
    return o.reshape(*lead, T, V).to(q.device)


def _gated_alternative(q, k, v, chunk_size, gate, g=None, gamma=1.0, scale=1.0):
    *lead, T, K = q.shape
    V = v.shape[-1]
    H = q.shape[-3] if q.ndim >= 3 else 1
    qs, ks, vs = _sequences(q * scale, k, v)
    gs = _sequences(g)[0] if g is not None else qs
    log_gamma = torch.as_tensor(gamma, dtype=torch.float32).log().expand(H).to(DEVICE).contiguous()
    o = torch.zeros(qs.shape[0], T, V, dtype=q.dtype, device=DEVICE)
    _gated_by_powers[(qs.shape[0],)](qs, ks, vs, gs, o, log_gamma, T, K, V, H, BT=chunk_size, BK=_tile(K),
                                     BV=_tile(V), GATE=gate)
    return o.reshape(*lead, T, V).to(q.device)


def _linear_alternative(q, k, v, chunk_size=16):
    return _gated_alternative(q, k, v, chunk_size, gate=1)  # gamma = 1: no decay


def _retention_alternative(q, k, v, gamma, scale=None, chunk_size=16):
    return _gated_alternative(q, k, v, chunk_size, 1, gamma=gamma, scale=default_scale(q, scale))


def _gla_alternative(q, k, v, g, scale=None, chunk_size=16):
    return _gated_alternative(q, k, v, chunk_size, 2, g=g, scale=default_scale(q, scale))


CORRECT = {"row_sum_triton": _row_sum_alternative, "matmul_triton": _matmul_alternative,
           "intra_chunk_triton": _intra_alternative, "linear_attention_triton": _linear_alternative,
           "retention_triton": _retention_alternative, "gla_triton": _gla_alternative}
