"""Multi-query associative recall (MQAR, Arora et al. 2023, "Zoology"): the data, and the property checks on it.

A sequence lists N key-value pairs, then asks for M of the keys again; the model must answer each query with the
value that followed that key. With N = 3, M = 2 and T = 10 (keys are small numbers, values large ones):

    inputs   k1 v1 k2 v2 k3 v3 | k3 k1 | pad pad        e.g.  5 70  9 66 12 81 12  5  0  0
    targets   .  .  .  .  .  . | v3 v1 |  .   .               .  .  .  .  .  . 81 70  .  .

Targets exist at the query positions only; everywhere else they are IGNORE (-100, the index torch's cross entropy
skips). The vocabulary of `vocab_size` tokens is split: token 0 pads, keys are 1 .. vocab_size/2 - 1, values are
vocab_size/2 .. vocab_size - 1. Within a sequence no key appears twice (a repeated key would have two answers), and
no key is queried twice.
"""
import torch

PAD = 0
IGNORE = -100


def key_range(vocab_size):
    """(first, last + 1) of the key tokens."""
    return 1, vocab_size // 2


def value_range(vocab_size):
    """(first, last + 1) of the value tokens."""
    return vocab_size // 2, vocab_size


def _check_sizes(n_pairs, n_queries, vocab_size, seq_len):
    for name, x in (("n_pairs", n_pairs), ("n_queries", n_queries), ("vocab_size", vocab_size), ("seq_len", seq_len)):
        if isinstance(x, bool) or not isinstance(x, int) or x < 1:
            raise ValueError(f"{name} must be a positive integer, got {x!r}")
    if n_queries > n_pairs:
        raise ValueError(f"n_queries={n_queries} > n_pairs={n_pairs}: each query asks for a different key")
    if 2 * n_pairs + n_queries > seq_len:
        raise ValueError(f"{n_pairs} pairs and {n_queries} queries need 2*{n_pairs}+{n_queries} = "
                         f"{2 * n_pairs + n_queries} positions, more than seq_len={seq_len}")
    n_keys = key_range(vocab_size)[1] - key_range(vocab_size)[0]
    if n_pairs > n_keys:
        raise ValueError(f"vocab_size={vocab_size} has {n_keys} keys, too few for {n_pairs} distinct keys")


def mqar_layout(keys, values, order, seq_len):
    """Lay out drawn pairs and queries as (inputs, targets), both int64 [B, seq_len].

    keys, values: int64 [B, N], pair i of row b is (keys[b, i], values[b, i]); order: int64 [B, M], the indices
    of the pairs queried, in the order asked. Positions 0 .. 2N-1 alternate key, value; positions 2N .. 2N+M-1
    hold the queried keys, with their values as targets; the rest is PAD with target IGNORE.
    """
    B, N = keys.shape
    M = order.shape[-1]
    if values.shape != keys.shape or order.shape[0] != B:
        raise ValueError(f"keys {tuple(keys.shape)}, values {tuple(values.shape)} and order {tuple(order.shape)} "
                         "must be [B, N], [B, N] and [B, M]")
    if 2 * N + M > seq_len:
        raise ValueError(f"{N} pairs and {M} queries need {2 * N + M} positions, more than seq_len={seq_len}")
    inputs = torch.full((B, seq_len), PAD, dtype=torch.int64)
    targets = torch.full((B, seq_len), IGNORE, dtype=torch.int64)
    inputs[:, 0:2 * N:2] = keys
    inputs[:, 1:2 * N:2] = values
    inputs[:, 2 * N:2 * N + M] = keys.gather(1, order)
    targets[:, 2 * N:2 * N + M] = values.gather(1, order)
    return inputs, targets


