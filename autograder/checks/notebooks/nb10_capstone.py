"""The exercises of notebook 10: the MQAR data, the mixer wrapper of the tiny model, and its state size."""
import torch

from linattn_ref import models, mqar
from linattn_ref.feature_maps import identity
from linattn_ref.linear_attention import linear_attention_chunk
from linattn_ref.retnet import retention_chunk

from ..exercise import F32, F64, GLA_SEQ, Case, Mistake, exercise, log_gates, qkv, strided
from ..structure import Rule

NOTEBOOK = "10_capstone"

# ---------------------------------------------------------------- mqar_layout


def _pairs(gen, B, N, M, vocab_size, shuffle=True):
    keys = torch.stack([torch.randperm(vocab_size // 2 - 1, generator=gen)[:N] + 1 for _ in range(B)])
    values = torch.randint(vocab_size // 2, vocab_size, (B, N), generator=gen)
    order = torch.stack([torch.randperm(N, generator=gen)[:M] if shuffle else torch.arange(M) for _ in range(B)])
    return {"keys": keys, "values": values, "order": order}


def _layout_cases(gen):
    hand = {"keys": torch.tensor([[5, 9, 12]]), "values": torch.tensor([[70, 66, 81]]),
            "order": torch.tensor([[2, 0]])}
    return [Case({**hand, "seq_len": 10}, note="the docstring's example"),
            Case({**_pairs(gen, 4, 4, 3, 32), "seq_len": 16})]


def _layout_hidden(gen):
    return [Case({**_pairs(gen, 1, 1, 1, 8), "seq_len": 3}, note="no padding"),
            Case({**_pairs(gen, 6, 8, 8, 64), "seq_len": 40}),
            Case({**_pairs(gen, 2, 5, 2, 16), "seq_len": 12})]


def _layout_mistakes():
    ref = mqar.mqar_layout

    def targets_on_pairs(c):
        inputs, targets = ref(**c.inputs)
        N = c.inputs["keys"].shape[1]
        moved = torch.full_like(targets, mqar.IGNORE)
        moved[:, 0:2 * N:2] = c.inputs["values"]
        return inputs, moved

    def ignore_zero(c):
        inputs, targets = ref(**c.inputs)
        return inputs, targets.masked_fill(targets == mqar.IGNORE, 0)

    def next_token(c):
        inputs, targets = ref(**c.inputs)
        return inputs, targets.roll(1, dims=-1)

    def in_pair_order(c):
        order = torch.arange(c.inputs["order"].shape[1]).expand_as(c.inputs["order"])
        return ref(c.inputs["keys"], c.inputs["values"], order, c.inputs["seq_len"])

    def value_first(c):
        return ref(c.inputs["values"], c.inputs["keys"], c.inputs["order"], c.inputs["seq_len"])

    return (
        Mistake("the targets sit on the pairs: the answer to a query belongs at the query's position, where the"
                " model is asked", targets_on_pairs),
        Mistake(f"where nothing is asked the target must be IGNORE = {mqar.IGNORE} (cross entropy skips it), not 0",
                ignore_zero),
        Mistake("the targets are shifted by one position: the value is the target at the query itself (the model"
                " answers as it reads the query)", next_token),
        Mistake("the queries come in the pairs' order: ask for keys[b, order[b, j]], in the order `order` gives",
                in_pair_order),
        Mistake("keys and values are swapped: each pair is the key first, then its value", value_first),
    )


# ---------------------------------------------------------------- mqar_batch (random: judged by properties)


def _batch_cases(gen):
    return [Case({"n_seqs": 4, "n_pairs": 3, "n_queries": 2, "vocab_size": 16, "seq_len": 10, "seed": 0}),
            Case({"n_seqs": 8, "n_pairs": 8, "n_queries": 8, "vocab_size": 64, "seq_len": 32, "seed": 1})]


def _batch_hidden(gen):
    return [Case({"n_seqs": 1, "n_pairs": 1, "n_queries": 1, "vocab_size": 4, "seq_len": 3, "seed": 5}),
            Case({"n_seqs": 16, "n_pairs": 12, "n_queries": 5, "vocab_size": 128, "seq_len": 64, "seed": 7}),
            Case({"n_seqs": 3, "n_pairs": 7, "n_queries": 7, "vocab_size": 16, "seq_len": 21, "seed": 2},
                 note="every key used")]


def _with_seed(case, seed):
    return Case({**case.inputs, "seed": seed}, dict(case.options), case.note)


def _batch_verdict(case, obs):
    result = obs.result
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return "mqar_batch must return the pair (inputs, targets)."
    inputs, targets = result
    a = case.inputs
    problems = mqar.mqar_problems(inputs, targets, a["n_pairs"], a["n_queries"], a["vocab_size"])
    if problems:
        return problems[0] + "."
    if list(inputs.shape) != [a["n_seqs"], a["seq_len"]]:
        shape = [a["n_seqs"], a["seq_len"]]
        return f"inputs and targets must be [n_seqs, seq_len] = {shape}, got {list(inputs.shape)}."
    N, M, B = a["n_pairs"], a["n_queries"], a["n_seqs"]
    keys = inputs[:, 0:2 * N:2]
    k0, k1 = mqar.key_range(a["vocab_size"])
    if N < k1 - k0 and B * N >= 8 and keys.unique().numel() <= N:
        return f"the keys are always the same few: draw them at random from the whole key range {k0}..{k1 - 1}."
    if M >= 2 and B >= 4 and all(torch.equal(inputs[b, 2 * N:2 * N + M], keys[b, :M]) for b in range(B)):
        return "the queries always ask for the first keys in the pairs' order: choose the queried pairs at random."
    again = obs.probe("same seed", case)
    if again is not None and again.ran and not (isinstance(again.result, (tuple, list))
                                                and all(torch.equal(x, y) for x, y in zip(result, again.result))):
        return "two calls with the same seed give different batches: draw from torch.Generator().manual_seed(seed)."
    other = obs.probe("another seed", _with_seed(case, a["seed"] + 1))
    if other is not None and other.ran and isinstance(other.result, (tuple, list)) and B * N >= 8 \
            and torch.equal(result[0], other.result[0]):
        return "seeds 'seed' and 'seed + 1' give the same batch: the draw must depend on the seed."
    return None


_BATCH_RULE = Rule(_batch_verdict, lambda c: {"same seed": c, "another seed": _with_seed(c, c.inputs["seed"] + 1)})


# ---------------------------------------------------------------- sequence_mixer


def _mixer_case(gen, kind, lead=(2, 2), T=6, d_k=4, d_v=3, dtype=F64, contiguous=True, **options):
    x = qkv(gen, lead, T, d_k, d_v, dtype=dtype, contiguous=contiguous)
    inputs = {**x, "kind": kind}
    if kind == "gla":
        inputs["g"] = log_gates(gen, *x["k"].shape, dtype=dtype)
        if not contiguous:
            inputs["g"] = strided(inputs["g"])
    return Case(inputs, options, f"{kind} mixer")


def _mixer_cases(gen):
    return [_mixer_case(gen, kind, chunk_size=4) for kind in models.MIXERS]


def _mixer_hidden(gen):
    return [_mixer_case(gen, "linear", (1, 3), T=1, d_k=2, d_v=5, chunk_size=4),
            _mixer_case(gen, "retnet", (2, 4), T=9, d_k=3, d_v=2, dtype=F32, contiguous=False, chunk_size=4),
            _mixer_case(gen, "gla", (1, 2), T=7, d_k=5, d_v=3, dtype=F32, chunk_size=3),
            _mixer_case(gen, "softmax", (3, 1), T=5, d_k=4, d_v=6, contiguous=False, chunk_size=2)]


def _other_kind(kind):
    def make(c):
        if c.inputs["kind"] == kind or (kind == "gla") != ("g" in c.inputs):
            return None
        inputs = {**c.inputs, "kind": kind}
        return models.sequence_mixer(**inputs, **c.options)
    return make


def _only(kind, fn):
    return lambda c: fn(c) if c.inputs["kind"] == kind else None


def _qkv_of(c):
    return c.inputs["q"], c.inputs["k"], c.inputs["v"]


def _mixer_mistakes():
    size = {"chunk_size": 16}
    return (
        Mistake("the linear mixer is normalized linear attention (normalize=True, the denominator q' . nu)",
                _only("linear", lambda c: linear_attention_chunk(*_qkv_of(c), normalize=False,
                                                                 **{**size, **c.options}))),
        Mistake("the linear mixer uses the feature map phi = elu + 1 (ref.elu_plus_one), not the identity",
                _only("linear", lambda c: linear_attention_chunk(*_qkv_of(c), feature_map=identity,
                                                                 **{**size, **c.options}))),
        Mistake("every head got the same decay: retnet gives head h its own gamma_h = multiscale_gammas(H)[h]",
                _only("retnet", lambda c: retention_chunk(*_qkv_of(c), float(models.multiscale_gammas(1)[0]),
                                                          **{**size, **c.options}))),
        *(Mistake(f"this is the output of the '{kind}' mixer: dispatch on `kind` to the matching form",
                  _other_kind(kind)) for kind in models.MIXERS),
    )


# ---------------------------------------------------------------- state_size


def _state_cases(gen):
    return [Case({"kind": kind, "n_heads": 4, "d_key": 16, "d_value": 16, "seq_len": 64}) for kind in models.MIXERS]


def _state_hidden(gen):
    return [Case({"kind": "softmax", "n_heads": 2, "d_key": 8, "d_value": 4, "seq_len": 100_000}),
            Case({"kind": "linear", "n_heads": 3, "d_key": 5, "d_value": 7, "seq_len": 10}),
            Case({"kind": "gla", "n_heads": 1, "d_key": 2, "d_value": 9, "seq_len": 1})]


def _state_mistakes():
    def per_kind(kind, fn):
        return lambda c: fn(**{k: v for k, v in c.inputs.items() if k != "kind"}) if c.inputs["kind"] == kind else None

    return (
        Mistake("the KV cache holds the values too: seq_len keys of d_key and seq_len values of d_value per head",
                per_kind("softmax", lambda n_heads, d_key, d_value, seq_len: n_heads * seq_len * d_key)),
        Mistake("softmax attention keeps every key and value: its cache grows with seq_len",
                per_kind("softmax", lambda n_heads, d_key, d_value, seq_len: n_heads * (d_key + d_value))),
        Mistake("normalized linear attention keeps nu (d_key numbers per head) beside mu",
                per_kind("linear", lambda n_heads, d_key, d_value, seq_len: n_heads * d_key * d_value)),
        Mistake("retention and GLA have no denominator: their state is S alone, d_key x d_value per head",
                lambda c: (c.inputs["n_heads"] * (c.inputs["d_key"] * c.inputs["d_value"] + c.inputs["d_key"])
                           if c.inputs["kind"] in ("retnet", "gla") else None)),
        Mistake("the state is per head: multiply by n_heads",
                lambda c: models.state_size(**c.inputs) // c.inputs["n_heads"] if c.inputs["n_heads"] > 1 else None),
    )


EXERCISES = [
    exercise(mqar.mqar_layout, _layout_cases, _layout_hidden, points=2, time_dims=(-1, -1), time_word="position",
             output_names=("inputs", "targets"), mistakes=_layout_mistakes(),
             answers=(mqar.mqar_layout, mqar.mqar_batch)),
    exercise(mqar.mqar_batch, _batch_cases, _batch_hidden, points=2, time_dims=None, randomized=True,
             structure=(_BATCH_RULE,), answers=(mqar.mqar_batch,)),
    exercise(models.sequence_mixer, _mixer_cases, _mixer_hidden, points=2, causal=True, seq_inputs=GLA_SEQ,
             mistakes=_mixer_mistakes(), answers=(models.sequence_mixer,)),
    exercise(models.state_size, _state_cases, _state_hidden, points=1, time_dims=None, mistakes=_state_mistakes(),
             answers=(models.state_size,)),
]
