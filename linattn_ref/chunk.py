"""The chunkwise parallel form, once, for the whole family S_t = G_t * S_{t-1} + k_t^T v_t, o_t = q_t S_t.

Linear attention (no gate), RetNet (one scalar decay per head) and GLA (one gate per key dimension) are
the same recurrence with different gates, so their chunked forms all call `chunk_gated_linear_attention`.

Split the sequence into chunks of C positions. Within a chunk, with b_i = sum of the log-gates from the
chunk's start to position i (inclusive), the output of position i is

    o_i = (q_i * exp(b_i)) S_start                                   (inter-chunk: the carried state)
        + sum_{j <= i in the chunk} (q_i * exp(b_i - b_j)) . k_j v_j  (intra-chunk: a small masked attention)

and the state passed to the next chunk is

    S_end = exp(b_last)^T * S_start + sum_j (k_j * exp(b_last - b_j))^T v_j.

Every exponent above is <= 0, so nothing overflows however strong the decay. The cost is
O(T C d) for the intra-chunk blocks plus O(T d^2) for the states, against O(T^2 d) for the parallel form.
"""
import torch

from ._validate import check_chunk_size, check_length, check_tensor


def chunk_boundaries(T, chunk_size):
    """[(start, end), ...] of the chunks covering positions 0..T-1; the last chunk may be shorter."""
    check_length(T)
    check_chunk_size(chunk_size)
    return [(s, min(s + chunk_size, T)) for s in range(0, T, chunk_size)]


def intra_chunk_scores(q, k, b=None):
    """Masked scores inside one chunk: A_ij = sum_c q_ic k_jc exp(b_ic - b_jc) for j <= i, else 0.

    q, k: [..., C, d_k]; b: None (no decay), [..., C, 1] (scalar decay) or [..., C, d_k] (per-dimension
    gates), the cumulative log-gates from the chunk's start. Returns [..., C, C].
    """
    C = q.shape[-2]
    mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    if b is None:
        return (q @ k.transpose(-1, -2)).masked_fill(~mask, 0.0)
    # exponent b_i - b_j for every pair; set it to -inf above the diagonal so exp gives 0, never inf.
    diff = (b.unsqueeze(-2) - b.unsqueeze(-3))  # [..., C(i), C(j), d_g]
    diff = diff.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    if b.shape[-1] == 1:
        return (q @ k.transpose(-1, -2)) * diff.squeeze(-1).exp()
    return torch.einsum("...ic,...jc,...ijc->...ij", q, k, diff.exp())


def chunk_gated_linear_attention(q, k, v, g=None, scale=1.0, chunk_size=64, initial_state=None,
                                 output_final_state=False):
    """Chunked S_t = Diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale * q_t S_t.

    q, k: [..., T, d_k]; v: [..., T, d_v]; g: None, [..., T, 1] or [..., T, d_k] log-gates (<= 0);
    initial_state: [..., d_k, d_v] or None (zeros). Inputs are already validated and in one dtype.
    Returns o [..., T, d_v], or (o, final_state) when output_final_state is True.
    """
    *lead, T, d_k = q.shape
    d_v = v.shape[-1]
    if initial_state is None:
        state = q.new_zeros(*lead, d_k, d_v)
    else:
        state = initial_state
    q = q * scale
    outputs = []
    for start, end in chunk_boundaries(T, chunk_size):
        qc, kc, vc = q[..., start:end, :], k[..., start:end, :], v[..., start:end, :]
        if g is None:
            o = intra_chunk_scores(qc, kc) @ vc + qc @ state
            state = state + kc.transpose(-1, -2) @ vc
        else:
            b = g[..., start:end, :].cumsum(-2)  # log of the decay from the chunk's start to each position
            b_last = b[..., -1:, :]
            o = intra_chunk_scores(qc, kc, b) @ vc + (qc * b.exp()) @ state
            k_to_end = kc * (b_last - b).exp()  # each key decayed from its position to the chunk's end
            state = b_last.transpose(-1, -2).exp() * state + k_to_end.transpose(-1, -2) @ vc
        outputs.append(o)
    o = torch.cat(outputs, dim=-2)
    return (o, state) if output_final_state else o


def chunk_states(k, v, chunk_size=64):
    """The state carried into each chunk by linear attention: S_[n] = sum_{j < s_n} k_j^T v_j, s_n = n * chunk_size.

    k: [..., T, d_k]; v: [..., T, d_v]. Returns [..., N, d_k, d_v] with N = ceil(T / chunk_size): S_[0] is zeros
    and S_[n+1] = S_[n] + K_[n]^T V_[n], one C x d_k by C x d_v product per chunk instead of C outer products.
    """
    check_tensor("k", k)
    check_tensor("v", v)
    if k.shape[:-1] != v.shape[:-1] or k.dtype != v.dtype:
        raise ValueError(f"k and v must agree on every dimension but the last ([..., T, d]) and on dtype, got k"
                         f" {tuple(k.shape)} {k.dtype} and v {tuple(v.shape)} {v.dtype}")
    *lead, T, d_k = k.shape
    state = k.new_zeros(*lead, d_k, v.shape[-1])
    states = []
    for start, end in chunk_boundaries(T, chunk_size):
        states.append(state)  # what the chunk starting at `start` receives: nothing of its own tokens yet
        state = state + k[..., start:end, :].transpose(-1, -2) @ v[..., start:end, :]
    return torch.stack(states, dim=-3)
