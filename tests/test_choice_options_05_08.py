"""Multiple-choice questions of notebooks 05-08: the options parsed from the notebook text, the right option (from
the solution cell) is not given away by being the longest, and every option has its own hint in the key."""
import ast
import json
import re
from pathlib import Path

import pytest

from autograder.checks import answers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("05_recurrent_memory", "06_retnet", "07_gla", "08_chunkwise")


def _source(cell):
    return "".join(cell["source"])


def _options(markdown):
    """{letter: text} from the paragraph that starts at '(a)': bullet lists and options on one line both."""
    start = markdown.index("(a)")
    paragraph = markdown[start:].split("\n\n")[0]
    parts = re.split(r"(?:^|\s)(?:-\s+)?\(([a-z])\)\s+", " " + paragraph)
    return {letter: " ".join(text.split()) for letter, text in zip(parts[1::2], parts[2::2])}


def _solution_value(cell):
    body = _source(cell).split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
    return ast.literal_eval(body.split("=", 1)[1].strip())


def choice_questions():
    """(question id, kind, options, right answer) for every choice question of the notebooks."""
    out = []
    for name in NOTEBOOKS:
        cells = json.loads((ROOT / "solutions" / name / f"{name}.ipynb").read_text())["cells"]
        keys = json.loads((answers.KEY_DIR / f"{name}.json").read_text())
        for n, cell in enumerate(cells):
            found = re.search(r'check_answer\("([\w.]+)", (\w+)\)', _source(cell))
            if not found or keys[found[1]]["kind"] not in ("choice", "choices"):
                continue
            answer_cell = next(c for c in reversed(cells[:n]) if f"{found[2]} = " in _source(c))
            question = next(c for c in reversed(cells[:n]) if c["cell_type"] == "markdown" and "(a)" in _source(c))
            out.append((found[1], keys[found[1]], _options(_source(question)), _solution_value(answer_cell)))
    return out


QUESTIONS = choice_questions()


def test_every_choice_question_is_found():
    assert len(QUESTIONS) == 7, [q[0] for q in QUESTIONS]


@pytest.mark.parametrize("question", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_the_longest_option_does_not_give_the_answer_away(question):
    qid, key, options, right = question
    assert "".join(sorted(options)) == key["options"], options
    answers.check_answer(qid, right)  # the solution cell's value is the key's answer: the parse read the right cell
    right = set(right) if key["kind"] == "choices" else {right}
    longest_wrong = max(len(text) for letter, text in options.items() if letter not in right)
    assert all(len(options[letter]) <= longest_wrong for letter in right), {k: len(v) for k, v in options.items()}


@pytest.mark.parametrize("question", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_a_wrong_option_gets_its_own_hint(question):
    qid, key, options, right = question
    assert set(key.get("option_hints", {})) == set(options)
    wrong = next(letter for letter in options if letter not in set(right))
    with pytest.raises(AssertionError, match=re.escape(key["option_hints"][wrong])):
        answers.check_answer(qid, {wrong} if key["kind"] == "choices" else wrong)
