"""Wrong answers to notebook 10: the MQAR data, the mixer wrapper and the state size."""
import torch

import linattn_ref as ref

from . import wrong

IGNORE = -100


def _layout(keys, values, order, seq_len, *, target_shift=0, ignore=IGNORE, query_order=True):
    B, N = keys.shape
    M = order.shape[1]
    inputs = torch.zeros(B, seq_len, dtype=torch.int64)
    targets = torch.full((B, seq_len), ignore, dtype=torch.int64)
    inputs[:, 0:2 * N:2], inputs[:, 1:2 * N:2] = keys, values
    asked = order if query_order else torch.arange(M).expand(B, M)
    inputs[:, 2 * N:2 * N + M] = keys.gather(1, asked)
    targets[:, 2 * N + target_shift:2 * N + M + target_shift] = values.gather(1, asked)
    return inputs, targets


# ---------------------------------------------------------------- mqar_layout


@wrong("mqar_layout", "IGNORE = -100")
def layout_ignores_with_zero(keys, values, order, seq_len):
    return _layout(keys, values, order, seq_len, ignore=0)


@wrong("mqar_layout", "shifted by one")
def layout_next_token_targets(keys, values, order, seq_len):
    B, N = keys.shape
    M = order.shape[1]
    inputs, _ = _layout(keys, values, order, seq_len)
    targets = torch.full((B, seq_len), IGNORE, dtype=torch.int64)
    targets[:, 2 * N + 1:2 * N + M + 1] = values.gather(1, order)[:, : seq_len - 2 * N - 1]
    return inputs, targets


@wrong("mqar_layout", "pairs' order")
def layout_ignores_order(keys, values, order, seq_len):
    return _layout(keys, values, order, seq_len, query_order=False)


@wrong("mqar_layout", "targets sit on the pairs")
def layout_targets_on_keys(keys, values, order, seq_len):
    inputs, _ = _layout(keys, values, order, seq_len)
    targets = torch.full_like(inputs, IGNORE)
    targets[:, 0:2 * keys.shape[1]:2] = values
    return inputs, targets


@wrong("mqar_layout", "wrong dtype")
def layout_float(keys, values, order, seq_len):
    inputs, targets = _layout(keys, values, order, seq_len)
    return inputs.float(), targets


# ---------------------------------------------------------------- mqar_batch


