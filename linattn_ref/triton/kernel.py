"""The chunked forward pass of S_t = Diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t, in Triton.

Linear attention (no gate), retention (one decay per head) and GLA (one gate per key feature) are one
recurrence with different gates, so one kernel serves all three: the gate kind is a compile-time constant
(GATE) and Triton compiles one specialised kernel per kind. The maths is `linattn_ref.chunk`'s.

Work split: one program per (sequence n = batch x head, block of BV value columns). A program walks its
sequence chunk by chunk, BT rows at a time, and keeps the state S [K, BV] in registers, in float32:

    o_chunk = (q * decay from the chunk's start) S  +  A v       A: the causal, decayed scores q_i . k_j
    S       = (decay over the chunk) S  +  (k * decay to the chunk's end)^T v

q, k and v are read once and o written once; the state never goes to memory. The value blocks of one
sequence run side by side and share their q and k reads through the L2 cache.

The chunks must be walked in order, so whatever does not need the state is best done outside that loop:
- no gate: there is nothing to do.
- scalar gate: the decays are powers of gamma, the same in every chunk; the compiler hoists them.
- vector gate: the decays differ per chunk and per key feature (cumulative sums and exponentials).
  `gla_prepare_kernel` computes them for all chunks at once, in parallel, and hands the loop queries and
  keys already scaled, so that the loop is the no-gate one plus two row scalings of the state. (Doing that
  work inside the loop instead, with no prepare pass, was slower on an H200 in every form tried: it sits on
  the serial path, and its tiles spill registers; benchmarks/NOTES_triton.md, third round.)

On Hopper the loop reads its tiles through tensor descriptors, made inside the kernel (no host-side cost):
the copy engine (TMA) moves whole tiles while the threads compute, where rows are 16-byte aligned.
benchmarks/NOTES_triton.md has what each version measured.
"""
import contextlib
import math

import numpy as np
import torch
import triton
import triton.language as tl

# gate kinds (constexpr so that the kernel can branch on them at compile time)
GATE_NONE, GATE_SCALAR, GATE_VECTOR = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)
# what gla_prepare_kernel reports: a chunk whose factors pass exp(80) (first pass: or whose half-chunk decays pass
# exp(-40)); log-gates that are positive; NaN or inf
OUT_OF_RANGE, POSITIVE_GATES, NONFINITE_GATES = tl.constexpr(1), tl.constexpr(2), tl.constexpr(4)

# Largest exponent the vector-gate factorisation may meet: exp(80) * |q| stays far below float32's 3.4e38.
MAX_GATE_EXPONENT = 80.0
# GLA's first pass multiplies two half-chunk decays into one; each at least exp(-40) keeps the product above
# float32's smallest normal number, exp(-87.3). Stronger gates take the second pass, which applies them in turn.
STATE_DECAY_LIMIT = tl.constexpr(40.0)


@triton.jit
def load_tile(x, t0, c0, T, C: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, TMA: tl.constexpr):
    """Rows [t0, t0 + BT) and columns [c0, c0 + BC) of one sequence x [T, C]; zeros past T and C.
    TMA: x is a tensor descriptor and the copy engine fetches the tile; else a pointer, masked loads."""
    if TMA:
        tile = x.load([t0, c0])
    else:
        rows, cols = t0 + tl.arange(0, BT), c0 + tl.arange(0, BC)
        tile = tl.load(x + rows[:, None] * C + cols[None, :], mask=(rows < T)[:, None] & (cols < C)[None, :],
                       other=0.0)
    return tile


@triton.jit
def store_tile(x, value, t0, c0, T, C: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, TMA: tl.constexpr):
    if TMA:
        x.store([t0, c0], value)
    else:
        rows, cols = t0 + tl.arange(0, BT), c0 + tl.arange(0, BC)
        tl.store(x + rows[:, None] * C + cols[None, :], value, mask=(rows < T)[:, None] & (cols < C)[None, :])


