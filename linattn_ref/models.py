"""A tiny language model whose sequence mixer is any of the course's attentions, and its training on MQAR.

    embedding -> 2 x [ x + mixer(norm(x)),  x + mlp(norm(x)) ] -> norm -> head

The mixer is chosen by name (MIXERS) and always runs the course's own code: softmax attention's parallel form, and
the chunked forms of linear attention, retention and GLA, with gradients from torch's autograd through them.
As in Zoology and Based, each mixer first applies a short causal convolution (3 tokens) to its input, so every
model can see the previous token; what then differs between them is how they recall across the sequence.
"""
import contextlib
import math
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from . import mqar
from .feature_maps import elu_plus_one
from .gla import gla_chunk, gla_gates
from .linear_attention import linear_attention_chunk
from .retnet import multiscale_gammas, retention_chunk
from .softmax_attention import softmax_attention_parallel

MIXERS = ("softmax", "linear", "retnet", "gla")


def _check_kind(kind):
    if kind not in MIXERS:
        raise ValueError(f"unknown mixer {kind!r}; one of {', '.join(MIXERS)}")


def sequence_mixer(q, k, v, kind, g=None, chunk_size=16):
    """The mixer `kind` on heads q, k [B, H, T, d_k], v [B, H, T, d_v] -> [B, H, T, d_v].

    softmax: causal softmax attention (parallel form); linear: normalized linear attention with phi = elu + 1;
    retnet: retention with the multi-scale decays gamma_h = 1 - 2^(-5-h) of the H heads; gla: GLA with the
    log-gates g [B, H, T, d_k]. The last three use their chunked forms with chunks of chunk_size.
    """
    _check_kind(kind)
    if kind == "softmax":
        return softmax_attention_parallel(q, k, v)
    if kind == "linear":
        return linear_attention_chunk(q, k, v, feature_map=elu_plus_one, chunk_size=chunk_size)
    if kind == "retnet":
        return retention_chunk(q, k, v, multiscale_gammas(q.shape[-3]).to(q.device), chunk_size=chunk_size)
    if g is None:
        raise ValueError("the gla mixer needs the log-gates g")
    return gla_chunk(q, k, v, g, chunk_size=chunk_size)


def state_size(kind, n_heads, d_key, d_value, seq_len):
    """How many numbers one layer of the mixer keeps to generate the next token after seq_len tokens.

    softmax: the KV cache, seq_len keys and values per head; linear: mu (d_key x d_value) and nu (d_key) per head;
    retnet and gla: S (d_key x d_value) per head. Only softmax attention's memory grows with seq_len.
    """
    _check_kind(kind)
    if kind == "softmax":
        return n_heads * seq_len * (d_key + d_value)
    if kind == "linear":
        return n_heads * (d_key * d_value + d_key)
    return n_heads * d_key * d_value


def _rms_norm(x, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class Mixer(nn.Module):
    """Project to heads, mix along the sequence with `mixer_fn`, project back.

    mixer_fn and gates_fn default to the reference's sequence_mixer and gla_gates; pass your own to train them.
    Retention and GLA outputs are normalized per head (RetNet's group norm, GLA's RMS norm): their states are sums
    without a denominator.
    """

    def __init__(self, kind, d_model, n_heads, d_key, gate_rank=16, chunk_size=16, mixer_fn=None, gates_fn=None):
        super().__init__()
        _check_kind(kind)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
        self.kind, self.n_heads, self.d_key, self.chunk_size = kind, n_heads, d_key, chunk_size
        self.d_value = d_model // n_heads
        self.mixer_fn = mixer_fn or sequence_mixer
        self.gates_fn = gates_fn or gla_gates
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, groups=d_model, padding=2)  # causal after trimming
        self.qk = nn.Linear(d_model, 2 * n_heads * d_key, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        if kind == "gla":
            self.w_down = nn.Parameter(torch.randn(d_model, gate_rank) / math.sqrt(d_model))
            self.w_up = nn.Parameter(torch.randn(gate_rank, n_heads * d_key) / math.sqrt(gate_rank))
            self.gate_bias = nn.Parameter(torch.zeros(n_heads * d_key))

    def heads(self, x, d):
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, d).transpose(1, 2)  # [B, H, T, d]

    def forward(self, x):
        B, T, D = x.shape
        x = self.conv(x.transpose(1, 2))[..., :T].transpose(1, 2)  # position t sees tokens t-2, t-1, t
        q, k = self.qk(x).chunk(2, dim=-1)
        q, k, v = self.heads(q, self.d_key), self.heads(k, self.d_key), self.heads(self.v(x), self.d_value)
        g = None
        if self.kind == "gla":
            g = self.heads(self.gates_fn(x, self.w_down, self.w_up, self.gate_bias), self.d_key)
        o = self.mixer_fn(q, k, v, self.kind, g, chunk_size=self.chunk_size)
        if self.kind in ("retnet", "gla"):
            o = _rms_norm(o)
        return self.out(o.transpose(1, 2).reshape(B, T, D))

    def state_size(self, seq_len):
        return state_size(self.kind, self.n_heads, self.d_key, self.d_value, seq_len)


