"""What exercise test cells call: `check(exercise_id, fn)` for code, `check_answer(question_id, answer)` for
numeric, choice and ordering answers."""
from .answers import check_answer

__all__ = ["check_answer"]