@triton.jit
def chunk_gated_fwd_kernel(
    q, k, v, o,                 # q, k: [N, T, K]; v, o: [N, T, V] (vector gate: q, k as gla_prepare_kernel left them)
    gate, gate_end,             # scalar gate: log-decay per head [H]. vector gate: decay from each chunk's start
                                # to its middle row, and from there to its end [N, NT, K], float32
    state0, nu0, state1, nu1,   # initial / final state [N, K, V] and normalizer [N, K], float32
    status,                     # GUARD only: the int32 flags of gla_prepare_kernel's two passes
    T, H, scale, eps,
    K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    GATE: tl.constexpr,         # GATE_NONE, GATE_SCALAR or GATE_VECTOR
    NORMALIZE: tl.constexpr,    # divide by q . nu (nu is the state of a value that is always 1; no gate only)
    NORM_TC: tl.constexpr,      # the normalizer's sums as tensor-core products (not for float16: nu overflows it)
    GUARD: tl.constexpr,        # GLA's second pass: run only where the first found a chunk out of range
    USE_INITIAL_STATE: tl.constexpr, STORE_FINAL_STATE: tl.constexpr,
    TMA: tl.constexpr,          # read q, k, v and write o through tensor descriptors (Hopper's copy engine)
):
    tl.static_assert(GATE == GATE_NONE or not NORMALIZE)
    if GUARD:  # the usual case: the first pass found nothing to redo, so there is nothing to write
        if tl.load(status) == 0:
            return
    i_v, i_n = tl.program_id(0), tl.program_id(1)
    n = i_n.to(tl.int64)  # 64-bit offsets: N * T * K can pass 2**31
    q += n * T * K
    k += n * T * K
    v += n * T * V
    o += n * T * V
    out_dtype = o.dtype.element_ty
    if TMA:  # one descriptor per sequence: the copy engine fills rows past T with zeros and skips them on store
        q = tl.make_tensor_descriptor(q, shape=[T, K], strides=[K, 1], block_shape=[BT, BK])
        k = tl.make_tensor_descriptor(k, shape=[T, K], strides=[K, 1], block_shape=[BT, BK])
        v = tl.make_tensor_descriptor(v, shape=[T, V], strides=[V, 1], block_shape=[BT, BV])
        o = tl.make_tensor_descriptor(o, shape=[T, V], strides=[V, 1], block_shape=[BT, BV])

    rows = tl.arange(0, BT)                 # positions inside a chunk
    cols_k = tl.arange(0, BK)               # key features (all of them: BK >= K)
    cols_v = i_v * BV + tl.arange(0, BV)    # this program's value columns
    k_ok, v_ok = cols_k < K, cols_v < V     # BK, BV are powers of two; K, V need not be
    n_chunks = tl.cdiv(T, BT)
    first, poisoned = 1, False
    if GUARD:  # nothing to redo unless the first pass found chunks out of range; bad gates: the output is NaN
        first, second = tl.load(status), tl.load(status + 1)
        poisoned = (((first | second) & (NONFINITE_GATES | POSITIVE_GATES)) != 0) | ((second & OUT_OF_RANGE) != 0)
        n_chunks = tl.where((first == 0) | poisoned, 0, n_chunks)
        if poisoned:
            for i_t in range(0, tl.cdiv(T, BT)):
                store_tile(o, tl.full([BT, BV], float("nan"), out_dtype), i_t * BT, i_v * BV, T, V, BT, BV, TMA)

    state = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_INITIAL_STATE:
        state = tl.load(state0 + n * K * V + cols_k[:, None] * V + cols_v[None, :],
                        mask=k_ok[:, None] & v_ok[None, :], other=0.0)
    if NORMALIZE and NORM_TC:
        # The normalizer is the state of a value that is always 1. Sixteen equal rows of it (nu^T) make the sums
        # tensor-core products of the tiles already loaded. The 16-wide operands are kept transposed so that the
        # tensor cores read them K-major, like k in q k^T: Triton 3.6 read a [*, 16] operand out of bounds.
        cols_1 = tl.arange(0, 16)
        ones_t = tl.where(cols_1[:, None] + rows[None, :] < T + BT + 16, 1.0, 0.0)  # [16, BT]; not a constant
        nu = tl.zeros([16, BK], dtype=tl.float32)
        if USE_INITIAL_STATE:
            nu += tl.load(nu0 + n * K + cols_k, mask=k_ok, other=0.0)[None, :]
    elif NORMALIZE:
        nu = tl.zeros([BK], dtype=tl.float32)
        if USE_INITIAL_STATE:
            nu = tl.load(nu0 + n * K + cols_k, mask=k_ok, other=0.0)
    if GATE == GATE_SCALAR:
        log_gamma = tl.load(gate + i_n % H).to(tl.float32)
    if GATE == GATE_VECTOR:
        gate += n * tl.cdiv(T, BT) * K
        gate_end += n * tl.cdiv(T, BT) * K
        # The decays the state takes at a chunk's start: the rest of the chunk before, exp(b_last - b_mid) of
        # that chunk (1 before the first), then exp(b_mid) to this chunk's middle row; each loaded an iteration
        # ahead, off the loop's serial path.
        rest = tl.full([BK], 1.0, tl.float32)
        to_mid = tl.load(gate + cols_k, mask=cols_k < tl.where(n_chunks > 0, K, 0), other=1.0)

    causal = rows[:, None] >= rows[None, :]
    for i_t in range(0, n_chunks):
        t0 = i_t * BT
        t_ok = t0 + rows < T  # the last chunk may be short: masked rows load as 0 and contribute nothing
        q_c = load_tile(q, t0, 0, T, K, BT, BK, TMA)
        k_c = load_tile(k, t0, 0, T, K, BT, BK, TMA)
        v_c = load_tile(v, t0, i_v * BV, T, V, BT, BV, TMA)

        if GATE == GATE_NONE:
            A = tl.where(causal, tl.dot(q_c, tl.trans(k_c)), 0.0)  # intra-chunk scores q_i . k_j, j <= i
            o_c = tl.dot(q_c, state.to(q_c.dtype)) + tl.dot(A.to(v_c.dtype), v_c)
            if NORMALIZE and NORM_TC:  # every column: q_i . nu + sum_j A_ij
                den = tl.dot(q_c, tl.trans(nu.to(q_c.dtype))) + tl.dot(A.to(q_c.dtype), tl.trans(ones_t.to(q_c.dtype)))
                o_c = o_c / tl.where(t_ok, scale * tl.max(den, axis=1) + eps, 1.0)[:, None]  # rows past T: not 0/0
                nu += tl.dot(ones_t.to(k_c.dtype), k_c)
            elif NORMALIZE:  # the same sums for a value of 1: q_i . nu + sum_j A_ij
                den = scale * (tl.sum(q_c.to(tl.float32) * nu[None, :], axis=1) + tl.sum(A, axis=1)) + eps
                o_c = o_c / tl.where(t_ok, den, 1.0)[:, None]  # rows past the end would divide 0 by 0
                nu += tl.sum(k_c.to(tl.float32), axis=0)
            state += tl.dot(tl.trans(k_c), v_c)
        elif GATE == GATE_SCALAR:
            # log-decay from the chunk's start to row i is (i + 1) log gamma: no loads, no cumulative sum
            b = (rows + 1).to(tl.float32) * log_gamma
            b_last = tl.minimum(T - t0, BT).to(tl.float32) * log_gamma  # the last real row's
            # gamma^(i - j) directly for each pair, every exponent <= 0 whatever gamma is
            A = tl.dot(q_c, tl.trans(k_c)) * tl.exp(tl.where(causal, b[:, None] - b[None, :], float("-inf")))
            # The decays are per row, so they can scale the products' rows instead of q and k:
            # (q_i gamma^(i+1)) S = gamma^(i+1) (q_i S), and row j of k^T v decayed = k_j^T (v_j decayed).
            o_c = tl.dot(q_c, state.to(q_c.dtype)) * tl.exp(b)[:, None] + tl.dot(A.to(v_c.dtype), v_c)
            v_end = (v_c * tl.exp(tl.where(t_ok, b_last - b, float("-inf")))[:, None]).to(v_c.dtype)
            state = state * tl.exp(b_last) + tl.dot(tl.trans(k_c), v_end)
        else:
            # gla_prepare_kernel left q_c = q * exp(b - b_mid) and k_c = k * exp(b_mid - b), b the cumulative
            # log-gates from the chunk's start and b_mid their value at its middle row. So q_c . k_c are the
            # decayed scores, and with the state decayed to the middle row first the rest is like no gate.
            next_rest = tl.load(gate_end + i_t * K + cols_k, mask=k_ok, other=0.0)
            next_to_mid = tl.load(gate + (i_t + 1) * K + cols_k, mask=cols_k < tl.where(i_t + 1 < n_chunks, K, 0),
                                  other=1.0)
            A = tl.where(causal, tl.dot(q_c, tl.trans(k_c)), 0.0)
            # The first pass multiplies the two decays into one vector: one layout change fewer on the serial
            # path, and its prepare kernel sends chunks where either passes exp(-STATE_DECAY_LIMIT) to the second
            # pass. That one applies them in turn: with chunks of 16 both may be near exp(-80), and their product
            # falls below float32's range where the state times either one does not.
            if GUARD:
                state = state * rest[:, None] * to_mid[:, None]
            else:
                state = state * (rest * to_mid)[:, None]
            o_c = tl.dot(q_c, state.to(q_c.dtype)) + tl.dot(A.to(v_c.dtype), v_c)
            # Nothing touches this product later in the iteration, so the tensor cores run it while the next chunk
            # starts; a decay applied to its result here would make the loop wait for it.
            state = tl.dot(tl.trans(k_c), v_c.to(k_c.dtype), state)
            rest, to_mid = next_rest, next_to_mid
        store_tile(o, (scale * o_c).to(v_c.dtype), t0, i_v * BV, T, V, BT, BV, TMA)

    if STORE_FINAL_STATE:
        if first != 0:  # (a second pass that has nothing to redo leaves the first pass's state)
            if GATE == GATE_VECTOR:  # the last chunk's decay to its end
                state = state * rest[:, None]
            if poisoned:
                state += float("nan")
            tl.store(state1 + n * K * V + cols_k[:, None] * V + cols_v[None, :], state,
                     mask=k_ok[:, None] & v_ok[None, :])
        if NORMALIZE:
            if i_v == 0:
                if NORM_TC:
                    tl.store(nu1 + n * K + cols_k, tl.max(nu, axis=0), mask=k_ok)
                else:
                    tl.store(nu1 + n * K + cols_k, nu, mask=k_ok)


