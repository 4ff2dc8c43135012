"""What exercise test cells call: `check(exercise_id, fn)` for code, `check_answer(question_id, answer)` for
numeric, choice and ordering answers.

    check("causal_mask", causal_mask)                 # the visible cases
    check("causal_mask", causal_mask, hidden=True)    # and the held-out ones (inside the hidden-test markers)
    check.causal_mask(causal_mask)                    # the same as the first line

Both return None on success and raise AssertionError with an explanation otherwise. `EXERCISES` maps each
exercise id (the name of the function the learner writes) to its `Exercise`.
"""
from .answers import check_answer
from .checker import Check
from .registry import EXERCISES, Case, Exercise, Mistake

check = Check()

__all__ = ["check", "check_answer", "EXERCISES", "Exercise", "Case", "Mistake"]
