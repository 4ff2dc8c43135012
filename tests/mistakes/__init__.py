"""A bank of wrong answers, written the way learners get the exercises wrong.

Each module registers functions with `@wrong(exercise_id, phrase)`: the check of that exercise must reject
the function with a message containing `phrase`, the name of the mistake class (say "upper triangle",
"not normalized", "future tokens leak"). Every entry must fail the VISIBLE check (tests/test_checks.py): a
learner studying alone never sees the held-out cases.

Right answers written differently from the reference (`@right(exercise_id)`, or a module's CORRECT dict) must
pass every check, visible and held-out (tests/test_checks_solutions.py).
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
RIGHT = {}  # exercise id -> a right answer written differently from the reference: every check must pass it


def default_scale(q, scale):
    """The scale an attention function uses: the one given, or d_k ** -0.5 (the one helper the tests share)."""
    return q.shape[-1] ** -0.5 if scale is None else scale


def wrong(exercise, phrase):
    def register(fn):
        BANK.append(WrongAnswer(exercise, phrase, fn))
        return fn
    return register


def right(exercise):
    """Register a right answer to `exercise`, written another way than the reference (tests/test_checks_solutions)."""
    def register(fn):
        if exercise in RIGHT:
            raise ValueError(f"a second right answer to {exercise}: {fn.__name__}")
        RIGHT[exercise] = fn
        return fn
    return register


def _modules():
    return [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]


def load():
    """Every registered wrong answer (imports the bank's modules once)."""
    _modules()
    return list(BANK)


def right_answers():
    """{exercise id: right answer written differently}: the @right ones and each module's CORRECT dict."""
    found = dict(RIGHT)
    for module in _modules():
        found.update(getattr(module, "CORRECT", {}))
    return found
