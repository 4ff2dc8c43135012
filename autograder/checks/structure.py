"""Checking how a result was computed, where the exercise is about structure.

While the learner's function runs, a torch function mode watches every torch call it makes and records facts:
how many calls, which functions, and the largest "second dimension" of any tensor produced (a T x T matrix has
two dimensions of size T; the states of the recurrent forms have at most one). A `Rule` turns those facts, for the
case and for variants of it (probes: the same call on a longer sequence, say), into a sentence or None.

    Rule(verdict, probes)   verdict(case, obs) -> message or None, reading obs.facts and obs.probe(key, variant);
                            probes(case) -> {key: variant Case}, the variants it reads (run up front when grading)

Rules read only recorded facts, so they judge an observation made in another process too.
"""
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode

# Calls that are attribute reads, not computation (x.shape, x.T through a property).
_NOT_COUNTED = {"__get__", "__set__", "size", "dim", "shape", "stride", "is_floating_point", "numel"}


def _name(func):
    name = getattr(func, "__name__", None) or str(func)
    return {"__matmul__": "matmul", "__rmatmul__": "matmul"}.get(name, name)


def _second_dim(x):
    """The second-largest dimension of a tensor (0 for tensors of fewer than two dimensions)."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        return 0
    return sorted(x.shape)[-2]


class TorchWatch(TorchFunctionMode):
    """Records the torch calls made while active: facts = {"calls", "functions", "max_second_dim"}."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.functions = set()
        self.max_second_dim = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        name = _name(func)
        if name not in _NOT_COUNTED:
            self.calls += 1
            self.functions.add(name)
        for out in result if isinstance(result, (tuple, list)) else (result,):
            self.max_second_dim = max(self.max_second_dim, _second_dim(out))
        return result

    def facts(self):
        return {"calls": self.calls, "functions": sorted(self.functions), "max_second_dim": self.max_second_dim}


@dataclass
class Rule:
    """A structural requirement: verdict(case, obs) -> message or None, with the probes it needs run first."""

    verdict: object
    probes: object = None  # case -> {key: Case}

    def variants(self, case):
        return self.probes(case) if self.probes else {}


def seq_len(case, name="q"):
    return case.inputs[name].shape[-2]


def no_square_matrix(what="T x T", why="the exercise is to compute it without one", name="q"):
    """No tensor with two dimensions as long as the sequence (choose cases with T larger than every other size)."""
    def verdict(case, obs):
        T = seq_len(case, name)
        if obs.facts.get("max_second_dim", 0) >= T > 1:
            return (f"your function builds a {what} matrix (a tensor with two dimensions of size >= T = {T}); {why}.")
        return None
    return Rule(verdict)


def no_torch_function(names, why):
    """None of torch's functions `names` (say scaled_dot_product_attention) is called."""
    def verdict(case, obs):
        used = sorted(set(obs.facts.get("functions", ())) & set(names))
        if used:
            return f"your function calls torch's `{used[0]}`: {why}."
        return None
    return Rule(verdict)


def longer(case, factor=2, names=("q", "k", "v")):
    """The case with its sequences repeated `factor` times along time (same sizes otherwise)."""
    from .cases import Case
    inputs = {n: (torch.cat([x] * factor, dim=-2) if n in names and isinstance(x, torch.Tensor) else x)
              for n, x in case.inputs.items()}
    return Case(inputs, dict(case.options), case.note)


def calls_grow_with_length(per_token, factor=4, names=("q", "k", "v"), name="q"):
    """Token by token: the number of torch calls grows with T (T steps of work), not constant as in a parallel form.

    per_token: what the message asks for, e.g. "run one softmax_attention_step per token".
    """
    def probes(case):
        return {f"longer:{factor}": longer(case, factor, names)}

    def verdict(case, obs):
        (key, variant), = probes(case).items()
        other = obs.probe(key, variant)
        if other is None or not other.ran:
            return None
        T = seq_len(case, name)
        grown = other.facts.get("calls", 0) - obs.facts.get("calls", 0)
        if grown < (factor - 1) * T:  # a loop over tokens makes at least one torch call per extra token
            return (f"your function does not work token by token: {factor} times the sequence length ({T} -> "
                    f"{factor * T} tokens) costs only {grown} more torch calls. The exercise is the recurrent form:"
                    f" {per_token}.")
        return None
    return Rule(verdict, probes)
