"""Multiple-choice questions of notebooks 00-04 (and 09.why_16): the length of an option never gives the answer
away, and every option has its own hint in the key.

The options are read from the question's markdown in the solution notebook ("(a) ...", one option per line or
separated by <br> / &nbsp;) and the right answer from the solution cell, so the test follows the notebook.
"""
import ast
import json
import re
from pathlib import Path

import pytest

from autograder.checks import answers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("solutions/0[0-4]_*/*.ipynb")) + [ROOT / "solutions/09_triton/09_triton.ipynb"]
ONLY = {"09": {"09.why_16"}}  # of notebook 09, only this question is covered here
# Options drawn as pictures of one size (score matrices): their length says nothing.
PICTURES = {"01.violating_score_matrix"}
OPTION = re.compile(r"\(([a-h])\)\s*(.*?)(?=\s*(?:-\s*)?\([a-h]\)\s|\s*$)", re.S)


def _solution_value(source):
    """The value assigned between BEGIN SOLUTION and END SOLUTION."""
    body = source.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
    return ast.literal_eval(ast.parse(body).body[-1].value)


def _options(markdown):
    """{letter: text} of the option list of a question's markdown (text as a reader sees it, spaces collapsed)."""
    block = markdown[markdown.index("(a)"):]
    block = re.split(r"\n\s*\n", block, maxsplit=1)[0] if "\n\n" in block else block  # up to the next paragraph
    text = re.sub(r"<br>|&nbsp;", " ", block)
    return {letter: " ".join(body.split()) for letter, body in OPTION.findall(text)}


def choice_questions():
    """(question id, right answer, {letter: option text}, markdown) of every choice question covered here."""
    found = []
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        sources = ["".join(c["source"]) for c in cells]
        for n, source in enumerate(sources):
            match = re.search(r'check_answer\("(\d\d\.\w+)"', source)
            if not match:
                continue
            qid = match.group(1)
            key = answers.load_key(qid)
            if key["kind"] not in ("choice", "choices") or qid not in ONLY.get(qid[:2], {qid}):
                continue
            answer_cell = next(s for s in reversed(sources[:n]) if "### BEGIN SOLUTION" in s)
            question = next(s for s, c in zip(reversed(sources[:n]), reversed(cells[:n]))
                            if c["cell_type"] == "markdown" and "(a)" in s)
            found.append((qid, _solution_value(answer_cell), _options(question), question))
    return found


QUESTIONS = choice_questions()


def test_every_choice_question_is_found():
    ids = {q[0] for q in QUESTIONS}
    assert len(ids) == 13 and "09.why_16" in ids and PICTURES <= ids, sorted(ids)


@pytest.mark.parametrize("qid, right, options, markdown", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_the_right_option_is_not_the_longest(qid, right, options, markdown):
    key = answers.load_key(qid)
    assert set(options) == set(key["options"]), f"{qid}: options read {sorted(options)}, key has {key['options']}"
    if qid in PICTURES:
        assert "```" in markdown
        return
    right = {right} if isinstance(right, str) else set(right)
    longest = max(len(text) for letter, text in options.items() if letter not in right)
    for letter in right:
        assert len(options[letter]) <= longest, (f"{qid}: the right option ({letter}) is the longest: "
                                                 f"{ {k: len(v) for k, v in options.items()} }")


@pytest.mark.parametrize("qid, right, options, markdown", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_each_option_has_its_hint_and_a_wrong_pick_shows_it(qid, right, options, markdown):
    key = answers.load_key(qid)
    assert set(key.get("option_hints", {})) == set(key["options"]), qid
    assert answers.check_answer(qid, right) is None
    right = {right} if isinstance(right, str) else set(right)
    for letter in sorted(set(key["options"]) - right):
        pick = letter if key["kind"] == "choice" else {letter}
        with pytest.raises(AssertionError) as info:
            answers.check_answer(qid, pick)
        assert key["option_hints"][letter] in str(info.value)