def mqar_batch(n_seqs, n_pairs, n_queries, vocab_size, seq_len, seed):
    """A batch of MQAR sequences, (inputs, targets) int64 [n_seqs, seq_len], the same for the same seed.

    Each row draws n_pairs distinct keys from the whole key range, a value for each, and n_queries distinct pairs
    to ask for, in a random order.
    """
    _check_sizes(n_pairs, n_queries, vocab_size, seq_len)
    gen = torch.Generator().manual_seed(seed)
    k0, k1 = key_range(vocab_size)
    v0, v1 = value_range(vocab_size)
    keys = torch.rand(n_seqs, k1 - k0, generator=gen).argsort(-1)[:, :n_pairs] + k0  # distinct within a row
    values = torch.randint(v0, v1, (n_seqs, n_pairs), generator=gen)
    order = torch.rand(n_seqs, n_pairs, generator=gen).argsort(-1)[:, :n_queries]
    return mqar_layout(keys, values, order, seq_len)


def mqar_problems(inputs, targets, n_pairs, n_queries, vocab_size):
    """What is wrong with an MQAR batch, as a list of sentences (empty when it is a valid batch).

    The checks of notebook 10 and the tests use it: shapes and dtypes, the layout, the targets at the query
    positions only, each target the value that followed the queried key, no key repeated within a sequence.
    """
    for name, x in (("inputs", inputs), ("targets", targets)):
        if not isinstance(x, torch.Tensor):
            return [f"{name} is a {type(x).__name__}, not a torch.Tensor"]
        if x.dtype != torch.int64:
            return [f"{name} has dtype {x.dtype}: token ids are torch.int64 (torch.long)"]
    if inputs.ndim != 2 or inputs.shape != targets.shape:
        return [f"inputs {list(inputs.shape)} and targets {list(targets.shape)} must both be [n_seqs, seq_len]"]
    N, M = n_pairs, n_queries
    k0, k1 = key_range(vocab_size)
    v0, v1 = value_range(vocab_size)
    keys, values, queries = inputs[:, 0:2 * N:2], inputs[:, 1:2 * N:2], inputs[:, 2 * N:2 * N + M]
    problems = []
    if ((keys < k0) | (keys >= k1)).any():
        problems.append(f"positions 0, 2, 4, ... must hold keys, tokens {k0}..{k1 - 1}")
    if ((values < v0) | (values >= v1)).any():
        problems.append(f"positions 1, 3, 5, ... must hold values, tokens {v0}..{v1 - 1}")
    if (inputs[:, 2 * N + M:] != PAD).any():
        problems.append(f"after the pairs and the queries the sequence is padded with PAD = {PAD}")
    repeated = (keys.sort(-1).values.diff(dim=-1) == 0).any(-1)
    if repeated.any():
        problems.append(f"a key is repeated within sequence {int(repeated.nonzero()[0])}: keys must be distinct"
                        " within a sequence (draw them without replacement, e.g. a random permutation)")
    asked = queries.unsqueeze(-1) == keys.unsqueeze(-2)  # [B, M, N]: which pair each query asks for
    if not asked.any(-1).all():
        problems.append(f"positions {2 * N}..{2 * N + M - 1} must hold queries: keys of the same sequence")
    elif (asked.sum(-2) > 1).any():
        problems.append("a key is queried twice in one sequence: choose the queried pairs without replacement")
    query_zone = torch.zeros_like(targets, dtype=torch.bool)
    query_zone[:, 2 * N:2 * N + M] = True
    if (targets[~query_zone] != IGNORE).any():
        problems.append(f"targets must be IGNORE = {IGNORE} everywhere but the query positions "
                        f"{2 * N}..{2 * N + M - 1}")
    if not problems:
        answers = (asked.to(torch.int64) * values.unsqueeze(-2)).sum(-1)
        if not torch.equal(targets[:, 2 * N:2 * N + M], answers):
            problems.append("the target at a query position must be the value that followed that key in the pairs")
    return problems


def accuracy(logits, targets):
    """The fraction of query positions (targets != IGNORE) whose arg-max prediction is the target."""
    asked = targets != IGNORE
    return (logits.argmax(-1)[asked] == targets[asked]).float().mean().item()
