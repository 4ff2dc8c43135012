"""A bank of wrong answers, written the way learners get the exercises wrong.

Each module registers functions with `@wrong(exercise_id, phrase)`: the check of that exercise must reject
the function with a message containing `phrase`, the name of the mistake class (say "upper triangle",
"not normalized", "future tokens leak"). Every entry must fail the VISIBLE check (tests/test_checks.py): a
learner studying alone never sees the held-out cases.
"""
import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class WrongAnswer:
    exercise: str
    phrase: str
    fn: object

    @property
    def id(self):
        return f"{self.exercise}:{self.fn.__name__}"


BANK = []


def default_scale(q, scale):
    """The scale an attention function uses: the one given, or d_k ** -0.5 (the one helper the tests share)."""
    return q.shape[-1] ** -0.5 if scale is None else scale


def wrong(exercise, phrase):
    def register(fn):
        BANK.append(WrongAnswer(exercise, phrase, fn))
        return fn
    return register


def load():
    """Every registered wrong answer (imports the bank's modules once)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return list(BANK)
