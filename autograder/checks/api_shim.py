"""TEMPORARY: the observe/judge API announced for main ("checks: observe in the learner's process, judge
anywhere"), reduced to what autograder.verdict needs until that commit lands. Deleted at the merge."""
import importlib
import zlib

import torch

from .cases import Case
from .checker import _FORBIDDEN, _error_message, _result_names, _time_dims, accepts, exercise, explain
from .compare import compare
from .sandbox import clone_tree, mutated_inputs, run_watched

__all__ = ["exercise", "observe", "judge", "Observation", "cases", "case_to_payload", "case_from_payload"]


def _encode(x):
    if isinstance(x, torch.Tensor):
        return x.detach().as_subclass(torch.Tensor).clone()
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if isinstance(x, (tuple, list)):
        return type(x)(_encode(e) for e in x)
    if isinstance(x, dict):
        return {str(k): _encode(v) for k, v in x.items()}
    if callable(x) and getattr(x, "__module__", "").startswith("linattn_ref"):
        return {"__callable__": f"{x.__module__}:{x.__qualname__}"}
    return {"__unreadable__": type(x).__name__}


def _decode(x):
    if isinstance(x, dict) and "__callable__" in x:
        module, _, name = x["__callable__"].partition(":")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    if isinstance(x, (tuple, list)):
        return type(x)(_decode(e) for e in x)
    if isinstance(x, dict):
        return {k: _decode(v) for k, v in x.items()}
    return x


def cases(ex, hidden=False, seed=None):
    gen = torch.Generator().manual_seed(zlib.crc32(ex.name.encode()) if seed is None else seed)
    visible = ex.visible_cases(gen)
    return visible + ex.hidden_cases(gen) if hidden else visible


def case_to_payload(case):
    return {"inputs": _encode(case.inputs), "options": _encode(case.options), "note": case.note}


def case_from_payload(p):
    return Case(_decode(p["inputs"]), _decode(p["options"]), p.get("note", ""))


class Observation(dict):
    """What the learner's function did on one case: skipped, result, error, forbidden, output, changed."""

    def to_payload(self):
        return _encode(dict(self))

    @classmethod
    def from_payload(cls, data):
        return cls(data)


def observe(ex, fn, case, eager=True):
    if not accepts(fn, case.optional_params()):
        return Observation(skipped=True)
    inputs, options = clone_tree(case.inputs), clone_tree(case.options)
    run = run_watched(fn, list(inputs.values()), options, _FORBIDDEN[ex.name])
    error = None
    if run.error is not None:
        error = {"type": type(run.error).__name__, "message": _error_message(ex, run.error)}
    return Observation(skipped=False, result=_encode(run.result), error=error, forbidden=run.forbidden,
                       output=run.output, changed=mutated_inputs({**case.inputs, **case.options},
                                                                 {**inputs, **options}))


def judge(ex, case, obs):
    if obs.get("skipped"):
        return None
    if obs.get("forbidden"):
        name = obs["forbidden"]
        return (f"your function calls linattn_ref's `{name.split('.')[-1]}` ({name}), which computes this answer"
                " for you; the exercise is to write it yourself with torch operations.")
    if obs.get("error"):
        return obs["error"]["message"]
    if obs.get("changed"):
        return (f"your function changed its input {', '.join(obs['changed'])} in place (an in-place operation such"
                " as +=, [...] = or a method ending in _): the caller's tensors must stay as they were;"
                " compute a new tensor instead (x = x + ..., or .clone() first).")
    expected = ex.reference(*clone_tree(case.inputs).values(), **clone_tree(case.options))
    got = obs.get("result")
    problem = compare(expected, got, _result_names(ex, case, expected), _time_dims(ex, case), ex.time_word)
    if problem is None:
        return None
    return explain(ex, None, case, expected, got, problem)
