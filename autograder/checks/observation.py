"""What a learner's function did, as plain data that can cross a process boundary.

`observe` (checker.py) runs the learner's function in the learner's process and records an `Observation`;
`judge` compares it with the reference anywhere, without calling the function again. In self-study both run in
the notebook's kernel. In grading, the observation is written by the (untrusted) kernel and judged by the grader,
so `to_payload` / `from_payload` keep to values that `torch.save` writes and `torch.load(weights_only=True)` reads
back safely: tensors, numbers, strings, None, lists, tuples and dicts. Anything else the function returned
(a numpy array, an object of its own) is kept as a `Foreign` description, enough to say "wrong type".
"""
import importlib
from dataclasses import dataclass, field

import torch

CALLABLE_TAG = "__callable__"
FOREIGN_TAG = "__foreign__"
TUPLE_TAG = "__tuple__"


@dataclass(frozen=True)
class Foreign:
    """A value that is not plain data, by description: its type's module and name, and a short repr."""

    module: str
    name: str
    text: str
    shape: tuple = None

    def __repr__(self):
        return self.text


def describe_foreign(x):
    shape = getattr(x, "shape", None)
    try:
        shape = tuple(int(s) for s in shape) if shape is not None else None
    except (TypeError, ValueError):
        shape = None
    return Foreign(type(x).__module__, type(x).__name__, repr(x)[:80], shape)


def encode(x):
    """x as plain data: tensors detached (views stay views), linattn_ref functions by name, the rest Foreign."""
    if isinstance(x, torch.Tensor):
        return x.detach()  # torch.save keeps the strides and offset of a view
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, tuple):
        return {TUPLE_TAG: [encode(e) for e in x]}
    if isinstance(x, list):
        return [encode(e) for e in x]
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        return {k: encode(v) for k, v in x.items()}
    if callable(x) and (getattr(x, "__module__", None) or "").startswith("linattn_ref"):
        return {CALLABLE_TAG: f"{x.__module__}:{x.__qualname__}"}
    if isinstance(x, Foreign):
        return {FOREIGN_TAG: [x.module, x.name, x.text, list(x.shape) if x.shape is not None else None]}
    return encode(describe_foreign(x))


def decode(x):
    """The inverse of encode (Foreign values stay Foreign)."""
    if isinstance(x, list):
        return [decode(e) for e in x]
    if isinstance(x, dict):
        if TUPLE_TAG in x and len(x) == 1:
            return tuple(decode(e) for e in x[TUPLE_TAG])
        if CALLABLE_TAG in x and len(x) == 1:
            return _named_callable(x[CALLABLE_TAG])
        if FOREIGN_TAG in x and len(x) == 1:
            module, name, text, shape = x[FOREIGN_TAG]
            return Foreign(str(module), str(name), str(text), tuple(shape) if shape is not None else None)
        return {k: decode(v) for k, v in x.items()}
    return x


def _named_callable(name):
    module, _, qualname = str(name).partition(":")
    if not module.startswith("linattn_ref"):
        raise ValueError(f"refusing to resolve {name!r}: only linattn_ref functions travel by name")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Observation:
    """One run of the learner's function on one case, and the extra runs (probes) the judge may need.

    error: the tutor's sentence for an exception the function raised (the exception itself stays behind);
    forbidden: the qualified name of a linattn_ref function it called that computes the answer;
    mutated: names of inputs it changed in place; facts: what the torch watcher saw while it ran (structure.py);
    probes: {key: Observation} of runs on variants of the case (leak probes "leak:<p>", structure probes);
    skipped: the function does not take an optional argument this case needs, so the case was not run.
    """

    result: object = None
    error: str = None
    not_attempted: bool = False
    forbidden: str = None
    output: str = ""
    mutated: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)
    skipped: bool = False
    rerun: object = field(default=None, repr=False, compare=False)  # (key, case) -> Observation, in-process only

    @property
    def ran(self):
        """The function returned a value (it raised nothing and called nothing forbidden)."""
        return not self.skipped and self.error is None and self.forbidden is None

    def probe(self, key, case):
        """The observation of the run on a variant of the case: recorded eagerly, or run now where that can be."""
        if key not in self.probes and self.rerun is not None:
            self.probes[key] = self.rerun(key, case)
        return self.probes.get(key)

    def to_payload(self):
        return {"result": encode(self.result), "error": self.error, "not_attempted": bool(self.not_attempted),
                "forbidden": self.forbidden, "output": str(self.output), "mutated": [str(m) for m in self.mutated],
                "facts": encode(self.facts), "probes": {str(k): p.to_payload() for k, p in self.probes.items()},
                "skipped": bool(self.skipped)}

    @classmethod
    def from_payload(cls, data):
        """An Observation from untrusted plain data: every field is checked for its type."""
        if not isinstance(data, dict):
            raise ValueError(f"an observation must be a dict, got {type(data).__name__}")

        def text(name):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"observation field {name!r} must be a string or None")
            return value

        probes = data.get("probes") or {}
        facts = decode(data.get("facts") or {})
        mutated = data.get("mutated") or []
        if not isinstance(probes, dict) or not isinstance(facts, dict) or not isinstance(mutated, list):
            raise ValueError("observation fields probes, facts and mutated must be a dict, a dict and a list")
        return cls(result=decode(data.get("result")), error=text("error"),
                   not_attempted=bool(data.get("not_attempted")), forbidden=text("forbidden"),
                   output=text("output") or "", mutated=[str(m) for m in mutated],
                   facts=facts, probes={str(k): cls.from_payload(p) for k, p in probes.items()},
                   skipped=bool(data.get("skipped")))