@triton.jit
def gla_prepare_kernel(
    q, k, g,                    # [N, T, K]: queries, keys, log-gates
    q_mid, k_mid,               # out [N, T, K]: q * exp(b - b_mid), k * exp(b_mid - b)
    to_mid, mid_to_end,         # out [N, NT, K], float32: exp(b_mid) and exp(b_last - b_mid) of each chunk
    status,                     # int32 [3]: the flags of the first pass, of the second, the largest positive gate
    T,
    K: tl.constexpr, BT: tl.constexpr, BR: tl.constexpr, BC: tl.constexpr,
    MAX_EXPONENT: tl.constexpr,
    SCAN_PRECISION: tl.constexpr,  # "ieee" for float32 gates, whose sums must not be rounded to TF32
    SECOND_PASS: tl.constexpr,  # run only where the first pass found chunks out of range (and no bad gates)
):
    """One program per (BR rows = BR / BT chunks, sequence, BC key features), all at once: the gate-dependent
    part of GLA. The second pass, which usually has nothing to do, has few programs that walk the row blocks.

    b is the cumulative log-gate from the chunk's start (inclusive), per key feature, so the decay from row
    j to row i is exp(b_i - b_j) = exp(b_i - b_mid) * exp(b_mid - b_j): a query factor times a key factor,
    which turns the intra-chunk scores into one matrix product. Taken around the chunk's middle row, each
    factor spans at most BT/2 gates; where one passes exp(MAX_EXPONENT) a second pass with chunks of 16 follows.
    """
    i_r, i_n, i_c = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    if SECOND_PASS:
        if tl.load(status) != OUT_OF_RANGE:
            return
        flags = 0
        for row_block in range(i_r, tl.cdiv(T, BR), tl.num_programs(0)):
            flags |= prepare_rows(q, k, g, q_mid, k_mid, to_mid, mid_to_end, status, row_block, i_n, i_c, T, K, BT,
                                  BR, BC, MAX_EXPONENT, SCAN_PRECISION, SECOND_PASS)
    else:
        flags = prepare_rows(q, k, g, q_mid, k_mid, to_mid, mid_to_end, status, i_r, i_n, i_c, T, K, BT, BR, BC,
                             MAX_EXPONENT, SCAN_PRECISION, SECOND_PASS)
    if flags != 0:
        tl.atomic_or(status + SECOND_PASS, flags)


