"""Numeric, multiple-choice and ordering answers, checked against a digest so the answer never appears
in a notebook.

Each notebook has a key file `answer_keys/<NN_topic>.json`, named after its folder, mapping a question id to
{"kind": ..., "digest": ..., plus what may be told without giving the answer away (shape, options, length)}.
Add or change an entry with

    python -m autograder.answer_key add 01.keys_met_by_query_5 int 6
    python -m autograder.answer_key add 04.mu_2 array "[[10, 12], [17, 20]]"
    python -m autograder.answer_key add 03.primary_benefit choice b --options abcd \
        --option-hints '{"a": "...", "b": "...", "c": "...", "d": "..."}'
    python -m autograder.answer_key add 03.step_order order "[2, 0, 3, 1]"

Kinds: int, number (rounded to --decimals, default 3), bool, choice (one letter), choices (a set of
letters), order (a sequence), array (nested numbers, rounded to --decimals).
"""
import argparse
import hashlib
import json
import math
from pathlib import Path

from . import grading_mode

KEY_DIR = Path(__file__).parent / "answer_keys"
KINDS = ("int", "number", "bool", "choice", "choices", "order", "array")


class AnswerError(ValueError):
    """The answer cannot be read as the kind of answer the question asks for."""


def _number(x):
    if hasattr(x, "item") and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise AnswerError(f"expected a number, got {type(x).__name__} {x!r}")
    if not math.isfinite(x):
        raise AnswerError(f"expected a finite number, got {x!r}")
    return x


def _to_nested(x):
    if hasattr(x, "tolist"):  # torch tensors and numpy arrays
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_to_nested(e) for e in x]
    return x


def _shape(x):
    if isinstance(x, list):
        inner = {tuple(_shape(e)) for e in x}
        if len(inner) > 1:
            raise AnswerError("the rows of the array have different lengths")
        return [len(x), *(inner.pop() if inner else ())]
    return []


def _round(x, decimals):
    if isinstance(x, list):
        return [_round(e, decimals) for e in x]
    value = round(float(_number(x)), decimals)
    return 0.0 if value == 0 else value  # -0.0 and 0.0 are the same answer


def canonical(kind, value, decimals=3):
    """The answer as a canonical string (what gets hashed) plus the facts that may be shown (shape...)."""
    if kind == "int":
        v = _number(value)
        if isinstance(v, float) and not v.is_integer():
            raise AnswerError(f"expected a whole number, got {v!r}")
        return str(int(v)), {}
    if kind == "number":
        return repr(_round(value, decimals)), {}
    if kind == "bool":
        if hasattr(value, "item"):
            value = value.item()
        if not isinstance(value, bool):
            raise AnswerError(f"expected True or False, got {value!r}")
        return str(value), {}
    if kind == "choice":
        if not isinstance(value, str) or len(value.strip()) != 1:
            raise AnswerError(f"expected a single letter such as 'b', got {value!r}")
        return value.strip().lower(), {}
    if kind == "choices":
        if isinstance(value, str):
            value = list(value.replace(",", "").replace(" ", ""))
        if not isinstance(value, (list, tuple, set)) or not all(isinstance(c, str) for c in value):
            raise AnswerError(f"expected a set of letters such as {{'a', 'c'}}, got {value!r}")
        return ",".join(sorted({c.strip().lower() for c in value})), {}
    if kind == "order":
        value = _to_nested(value)
        if not isinstance(value, list):
            raise AnswerError(f"expected a list giving an order, got {type(value).__name__}")
        items = [str(e).strip().lower() for e in value]
        return ",".join(items), {"length": len(items)}
    if kind == "array":
        nested = _to_nested(value)
        if not isinstance(nested, list):
            nested = [nested] if not isinstance(nested, (int, float)) else nested
        shape = _shape(nested) if isinstance(nested, list) else []
        return json.dumps(_round(nested, decimals)), {"shape": shape}
    raise ValueError(f"unknown answer kind {kind!r}; one of {KINDS}")


def digest(question_id, canonical_text):
    return hashlib.sha256(f"{question_id}|{canonical_text}".encode()).hexdigest()


def _key_file(question_id):
    """The key file of the notebook a question id starts with: '06.gamma_one' -> answer_keys/06_retnet.json."""
    number = question_id.split(".", 1)[0]
    found = sorted(KEY_DIR.glob(f"{number}_*.json"))
    if len(found) > 1:
        raise KeyError(f"several answer-key files for notebook {number}: {', '.join(p.name for p in found)}")
    return found[0] if found else KEY_DIR / f"{number}_<topic>.json"


