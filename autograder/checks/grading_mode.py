"""The kernel's side of grading: observe, never judge.

When the grader runs a notebook it exports AUTOGRADER_EXCHANGE, a folder it shares with the kernel. There
`check(exercise_id, fn, hidden)` finds the cases the grader drew for that exercise (with a seed the kernel
never sees), runs the learner's function on them and writes what it returned; `check_answer(question_id,
value)` writes the value. Neither raises, prints or returns a verdict: the grader reads these files after the
notebook has run and judges them in its own process (autograder.verdict), so nothing done inside the kernel can
change a verdict, and no answer key or reference result is needed here.

Files, all written with torch.save of plain data (the grader reads them with torch.load(weights_only=True)):
    cases/<exercise_id>.pt                {"visible": [case payloads], "hidden": [...]}  (written by the grader)
    observations/<exercise_id>.<visible|hidden>.<N>.pt   [observation payloads], one per case
    answers/<question_id>.<N>.pt                        {"value": ...}
N is the execution count of the cell making the call: the grader reads the records of the graded cell's own
calls (a demonstration cell elsewhere may call check_answer with a wrong value on purpose). A kernel that lies
about N only chooses among its own records: there is no oracle here to tell it which one is right.
"""
import os
import time
from pathlib import Path

import torch

ENV = "AUTOGRADER_EXCHANGE"
PROBE_SECONDS = 3.0  # per check call, for the runs that only explain a failure (see record_check)


def exchange():
    """The exchange folder when the notebook is being graded, else None (self-study)."""
    folder = os.environ.get(ENV)
    return Path(folder) if folder else None


def execution_count():
    """The number of the cell being run (In [N], the execution_count its notebook cell gets), 0 outside IPython.

    IPython counts the cell before running it, so while it runs the shell's counter is already N + 1 (a replay
    with store_history=False is not counted: its records get a number no stored cell has)."""
    try:
        from IPython import get_ipython

        return int(get_ipython().execution_count) - 1
    except Exception:
        return 0


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
    from .checker import exercise, observe, probe_cases
    from .exercise import Case

    folder = exchange()
    try:
        ex = exercise(exercise_id)
        drawn = torch.load(folder / "cases" / f"{exercise_id}.pt", weights_only=True)
    except Exception:
        return None
    payloads = drawn["visible"] + (drawn["hidden"] if hidden else [])
    observations, start = [], time.perf_counter()
    for payload in payloads:
        try:
            case = Case.from_payload(payload)
            obs = observe(ex, fn, case)
            for key, variant in probe_cases(ex, case).items():
                # the structure rules' probes decide a verdict: always run; the leak probes only explain a
                # failure, and cost a run per position (minutes for a Triton kernel): run while time is left
                if not key.startswith("leak:") or time.perf_counter() - start < PROBE_SECONDS:
                    obs.probe(key, variant)
            observations.append(obs.to_payload())
        except Exception as err:  # the grader says "could not run"; a KeyboardInterrupt (the timeout) stops the cell
            observations.append({"error": f"the check could not run your function: {type(err).__name__}: {err}"})
    name = f"{exercise_id}.{'hidden' if hidden else 'visible'}.{execution_count()}.pt"
    try:
        _save(observations, folder / "observations" / name)
    except Exception:
        pass  # an unsavable result (or a full disk) reaches the grader as a check that did not run
    return None


def record_answer(question_id, value):
    try:
        path = exchange() / "answers" / f"{question_id}.{execution_count()}.pt"
        _save({"value": plain(None if value is Ellipsis else value)}, path)
    except Exception:
        pass
    return None
