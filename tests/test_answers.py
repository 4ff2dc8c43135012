"""Numeric, choice and ordering answers: checked against digests, with a hint for the option a learner chose."""
import pytest

from autograder.checks import answers


@pytest.fixture
def keys(tmp_path, monkeypatch):
    monkeypatch.setattr(answers, "KEY_DIR", tmp_path)
    (tmp_path / "99_quiz.json").write_text("{}")  # a notebook's key file, named after its folder
    return tmp_path


def wrong(question_id, answer):
    with pytest.raises(AssertionError) as info:
        answers.check_answer(question_id, answer)
    return str(info.value)


def test_a_wrong_choice_gets_the_hint_of_that_option(keys):
    hints = {"a": "a hint for a", "b": "a hint for b", "c": "a hint for c"}
    answers.add_key("99.pick", "choice", "b", options="abc", option_hints=hints)
    assert answers.check_answer("99.pick", "b") is None
    assert answers.check_answer("99.pick", " B ") is None
    assert wrong("99.pick", "c") == "99.pick: not the expected answer. a hint for c"
    assert "'e' is not an option" in wrong("99.pick", "e")


def test_a_wrong_set_of_choices_gets_the_hint_of_each_chosen_option(keys):
    hints = {c: f"about {c}" for c in "abcd"}
    answers.add_key("99.several", "choices", ["a", "c"], options="abcd", option_hints=hints)
    assert answers.check_answer("99.several", "c, a") is None
    assert wrong("99.several", "ab") == "99.several: not the expected answer. (a) about a (b) about b"


def test_option_hints_are_one_per_option(keys):
    with pytest.raises(ValueError, match=r"missing: \['c'\]"):
        answers.add_key("99.pick", "choice", "b", options="abc", option_hints={"a": "x", "b": "y"})
    with pytest.raises(ValueError, match="choice question"):
        answers.add_key("99.n", "int", 3, option_hints={"a": "x"})


def test_numbers_arrays_and_orders(keys):
    answers.add_key("99.n", "number", 0.1234, decimals=3, hint="round to 3 decimals")
    answers.add_key("99.m", "array", [[1, 2], [3, 4]])
    answers.add_key("99.o", "order", [2, 0, 1])
    assert answers.check_answer("99.n", 0.12341) is None
    assert wrong("99.n", 0.2) == ("99.n: not the expected answer (compared after rounding to 3 decimals)."
                                  " Hint: round to 3 decimals")
    assert "expected an array of shape (2, 2), got shape (2,)" in wrong("99.m", [1, 2])
    assert "expected 3 items in the order, got 2" in wrong("99.o", [2, 0])
    assert "not answered yet" in wrong("99.o", None)


def test_keys_live_in_the_file_named_after_the_notebook_folder(keys):
    answers.add_key("99.k", "int", 7)
    assert "99.k" in (keys / "99_quiz.json").read_text()
    with pytest.raises(FileNotFoundError, match=r"98_<topic>\.json \(python -m autograder new-notebook"):
        answers.add_key("98.k", "int", 7)  # no notebook 98: a key file is made with the notebook, not on the fly
    (keys / "99_other.json").write_text("{}")
    with pytest.raises(KeyError, match="several answer-key files for notebook 99"):
        answers.load_key("99.k")
