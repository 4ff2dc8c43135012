"""MQAR data and notebook 10's tiny model: valid batches, gradients through the chunked forms, a loss that falls."""
import pytest
import torch

import linattn_ref as ref
from linattn_ref import models, mqar


def test_batch_is_valid_and_reproducible():
    inputs, targets = ref.mqar_batch(32, 8, 5, 64, 32, seed=3)
    assert inputs.shape == targets.shape == (32, 32)
    assert mqar.mqar_problems(inputs, targets, 8, 5, 64) == []
    again = ref.mqar_batch(32, 8, 5, 64, 32, seed=3)
    assert torch.equal(inputs, again[0]) and torch.equal(targets, again[1])
    assert not torch.equal(inputs, ref.mqar_batch(32, 8, 5, 64, 32, seed=4)[0])


def test_problems_are_named():
    inputs, targets = ref.mqar_batch(4, 4, 4, 32, 16, seed=0)
    repeated = inputs.clone()
    repeated[:, 2] = repeated[:, 0]
    assert any("repeated" in p for p in mqar.mqar_problems(repeated, targets, 4, 4, 32))
    assert any("IGNORE" in p for p in mqar.mqar_problems(inputs, targets.clamp(min=0), 4, 4, 32))


@pytest.mark.parametrize("bad", [dict(n_queries=5), dict(seq_len=11), dict(vocab_size=8)])
def test_impossible_sizes_are_refused(bad):
    sizes = {"n_seqs": 2, "n_pairs": 4, "n_queries": 4, "vocab_size": 32, "seq_len": 12, "seed": 0, **bad}
    with pytest.raises(ValueError):
        ref.mqar_batch(**sizes)


@pytest.mark.parametrize("kind", models.MIXERS)
def test_gradients_through_the_chunked_forms(kind):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    g = torch.nn.functional.logsigmoid(torch.randn(1, 2, 5, 3, generator=gen, dtype=torch.float64) + 2)
    g.requires_grad_(kind == "gla")
    inputs = (q, k, v, g) if kind == "gla" else (q, k, v)
    assert torch.autograd.gradcheck(
        lambda *x: models.sequence_mixer(*x[:3], kind, x[3] if kind == "gla" else None, chunk_size=2), inputs)


@pytest.mark.parametrize("kind", models.MIXERS)
def test_a_few_training_steps_lower_the_loss(kind):
    cfg = {**models.FAST, "steps": 25, "batch_size": 16, "train_pairs": (2,)}
    _, record = models.train_one(kind, cfg, device="cpu", progress=False)
    first, last = sum(record["loss"][:5]) / 5, sum(record["loss"][-5:]) / 5
    assert last < first - 0.1, record["loss"]
    assert record["state_size"] == 2 * models.state_size(kind, 4, cfg["d_key"], 16, cfg["seq_len"])


def test_settings_follow_the_environment(monkeypatch):
    monkeypatch.setenv("LINATTN_FAST", "1")
    assert models.settings()["steps"] == models.FAST["steps"]
    monkeypatch.delenv("LINATTN_FAST")
    assert models.settings() == models.FULL


def test_unknown_mixer_is_refused():
    with pytest.raises(ValueError, match="unknown mixer 'mamba'"):
        models.TinyLM("mamba")
