"""The kernel's side of grading: observe, never judge.

When the grader runs a notebook it exports AUTOGRADER_EXCHANGE, a folder it shares with the kernel. There
`check(exercise_id, fn, hidden)` finds the cases the grader drew for that exercise (with a seed the kernel
never sees), runs the learner's function on them and writes what it returned; `check_answer(question_id,
value)` writes the value. Neither raises, prints or returns a verdict: the grader reads these files after the
notebook has run and judges them in its own process (autograder.verdict), so nothing done inside the kernel can
change a verdict, and no answer key or reference result is needed here.

Files, all written with torch.save of plain data (the grader reads them with torch.load(weights_only=True)):
    cases/<exercise_id>.pt                {"visible": [case payloads], "hidden": [...]}  (written by the grader)
    observations/<exercise_id>.<visible|hidden>.pt   [observation payloads], one per case
    answers/<question_id>.pt              {"value": ...}
A later call with the same id replaces the file: the grader reads what the graded cell's call left last.
"""
import os
from pathlib import Path

import torch

ENV = "AUTOGRADER_EXCHANGE"


def exchange():
    """The exchange folder when the notebook is being graded, else None (self-study)."""
    folder = os.environ.get(ENV)
    return Path(folder) if folder else None


def plain(x):
    """x as data torch.load(weights_only=True) reads: tensors, numbers, str, None, lists, dicts."""
    if isinstance(x, torch.Tensor):
        return x.detach().as_subclass(torch.Tensor).clone()
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if hasattr(x, "tolist") and type(x).__module__ == "numpy":
        return x.tolist()
    if isinstance(x, (tuple, list)):
        return type(x)(plain(e) for e in x)
    if isinstance(x, (set, frozenset)):
        return {"__set__": sorted((plain(e) for e in x), key=repr)}
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    return {"__unreadable__": type(x).__name__}


def _save(data, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)


def record_check(exercise_id, fn, hidden):
    """Observe `fn` on the grader's cases of `exercise_id` and write the observations (nothing when there are
    no cases for that id: the grader then finds no observation and says so)."""
    from .cases import Case
    from .checker import exercise, observe

    folder = exchange()
    try:
        ex = exercise(exercise_id)
        drawn = torch.load(folder / "cases" / f"{exercise_id}.pt", weights_only=True)
    except Exception:
        return None
    payloads = drawn["visible"] + (drawn["hidden"] if hidden else [])
    observations = []
    for payload in payloads:
        try:
            observations.append(observe(ex, fn, Case.from_payload(payload), eager=True).to_payload())
        except Exception as err:  # the grader says "could not run"; a KeyboardInterrupt (the timeout) stops the cell
            observations.append({"error": f"the check could not run your function: {type(err).__name__}: {err}"})
    name = f"{exercise_id}.{'hidden' if hidden else 'visible'}.pt"
    try:
        _save(observations, folder / "observations" / name)
    except Exception:
        pass  # an unsavable result (or a full disk) reaches the grader as a check that did not run
    return None


def record_answer(question_id, value):
    try:
        _save({"value": plain(None if value is Ellipsis else value)}, exchange() / "answers" / f"{question_id}.pt")
    except Exception:
        pass
    return None