@triton.jit
def prepare_rows(q, k, g, q_mid, k_mid, to_mid, mid_to_end, status, i_r, i_n, i_c, T, K: tl.constexpr,
                 BT: tl.constexpr, BR: tl.constexpr, BC: tl.constexpr, MAX_EXPONENT: tl.constexpr,
                 SCAN_PRECISION: tl.constexpr, SECOND_PASS: tl.constexpr):
    """Rows [i_r BR, (i_r + 1) BR) of sequence i_n, key features [i_c BC, (i_c + 1) BC): writes the scaled q and k
    and the chunks' decay vectors; returns OUT_OF_RANGE where a factor passes exp(MAX_EXPONENT) (in the first pass,
    also where a half chunk's decay passes exp(-STATE_DECAY_LIMIT)), and the kinds of bad gates found (whose
    largest positive gate goes to status[2] here)."""
    n = i_n.to(tl.int64)
    rows = tl.arange(0, BR)
    t = i_r * BR + rows
    cols = i_c * BC + tl.arange(0, BC)
    offsets = n * T * K + t[:, None] * K + cols[None, :]
    mask = (t < T)[:, None] & (cols < K)[None, :]
    g_c = tl.load(g + offsets, mask=mask, other=0.0)  # rows past the end hold 0: they keep b at its last value
    # q and k are read here, with g, so that the three reads are in flight together: loaded after the products,
    # they waited behind the stores of the per-chunk vectors (the compiler keeps loads after earlier stores)
    q_c = tl.load(q + offsets, mask=mask, other=0.0)
    k_c = tl.load(k + offsets, mask=mask, other=0.0)

    # Cumulative sums as products with matrices of ones (lower triangle; first half of the columns; all, each
    # within its chunk): the tensor cores do in one step what a scan across threads does in many. With several
    # chunks per program, all rows of one chunk in b_mid and b_last hold the same values, so they line up with b
    # element by element.
    ones = tl.full([BR, BR], 1.0, g_c.dtype)
    if BR == BT:  # one chunk per program (the usual case): no masks for the chunks
        lower, first_half = rows[:, None] >= rows[None, :], rows[None, :] < BT // 2
    else:
        same_chunk = rows[:, None] // BT == rows[None, :] // BT
        lower = same_chunk & (rows[:, None] >= rows[None, :])
        first_half = same_chunk & (rows[None, :] % BT < BT // 2)
        first_row = (t % BT == 0)[:, None] & mask
        chunk_offsets = (n * tl.cdiv(T, BT) + t[:, None] // BT) * K + cols[None, :]
    if BR == BT:
        # One chunk: b - b_mid in one product (+1 for the rows up to i, -1 for the first half), and b_mid, b_last
        # as vectors from a product with 16 rows (8 of the first half's indicator, 8 of ones). Two products
        # instead of three of [BT, BT] x [BT, BC], and fewer registers (80 instead of 124 a thread at 8 warps, as
        # Triton compiles it for Hopper), so that three programs share a multiprocessor instead of two.
        rel = tl.dot((tl.where(lower, 1.0, 0.0) - tl.where(first_half, 1.0, 0.0)).to(g_c.dtype), g_c,
                     input_precision=SCAN_PRECISION)
        rows_16 = tl.arange(0, 16)
        ends = tl.where((rows[None, :] < BT // 2) | (rows_16[:, None] >= 8), 1.0, 0.0)  # [16, BT]
        sums = tl.dot(ends.to(g_c.dtype), g_c, input_precision=SCAN_PRECISION)  # [16, BC]
        b_mid = tl.max(tl.where(rows_16[:, None] < 8, sums, float("-inf")), axis=0)
        b_last = tl.max(tl.where(rows_16[:, None] >= 8, sums, float("-inf")), axis=0)
        vector_offsets = (n * tl.cdiv(T, BT) + i_r) * K + cols
        tl.store(to_mid + vector_offsets, tl.exp(b_mid), mask=cols < K)
        tl.store(mid_to_end + vector_offsets, tl.exp(b_last - b_mid), mask=cols < K)
    else:
        b = tl.dot(tl.where(lower, ones, 0.0), g_c, input_precision=SCAN_PRECISION)
        b_mid = tl.dot(tl.where(first_half, ones, 0.0), g_c, input_precision=SCAN_PRECISION)
        b_last = tl.dot(tl.where(same_chunk, ones, 0.0), g_c, input_precision=SCAN_PRECISION)
        rel = b - b_mid
        tl.store(to_mid + chunk_offsets, tl.exp(b_mid), mask=first_row)
        tl.store(mid_to_end + chunk_offsets, tl.exp(b_last - b_mid), mask=first_row)
    tl.store(q_mid + offsets, (q_c.to(tl.float32) * tl.exp(rel)).to(q_mid.dtype.element_ty), mask=mask)
    tl.store(k_mid + offsets, (k_c.to(tl.float32) * tl.exp(-rel)).to(k_mid.dtype.element_ty), mask=mask)

    g_c = g_c.to(tl.float32)
    bad = tl.max(tl.where((g_c > 0) | (g_c != g_c) | (g_c == float("-inf")), 1, 0))  # +inf is > 0
    out_of_range = tl.abs(rel) > MAX_EXPONENT
    if not SECOND_PASS:  # the first pass's loop multiplies exp(b_last - b_mid) by the next chunk's exp(b_mid)
        out_of_range |= (b_mid < -STATE_DECAY_LIMIT) | (b_last - b_mid < -STATE_DECAY_LIMIT)
    flags = tl.max(tl.where(out_of_range, OUT_OF_RANGE, 0))
    if bad != 0:  # rare: then say which fault, and keep the largest positive gate for the error message
        nonfinite = (g_c != g_c) | (tl.abs(g_c) == float("inf"))
        positive = (g_c > 0) & ~nonfinite
        flags |= tl.max(tl.where(nonfinite, NONFINITE_GATES, 0)) | tl.max(tl.where(positive, POSITIVE_GATES, 0))
        # positive floats order like their bit patterns
        tl.atomic_max(status + 2, tl.max(tl.where(positive, g_c, 0.0)).to(tl.int32, bitcast=True))
    return flags


# Launch settings per gate kind: value block, warps, pipeline stages, tensor descriptors; tuned on an H200 at
# B=4, H=16, d=128, bfloat16 (benchmarks/NOTES_triton.md). The interpreter runs one program at a time in numpy,
# so there the whole value dimension goes to one program.
DEFAULT_LAUNCH = {0: (64, 4, 4, True), 1: (64, 4, 4, True), 2: (64, 4, 4, True)}
PREPARE_NUM_WARPS, PREPARE_BLOCK_K = 8, 64
# The second pass usually only reads the flags and stops: with programs for every row block, those starts cost
# more than the rest of the check. Each of these walks every SECOND_PASS_ROW_PROGRAMS-th row block.
SECOND_PASS_ROW_PROGRAMS = 4
MAX_HEAD_DIM = 128
NORM_ON_TENSOR_CORES = True  # the normalizer's sums as tensor-core products (else row and column sums)
CHUNK_FOR_STRONG_GATES = 16  # GLA's second pass: the smallest chunk, whose factors span 8 gates
SHARED_MEMORY_FOR_STAGES = 192 * 1024  # of an H100's / H200's 227 KB per block; the rest holds the state and scores
NORM_TC_SHARED_MEMORY = 32 * 1024  # what the normalizer's tensor-core operands take from the stages


def pipeline_stages(stages, BT, BK, BV, itemsize, budget=SHARED_MEMORY_FOR_STAGES):
    """At most `stages` copies of a chunk's tiles in flight, as many as fit in `budget` bytes of shared memory."""
    chunk_bytes = BT * (2 * BK + BV) * itemsize
    return max(1, min(stages, budget // chunk_bytes))


def _cdiv(a, b):
    """triton.cdiv and triton.next_power_of_2 in plain Python: Triton 3.9's are constexpr functions whose
    wrapper costs microseconds per host call, and GLA's wrapper makes a dozen such calls."""
    return -(-a // b)


def _next_power_of_2(n):
    return 1 << (n - 1).bit_length() if n > 1 else 1


def interpreted():
    """True when the kernels were defined under TRITON_INTERPRET=1 and so run in numpy on the CPU."""
    return not isinstance(chunk_gated_fwd_kernel, triton.runtime.JITFunction)


def tma_usable(*tensors):
    """Tensor descriptors need Hopper's copy engine (or the interpreter) and rows of a multiple of 16 bytes."""
    if not interpreted() and torch.cuda.get_device_capability(tensors[0].device)[0] < 9:
        return False
    return all(x.data_ptr() % 16 == 0 and x.shape[-1] * x.element_size() % 16 == 0 for x in tensors)


def _descriptor_memory(size, alignment, stream):
    """Global memory in which the kernel writes the descriptors it makes (triton.set_allocator's contract)."""
    return torch.empty(size, dtype=torch.int8, device="cuda")


def _ensure_allocator():
    from triton.runtime import _allocation
    if isinstance(_allocation._allocator.get(), _allocation.NullAllocator):  # keep one the caller has set
        triton.set_allocator(_descriptor_memory)


def chunk_gated_forward(q, k, v, gate, gates=None, scale=1.0, chunk_size=64, initial_state=None, initial_nu=None,
                        normalize=False, eps=0.0, output_final_state=False, block_v=None, num_warps=None,
                        num_stages=None, status=None, tma=None, norm_tc=None):
    """Launch the kernels on validated [..., T, K] / [..., T, V] tensors of one dtype and device.

    gate: GATE_NONE, GATE_SCALAR (gates: float32 log-decays [H], or [1] for one decay) or GATE_VECTOR
    (gates: log-gates shaped like k). Vector gate with `status`, a zeroed int32 [3] tensor: a second pass with
    chunks of 16 redoes the sequences once the first finds chunks out of range, and fills the output (and final
    state) with NaN where the gates are bad; `status` receives the flags of both passes (OUT_OF_RANGE,
    POSITIVE_GATES, NONFINITE_GATES) and the largest positive gate's float32 bits. All of it without a host wait.
    initial_state [..., K, V] and initial_nu [..., K] are float32 or None.
    tma: read through tensor descriptors (None: the gate kind's default, where the GPU and the shapes allow).
    norm_tc: the normalizer's sums on the tensor cores (None: except for float16, whose range nu can pass).
    Returns (o [..., T, V], final state or None, final nu or None).
    """
    # The interpreter also multiplies the vector-gate factors of pairs above the diagonal, which may overflow
    # before they are dropped, and a chunk found out of range is computed again: numpy need not warn about it.
    quiet = interpreted() and gate == GATE_VECTOR
    with np.errstate(over="ignore", invalid="ignore", divide="ignore") if quiet else contextlib.nullcontext():
        return _launch(q, k, v, gate, gates, scale, chunk_size, initial_state, initial_nu, normalize, eps,
                       output_final_state, block_v, num_warps, num_stages, status, tma, norm_tc)


def _launch(q, k, v, gate, gates, scale, chunk_size, initial_state, initial_nu, normalize, eps, output_final_state,
            block_v, num_warps, num_stages, status, tma, norm_tc):
    *lead, T, K = q.shape
    V = v.shape[-1]
    N = math.prod(lead)
    BK = max(16, _next_power_of_2(K))  # tl.dot needs tiles of 16 or more
    default_block_v, default_warps, default_stages, default_tma = DEFAULT_LAUNCH[int(gate)]
    if block_v is None:
        block_v = MAX_HEAD_DIM if interpreted() else default_block_v
    BV = max(16, min(_next_power_of_2(block_v), _next_power_of_2(V)))
    if norm_tc is None:
        norm_tc = NORM_ON_TENSOR_CORES and q.dtype != torch.float16
    stage_memory = SHARED_MEMORY_FOR_STAGES - (NORM_TC_SHARED_MEMORY if normalize and norm_tc else 0)

    q, k, v = (x.reshape(N, T, x.shape[-1]).contiguous() for x in (q, k, v))
    o = torch.empty(N, T, V, dtype=q.dtype, device=q.device)
    state1 = nu1 = None
    if output_final_state:
        state1 = torch.empty(N, K, V, dtype=torch.float32, device=q.device)
        nu1 = torch.empty(N, K, dtype=torch.float32, device=q.device) if normalize else None
    if initial_state is not None:
        initial_state = initial_state.reshape(N, K, V).contiguous()
        initial_nu = initial_nu.reshape(N, K).contiguous() if normalize else None
    unused = q  # pointer arguments a specialisation never reads still need a tensor

    def loop(q, k, gates, gate_end, BT, guard):
        use_tma = (default_tma if tma is None else tma) and tma_usable(q, k, v, o)
        if use_tma and not interpreted():
            _ensure_allocator()
        grid = (_cdiv(V, BV), N)  # value blocks of one sequence are neighbours, so they share q, k in L2
        chunk_gated_fwd_kernel[grid](
            q, k, v, o, gates if gate != GATE_NONE else unused, gate_end,
            initial_state if initial_state is not None else unused,
            initial_nu if initial_nu is not None else unused,
            state1 if state1 is not None else unused,
            nu1 if nu1 is not None else unused,
            status if status is not None else unused,
            T, gates.numel() if gate == GATE_SCALAR else 1, float(scale), float(eps),
            K=K, V=V, BT=BT, BK=BK, BV=BV, GATE=gate, NORMALIZE=normalize, NORM_TC=bool(norm_tc),
            GUARD=guard,
            USE_INITIAL_STATE=initial_state is not None, STORE_FINAL_STATE=output_final_state, TMA=use_tma,
            num_warps=num_warps or default_warps,
            num_stages=num_stages or pipeline_stages(default_stages, BT, BK, BV, q.element_size(), stage_memory),
        )

    if gate != GATE_VECTOR:
        loop(q, k, gates, unused, chunk_size, False)
    else:
        g = gates.reshape(N, T, K).contiguous()
        if g.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            g = g.float()
        flags = status if status is not None else torch.zeros(3, dtype=torch.int32, device=q.device)
        # float16 cannot hold the factors (up to exp(80)); bfloat16 has float32's range
        mid_dtype = torch.float32 if q.dtype == torch.float16 else q.dtype
        q_mid, k_mid = (torch.empty(N, T, K, dtype=mid_dtype, device=q.device) for _ in range(2))
        BC = min(BK, PREPARE_BLOCK_K)
        # the first pass at chunk_size; with a status to report to, a second with chunks of 16 that does work
        # only where the first found chunks out of range (the kernels read the flags: the host never waits)
        for BT, second in ((chunk_size, False), (CHUNK_FOR_STRONG_GATES, True))[:2 if status is not None else 1]:
            BR = max(BT, 64)  # rows per prepare program: chunks of 16 and 32 go four and two to a program
            to_mid, mid_to_end = (torch.empty(N, _cdiv(T, BT), K, dtype=torch.float32, device=q.device)
                                  for _ in range(2))
            row_programs = _cdiv(T, BR) if not second else min(_cdiv(T, BR), SECOND_PASS_ROW_PROGRAMS)
            gla_prepare_kernel[(row_programs, N, _cdiv(K, BC))](
                q, k, g, q_mid, k_mid, to_mid, mid_to_end, flags, T, K=K, BT=BT, BR=BR, BC=BC,
                MAX_EXPONENT=MAX_GATE_EXPONENT, SCAN_PRECISION="ieee" if g.dtype == torch.float32 else "tf32",
                SECOND_PASS=second, num_warps=PREPARE_NUM_WARPS)
            loop(q_mid, k_mid, to_mid, mid_to_end, BT, second)
    o = o.reshape(*lead, T, V)
    if not output_final_state:
        return o, None, None
    return o, state1.reshape(*lead, K, V), (nu1.reshape(*lead, K) if normalize else None)