def load_key(question_id):
    path = _key_file(question_id)
    keys = json.loads(path.read_text()) if path.exists() else {}
    if question_id not in keys:
        raise KeyError(f"no answer key for question {question_id!r} (looked in {path.name})")
    return keys[question_id]


def add_key(question_id, kind, value, decimals=3, options=None, hint=None, option_hints=None):
    """Write the key of one question. option_hints ({letter: sentence}, one for EVERY option, the right one too,
    so the key does not tell which is right) is what a learner who picked that option reads."""
    text, facts = canonical(kind, value, decimals)
    entry = {"kind": kind, "digest": digest(question_id, text), **facts}
    if kind in ("number", "array"):
        entry["decimals"] = decimals
    if options:
        entry["options"] = options
    if hint:
        entry["hint"] = hint
    if option_hints:
        missing = sorted(set(options or "") - set(option_hints))
        if kind not in ("choice", "choices") or missing:
            raise ValueError(f"option hints need a choice question and one hint per option (missing: {missing})")
        entry["option_hints"] = dict(sorted(option_hints.items()))
    path = _key_file(question_id)
    if not path.exists():
        raise FileNotFoundError(f"no answer-key file for question {question_id!r}: expected"
                                f" {path.relative_to(KEY_DIR.parent)} (python -m autograder new-notebook creates it)")
    keys = json.loads(path.read_text())
    keys[question_id] = entry
    path.write_text(json.dumps(dict(sorted(keys.items())), indent=1) + "\n")
    return entry


def check_answer(question_id, answer):
    """Compare `answer` with the key of `question_id`. Returns None; raises AssertionError with a hint."""
    __tracebackhide__ = True  # learners see the message, not this function's source
    if grading_mode.exchange():  # being graded: record the value; the grader compares it outside the kernel
        return grading_mode.record_answer(question_id, answer)
    key = load_key(question_id)
    kind = key["kind"]
    if answer is None or answer is Ellipsis:
        raise AssertionError(f"{question_id}: not answered yet: replace None with your answer.")
    try:
        text, facts = canonical(kind, answer, key.get("decimals", 3))
    except AnswerError as err:
        raise AssertionError(f"{question_id}: {err}.") from None
    options = key.get("options")
    if options and kind in ("choice", "choices"):
        bad = [c for c in text.split(",") if c not in options]
        if bad:
            raise AssertionError(f"{question_id}: {bad[0]!r} is not an option; choose from {', '.join(options)}.")
    if "shape" in key and facts.get("shape") != key["shape"]:
        raise AssertionError(
            f"{question_id}: expected an array of shape {tuple(key['shape'])}, got shape {tuple(facts['shape'])}."
        )
    if "length" in key and facts.get("length") != key["length"]:
        raise AssertionError(f"{question_id}: expected {key['length']} items in the order, got {facts['length']}.")
    if digest(question_id, text) != key["digest"]:
        extra = f" Hint: {key['hint']}" if key.get("hint") else ""
        chosen = [key.get("option_hints", {}).get(c) for c in text.split(",")] if kind in ("choice", "choices") else []
        if any(chosen):
            extra = " " + " ".join(f"({c}) {h}" if kind == "choices" else h
                                   for c, h in zip(text.split(","), chosen) if h) + extra
        rounding = (f" (compared after rounding to {key['decimals']} decimals)"
                    if kind in ("number", "array") else "")
        raise AssertionError(f"{question_id}: not the expected answer{rounding}.{extra}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.answer_key", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add or replace the key of one question")
    add.add_argument("question_id", help="NN.name, NN being the notebook number")
    add.add_argument("kind", choices=KINDS)
    add.add_argument("value", help="the answer; JSON for arrays, orders and sets")
    add.add_argument("--decimals", type=int, default=3)
    add.add_argument("--options", help="the letters a choice may take, e.g. abcd")
    add.add_argument("--hint", help="a hint shown with a wrong answer")
    add.add_argument("--option-hints", help='JSON {"a": "...", "b": "..."}: what a learner who chose each option'
                     " reads when the answer is wrong (one for every option)")
    args = parser.parse_args(argv)
    value = args.value
    if args.kind in ("int", "number", "array", "order", "bool", "choices"):
        try:
            value = json.loads(value.replace("True", "true").replace("False", "false"))
        except json.JSONDecodeError:
            pass
    option_hints = json.loads(args.option_hints) if args.option_hints else None
    entry = add_key(args.question_id, args.kind, value, args.decimals, args.options, args.hint, option_hints)
    print(f"{args.question_id}: {entry}")


if __name__ == "__main__":
    main()