class Block(nn.Module):
    def __init__(self, d_model, mixer):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.mixer = mixer
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyLM(nn.Module):
    """Embedding, n_layers blocks of mixer + MLP with residuals and pre-norms, and an output head."""

    def __init__(self, kind, vocab_size=128, d_model=64, n_layers=2, n_heads=4, d_key=16, seq_len=64, **mixer_kw):
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(seq_len, d_model))
        self.blocks = nn.ModuleList(Block(d_model, Mixer(kind, d_model, n_heads, d_key, **mixer_kw))
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def state_size(self, seq_len):
        """Numbers kept across all layers to generate after seq_len tokens (the KV cache for softmax)."""
        return sum(block.mixer.state_size(seq_len) for block in self.blocks)


# The experiment of notebook 10 and benchmarks/capstone_mqar.py. FULL stops a model after 600 steps or 45 s,
# whichever comes first (on a busy 2-core CPU the time cap can decide; benchmarks/capstone_mqar.py lifts it).
# FAST (LINATTN_FAST=1, set by the tests and grading) only shows that everything runs and the loss falls.
# On a GPU, raise seq_len, train_pairs and steps.
FULL = {"vocab_size": 64, "seq_len": 32, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_key": 4,
        "train_pairs": (2, 4, 6, 8, 10), "steps": 600, "batch_size": 32, "lr": 3e-3, "max_seconds": 45.0,
        "feature_dims": (2, 4, 8, 16), "eval_seqs": 256}
FAST = {**FULL, "train_pairs": (2, 4), "steps": 16, "batch_size": 8, "max_seconds": None, "eval_seqs": 32}


def settings():
    """FAST when the environment variable LINATTN_FAST is 1 (tests, grading), else FULL."""
    return dict(FAST if os.environ.get("LINATTN_FAST") == "1" else FULL)


def train_one(kind, cfg, d_key=None, seed=0, device=None, progress=True, **mixer_kw):
    """Build a TinyLM with the mixer `kind`, train it on MQAR with the settings cfg, and measure its recall.

    Returns (model, record): record holds the state size, the steps and seconds it trained, its loss curve and
    its held-out accuracy for each number of pairs in cfg["train_pairs"].
    """
    torch.manual_seed(seed)
    d_key = cfg["d_key"] if d_key is None else d_key
    model = TinyLM(kind, cfg["vocab_size"], cfg["d_model"], cfg["n_layers"], cfg["n_heads"], d_key, cfg["seq_len"],
                   **mixer_kw).to(device or default_device())
    history = train_mqar(model, cfg["train_pairs"], cfg["steps"], cfg["batch_size"], cfg["lr"], cfg["vocab_size"],
                         cfg["seq_len"], seed, cfg["max_seconds"], progress)
    record = {"kind": kind, "d_key": d_key, "state_size": model.state_size(cfg["seq_len"]),
              "steps": history["steps"], "seconds": round(history["seconds"], 1),
              "loss": [round(x, 4) for x in history["loss"]],
              "accuracy": {n: evaluate(model, n, cfg["eval_seqs"], cfg["vocab_size"], cfg["seq_len"])
                           for n in cfg["train_pairs"]}}
    return model, record


def default_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def one_cpu_thread(device):
    """Run torch on one thread on the CPU. The matrices are tiny: one thread is as fast, and on a busy machine the
    idle threads of torch's pool, spinning, made a training step up to ten times slower."""
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def evaluate(model, n_pairs, n_seqs=256, vocab_size=128, seq_len=64, seed=10_000):
    """Accuracy on held-out sequences (fixed seed, never used in training) with n_pairs pairs, all queried."""
    device = next(model.parameters()).device
    inputs, targets = mqar.mqar_batch(n_seqs, n_pairs, n_pairs, vocab_size, seq_len, seed + n_pairs)
    model.eval()
    with torch.no_grad(), one_cpu_thread(device):
        logits = model(inputs.to(device))
    model.train()
    return mqar.accuracy(logits.cpu(), targets)


def train_mqar(model, pair_counts=(4, 8, 12, 16), steps=2000, batch_size=64, lr=3e-3, vocab_size=128, seq_len=64,
               seed=0, max_seconds=None, progress=True):
    """Train on MQAR batches whose number of pairs cycles through pair_counts (all pairs queried); AdamW with a
    short warm-up and a cosine decay. Stops after `steps` or `max_seconds`. Shows a tqdm bar (on stderr) with the
    loss and the accuracy of the last batch. Returns {"loss": [...], "accuracy": [...], "seconds", "steps"}.
    """
    device = next(model.parameters()).device
    with one_cpu_thread(device):
        return _train(model, device, pair_counts, steps, batch_size, lr, vocab_size, seq_len, seed, max_seconds,
                      progress)


def _train(model, device, pair_counts, steps, batch_size, lr, vocab_size, seq_len, seed, max_seconds, progress):
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    history = {"loss": [], "accuracy": []}
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=model.kind if hasattr(model, "kind") else "train", disable=not progress)
    for step in bar:
        n = pair_counts[step % len(pair_counts)]
        inputs, targets = mqar.mqar_batch(batch_size, n, n, vocab_size, seq_len, seed * 1_000_003 + step)
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=mqar.IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history["loss"].append(loss.item())
        history["accuracy"].append(mqar.accuracy(logits.detach().cpu(), targets.cpu()))
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{history['accuracy'][-1]:.2f}")
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    bar.close()
    history["seconds"] = time.perf_counter() - start
    history["steps"] = len(history["loss"])
    return history