def _draw(n_seqs, n_pairs, n_queries, vocab_size, seed, *, replace=False, first_keys=False, shuffle=True):
    gen = torch.Generator().manual_seed(seed)
    n_keys = vocab_size // 2 - 1
    if replace:
        keys = torch.randint(1, n_keys + 1, (n_seqs, n_pairs), generator=gen)
    elif first_keys:
        keys = torch.arange(1, n_pairs + 1).expand(n_seqs, n_pairs)
    else:
        keys = torch.stack([torch.randperm(n_keys, generator=gen)[:n_pairs] + 1 for _ in range(n_seqs)])
    values = torch.randint(vocab_size // 2, vocab_size, (n_seqs, n_pairs), generator=gen)
    if shuffle:
        order = torch.stack([torch.randperm(n_pairs, generator=gen)[:n_queries] for _ in range(n_seqs)])
    else:
        order = torch.arange(n_queries).expand(n_seqs, n_queries)
    return keys, values, order


@wrong("mqar_batch", "key is repeated")
def batch_keys_with_replacement(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    return _layout(*_draw(n_seqs, n_pairs, n_queries, vocab_size, seed, replace=True), seq_len)


@wrong("mqar_batch", "whole key range")
def batch_first_keys(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    return _layout(*_draw(n_seqs, n_pairs, n_queries, vocab_size, seed, first_keys=True), seq_len)


@wrong("mqar_batch", "same seed give different batches")
def batch_ignores_seed(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    return _layout(*_draw(n_seqs, n_pairs, n_queries, vocab_size, int(torch.randint(1 << 30, ()))), seq_len)


@wrong("mqar_batch", "first keys in the pairs' order")
def batch_queries_in_order(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    return _layout(*_draw(n_seqs, n_pairs, n_queries, vocab_size, seed, shuffle=False), seq_len)


@wrong("mqar_batch", "everywhere but the query positions")
def batch_targets_everywhere(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    inputs, targets = _layout(*_draw(n_seqs, n_pairs, n_queries, vocab_size, seed), seq_len)
    return inputs, targets.masked_fill(targets == IGNORE, 0)


@wrong("mqar_batch", "value that followed that key")
def batch_answers_unshuffled(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    keys, values, order = _draw(n_seqs, n_pairs, n_queries, vocab_size, seed)
    inputs, targets = _layout(keys, values, order, seq_len)
    N = n_pairs
    targets[:, 2 * N:2 * N + n_queries] = values[:, :n_queries]  # the values in the pairs' order, not the queries'
    return inputs, targets


# ---------------------------------------------------------------- sequence_mixer


@wrong("sequence_mixer", "normalized linear attention")
def mixer_unnormalized(q, k, v, kind, g=None, chunk_size=16):
    if kind == "linear":
        return ref.linear_attention_chunk(q, k, v, normalize=False, chunk_size=chunk_size)
    return _mixer(q, k, v, kind, g, chunk_size)


def _mixer(q, k, v, kind, g, chunk_size, gammas=None):
    if kind == "softmax":
        return ref.softmax_attention_parallel(q, k, v)
    if kind == "linear":
        return ref.linear_attention_chunk(q, k, v, chunk_size=chunk_size)
    if kind == "retnet":
        gammas = ref.multiscale_gammas(q.shape[-3]) if gammas is None else gammas
        return ref.retention_chunk(q, k, v, gammas, chunk_size=chunk_size)
    return ref.gla_chunk(q, k, v, g, chunk_size=chunk_size)


@wrong("sequence_mixer", "same decay")
def mixer_one_gamma(q, k, v, kind, g=None, chunk_size=16):
    return _mixer(q, k, v, kind, g, chunk_size, gammas=float(ref.multiscale_gammas(1)[0]))


@wrong("sequence_mixer", "output of the 'linear' mixer")
def mixer_retnet_is_linear(q, k, v, kind, g=None, chunk_size=16):
    return _mixer(q, k, v, "linear" if kind == "retnet" else kind, g, chunk_size)


@wrong("sequence_mixer", "future tokens leak")
def mixer_bidirectional_softmax(q, k, v, kind, g=None, chunk_size=16):
    if kind == "softmax":
        return torch.softmax(q @ k.mT * q.shape[-1] ** -0.5, dim=-1) @ v
    return _mixer(q, k, v, kind, g, chunk_size)


@wrong("sequence_mixer", "elu + 1")
def mixer_no_feature_map(q, k, v, kind, g=None, chunk_size=16):
    if kind == "linear":
        return ref.linear_attention_chunk(q, k, v, feature_map=None, chunk_size=chunk_size)
    return _mixer(q, k, v, kind, g, chunk_size)


# ---------------------------------------------------------------- state_size


def _state(kind, n_heads, d_key, d_value, seq_len, *, nu_everywhere=False, keys_only=False):
    if kind == "softmax":
        return n_heads * seq_len * (d_key if keys_only else d_key + d_value)
    if kind == "linear" or nu_everywhere:
        return n_heads * (d_key * d_value + d_key)
    return n_heads * d_key * d_value


@wrong("state_size", "holds the values too")
def state_keys_only(kind, n_heads, d_key, d_value, seq_len):
    return _state(kind, n_heads, d_key, d_value, seq_len, keys_only=True)


@wrong("state_size", "no denominator")
def state_nu_everywhere(kind, n_heads, d_key, d_value, seq_len):
    return _state(kind, n_heads, d_key, d_value, seq_len, nu_everywhere=True)


@wrong("state_size", "keeps nu")
def state_forgets_nu(kind, n_heads, d_key, d_value, seq_len):
    if kind == "linear":
        return n_heads * d_key * d_value
    return _state(kind, n_heads, d_key, d_value, seq_len)


@wrong("state_size", "an int is expected")
def state_bytes_float(kind, n_heads, d_key, d_value, seq_len):
    return float(_state(kind, n_heads, d_key, d_value, seq_len))


# ---------------------------------------------------------------- right answers, written differently


def _layout_loops(keys, values, order, seq_len):
    B, N = keys.shape
    inputs = torch.zeros(B, seq_len, dtype=torch.long)
    targets = torch.full((B, seq_len), -100, dtype=torch.long)
    for b in range(B):
        for i in range(N):
            inputs[b, 2 * i], inputs[b, 2 * i + 1] = keys[b, i], values[b, i]
        for j, pair in enumerate(order[b].tolist()):
            inputs[b, 2 * N + j], targets[b, 2 * N + j] = keys[b, pair], values[b, pair]
    return inputs, targets


def _batch_multinomial(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    gen = torch.Generator().manual_seed(seed)
    uniform = torch.ones(n_seqs, vocab_size // 2 - 1)
    keys = torch.multinomial(uniform, n_pairs, replacement=False, generator=gen) + 1
    values = vocab_size // 2 + torch.randint(vocab_size - vocab_size // 2, (n_seqs, n_pairs), generator=gen)
    order = torch.rand(n_seqs, n_pairs, generator=gen).argsort(-1)[:, :n_queries]
    return _layout_loops(keys, values, order, seq_len)


def _mixer_table(q, k, v, kind, g=None, chunk_size=16):
    H = q.shape[-3]
    forms = {
        "softmax": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
        "linear": lambda: ref.linear_attention_chunk(q, k, v, ref.elu_plus_one, chunk_size=chunk_size),
        "retnet": lambda: ref.retention_chunk(q, k, v, 1 - 2.0 ** (-5.0 - torch.arange(H, dtype=torch.float64)),
                                              chunk_size=chunk_size),
        "gla": lambda: ref.gla_chunk(q, k, v, g, chunk_size=chunk_size),
    }
    return forms[kind]()


def _state_by_parts(kind, n_heads, d_key, d_value, seq_len):
    per_head = {"softmax": seq_len * d_key + seq_len * d_value, "linear": d_key * (d_value + 1)}
    return n_heads * per_head.get(kind, d_key * d_value)


CORRECT = {"mqar_layout": _layout_loops, "mqar_batch": _batch_multinomial, "sequence_mixer": _mixer_table,
           "state_size": _state_by_parts}
