"""Checking how a result was computed, where the exercise is about structure.

While the learner's function runs, a torch function mode watches every torch call it makes and records facts:
how many calls, which functions, and the largest "second dimension" of any tensor produced (a T x T matrix has
two dimensions of size T; the states of the recurrent forms have at most one). A `Rule` turns those facts, for the
case and for variants of it (probes: the same call on a longer sequence, say), into a sentence or None.

    Rule(verdict, probes)   verdict(case, obs) -> message or None, reading obs.facts and obs.probe(key, variant);
                            probes(case) -> {key: variant Case}, the variants it reads (run up front when grading)

Rules read only recorded facts, so they judge an observation made in another process too.

The watcher also records where the first inf and the first NaN were made (facts["nonfinite"]): the torch
function and the line of the learner's code that called it, so that a NaN in the result can be traced to its
origin ("NaN from where") instead of guessed at.
"""
import linecache
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

# Calls that are attribute reads, not computation (x.shape, x.T through a property).
_NOT_COUNTED = {"__get__", "__set__", "size", "dim", "shape", "stride", "is_floating_point", "numel"}


def _name(func):
    name = getattr(func, "__name__", None) or str(func)
    return {"__matmul__": "matmul", "__rmatmul__": "matmul"}.get(name, name)


_NOT_THE_LEARNERS = (str(Path(__file__).parent), str(Path(torch.__file__).parent))


def _learner_line():
    """{"line": n, "code": text} of the innermost frame outside torch and the checks (the learner's call)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_NOT_THE_LEARNERS):
        frame = frame.f_back
    if frame is None:
        return {}
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno, frame.f_globals).strip()
    return {"line": frame.f_lineno, "code": code[:120], "in": frame.f_code.co_name}


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (tuple, list)):
        for e in x:
            yield from _tensors(e)
    elif isinstance(x, dict):
        for e in x.values():
            yield from _tensors(e)


def _has(test, x):
    return any(t.is_floating_point() and bool(test(t).any()) for t in _tensors(x))


def _finite(x):
    return all(not t.is_floating_point() or bool(torch.isfinite(t).all()) for t in _tensors(x))


_NONFINITE = (("nan", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf))
_IN_PLACE = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__idiv__"}


def _second_dim(x):
    """The second-largest dimension of a tensor (0 for tensors of fewer than two dimensions)."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        return 0
    return sorted(x.shape)[-2]


class TorchWatch(TorchFunctionMode):
    """Records the torch calls made while active: facts = {"calls", "functions", "max_second_dim", "nonfinite"}."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.functions = set()
        self.max_second_dim = 0
        self.nonfinite = {}  # "nan" / "+inf" / "-inf" -> where the first one was made from inputs without one

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        todo = [(kind, test) for kind, test in _NONFINITE if kind not in self.nonfinite]
        in_place = name in _IN_PLACE or (name.endswith("_") and not name.startswith("_"))
        finite_before = _finite(args[:1]) if todo and in_place else True
        with warnings.catch_warnings():  # torch's own warnings (some only once per process) would make the
            warnings.simplefilter("ignore")  # captured output differ from run to run; the checks explain instead
            result = func(*args, **kwargs)
        if name not in _NOT_COUNTED:
            self.calls += 1
            self.functions.add(name)
        for out in result if isinstance(result, (tuple, list)) else (result,):
            self.max_second_dim = max(self.max_second_dim, _second_dim(out))
        made = args[0] if in_place and args else result
        if todo and finite_before and not _finite(made):  # most calls stop at this one test
            for kind, test in todo:
                if _has(test, made) and not _has(test, (args, kwargs) if not in_place else args[1:]):
                    self.nonfinite[kind] = {"function": name, **_learner_line()}
        return result

    def facts(self):
        return {"calls": self.calls, "functions": sorted(self.functions), "max_second_dim": self.max_second_dim,
                "nonfinite": dict(self.nonfinite)}


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
    from .exercise import Case
    inputs = {n: (torch.cat([x] * factor, dim=-2) if n in names and isinstance(x, torch.Tensor) else x)
              for n, x in case.inputs.items()}
    return Case(inputs, dict(case.options), case.note)


def calls_grow_with_length(per_token, factor=4, names=("q", "k", "v"), name="q"):
    """Token by token: the number of torch calls grows with T (T steps of work), not constant as in a parallel form.

    per_token: what the message asks for, e.g. "run one softmax_attention_step per token".
    Judged on the cases without leading dimensions only: how a function loops does not depend on them, and the
    probe (a sequence `factor` times longer) stays cheap there.
    """
    def probes(case):
        if case.inputs[name].ndim != 2:
            return {}
        return {f"longer:{factor}": longer(case, factor, names)}

    def verdict(case, obs):
        if not probes(case):
            return None
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


def repeated(case, factor, names, dim):
    """The case with the inputs `names` repeated `factor` times along `dim` (their time axis)."""
    from .exercise import Case
    inputs = {n: (torch.cat([x] * factor, dim=dim) if n in names and isinstance(x, torch.Tensor) else x)
              for n, x in case.inputs.items()}
    return Case(inputs, dict(case.options), case.note)


def _extra_calls(case, obs, key, variant):
    """How many more torch calls the run on the longer variant made (None when it did not run)."""
    other = obs.probe(key, variant)
    if other is None or not other.ran:
        return None
    return other.facts.get("calls", 0) - obs.facts.get("calls", 0)


def calls_grow_with_steps(per_step, factor=4, names=("a", "b"), dim=0):
    """Step by step along any time axis `dim`: at least one more torch call per extra step (see
    calls_grow_with_length, which lengthens along -2)."""
    def probes(case):
        return {f"steps:{factor}": repeated(case, factor, names, dim)}

    def verdict(case, obs):
        (key, variant), = probes(case).items()
        T = case.inputs[names[-1]].shape[dim]
        grown = _extra_calls(case, obs, key, variant)
        if grown is not None and grown < (factor - 1) * T:
            return (f"your function does not work step by step: {factor} times the sequence length ({T} -> "
                    f"{factor * T} steps) costs only {grown} more torch calls. The exercise is the loop: {per_step}.")
        return None
    return Rule(verdict, probes)


def calls_grow_like_log_length(rounds, factor=64, names=("a", "b"), dim=0):
    """Log depth: a sequence `factor` times longer adds about log2(factor) rounds of whole-tensor work, far fewer
    torch calls than extra steps; a loop over the steps makes at least one call per step.

    rounds: what the message asks for, e.g. "ceil(log2 T) rounds, each one whole-tensor operation over all t".
    Judged on cases with T >= 4.
    """
    def probes(case):
        return {f"log:{factor}": repeated(case, factor, names, dim)}

    def verdict(case, obs):
        (key, variant), = probes(case).items()
        T = case.inputs[names[-1]].shape[dim]
        if T < 4:  # a few steps: the rounds added by the longer probe cost as many calls as the steps
            return None
        grown = _extra_calls(case, obs, key, variant)
        if grown is not None and grown >= (factor - 1) * T:
            return (f"your function works step by step: {factor} times the sequence length ({T} -> {factor * T}"
                    f" steps) costs {grown} more torch calls, at least one per extra step, where a parallel scan adds"
                    f" only about log2({factor}) = {factor.bit_length() - 1} rounds. The exercise is {rounds}.")
        return None
    return Rule(verdict, probes)
