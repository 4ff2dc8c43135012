"""`check(exercise_id, fn)`: run a learner's function on an exercise's cases and explain the first failure.

For each case the learner's function runs on copies of the inputs, watched (see sandbox). Its result is
compared with the reference's; on a difference the explanation is, in order of preference: a named
mistake the output matches, a future-token leak found by perturbing later positions, a transposed or
constant-multiple or shifted-by-one result, and otherwise the first wrong value.
"""
import contextlib
import difflib
import inspect
import traceback
import warnings
from functools import partial
from pathlib import Path

import torch

from . import grading_mode
from .cases import GATE_INPUTS, output_only
from .compare import close, compare, matches
from .exercises import EXERCISES
from .sandbox import BoundedBuffer, clone_tree, code_objects, mutated_inputs, run_watched

_FORBIDDEN = {name: code_objects(ex.answers) for name, ex in EXERCISES.items()}
_NOT_THE_LEARNERS = (str(Path(__file__).parent), str(Path(torch.__file__).parent))
OUTPUT_SHOWN = 800  # characters of the learner's own printed output repeated in a failure message


def exercise(exercise_id):
    """The Exercise registered under exercise_id; an unknown id gets a ValueError listing close matches."""
    if exercise_id in EXERCISES:
        return EXERCISES[exercise_id]
    near = difflib.get_close_matches(str(exercise_id), list(EXERCISES), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    raise ValueError(f"unknown exercise id {exercise_id!r}.{hint} Known ids: {', '.join(EXERCISES)}.")


@contextlib.contextmanager
def quiet():
    """The check's own work never warns or writes to stderr (nbgrader zeroes a cell that writes to stderr).

    It also runs torch on one thread: the cases are tiny, and on a busy machine waking torch's thread pool
    for each small operation made the checks ten times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(BoundedBuffer(limit=0)):
                yield
    finally:
        torch.set_num_threads(threads)


def accepts(fn, names):
    """Whether fn can be called with these keyword arguments (True when its signature cannot be read)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return True
    return set(names) <= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _where(err):
    """'line 4 of your code: `x = y @ z`': the deepest frame outside torch and this package."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(_NOT_THE_LEARNERS)]
    if not frames:
        return ""
    f = frames[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f" (in {f.name}, line {f.lineno}:{code})"


def _not_attempted(err):
    """NotImplementedError, or (on a GPU) Triton refusing to compile a kernel body that still raises it."""
    if isinstance(err, NotImplementedError):
        return True
    compile_error = type(err).__name__ in ("CompilationError", "UnsupportedLanguageConstruct")
    return compile_error and "raise NotImplementedError" in str(err)


def _error_message(ex, err):
    if _not_attempted(err):
        return "not attempted yet: replace `raise NotImplementedError()` with your code."
    text = f"your function raised {type(err).__name__}: {err}{_where(err)}."
    if isinstance(err, TypeError) and ("argument" in str(err)):
        text += (f" The check calls it like the reference, {ex.name}{inspect.signature(ex.reference)}:"
                 " compare the parameters.")
    return text


def _result_names(ex, case, expected):
    if ex.output_names and not case.options.get("output_final_state"):
        return ex.output_names
    if case.options.get("output_final_state"):
        return ("the output o", "the final state")
    return None


def _time_dims(ex, case):
    if case.options.get("output_final_state"):
        return (ex.time_dims, None)
    return ex.time_dims


def _perturb(name, x, dim, p):
    """x with the positions after p along dim changed (gates stay valid gates)."""
    changed = x * 0.5 if name in GATE_INPUTS else 0.5 - x
    index = [slice(None)] * x.ndim
    index[dim] = slice(p + 1, None)
    y = x.clone()
    y[tuple(index)] = changed[tuple(index)]
    return y


def _parts(result, time_dims):
    """(tensor, time dim) pairs of a result, for the parts that have a time axis."""
    if isinstance(result, torch.Tensor):
        return [(result, time_dims)] if time_dims is not None else []
    if isinstance(result, (tuple, list)) and isinstance(time_dims, (tuple, list)):
        return [(r, d) for r, d in zip(result, time_dims) if d is not None and isinstance(r, torch.Tensor)]
    return []


def leak_probe(ex, fn, case):
    """The first output position that changes when only later inputs change, as (i, p), or None."""
    options = output_only(case)
    seq = {n: d for n, d in ex.seq_inputs.items() if isinstance(case.inputs.get(n), torch.Tensor)}
    if not seq:
        return None
    name, dim = next(iter(seq.items()))
    T = case.inputs[name].shape[dim]
    forbidden = _FORBIDDEN[ex.name]
    base = run_watched(fn, list(clone_tree(case.inputs).values()), clone_tree(options), forbidden)
    if base.error or base.forbidden:
        return None
    base_parts = _parts(base.result, ex.time_dims)
    for p in range(T - 1):
        inputs = {n: _perturb(n, x, seq[n], p) if n in seq else clone_tree(x) for n, x in case.inputs.items()}
        run = run_watched(fn, list(inputs.values()), clone_tree(options), forbidden)
        if run.error or run.forbidden:
            return None
        for (before, d), (after, _) in zip(base_parts, _parts(run.result, ex.time_dims)):
            if not isinstance(after, torch.Tensor) or after.shape != before.shape:
                return None
            d = d % before.ndim
            a, b = before.narrow(d, 0, p + 1).double(), after.narrow(d, 0, p + 1).double()
            same = close(b, a, before.dtype) | (torch.isnan(a) & torch.isnan(b))
            if not same.all():
                return int((~same).nonzero()[0][d]), p
    return None


def _first_bad_part(expected, got, time_dims):
    """The first (expected, got, time_dim) tensor pair that differs, walking tuples; None if not tensors."""
    if isinstance(expected, torch.Tensor):
        return (expected, got, time_dims) if isinstance(got, torch.Tensor) else None
    if isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)) and len(got) == len(expected):
        dims = time_dims if isinstance(time_dims, (tuple, list)) else [time_dims] * len(expected)
        for e, g, d in zip(expected, got, dims):
            if not matches(e, g):
                return _first_bad_part(e, g, d)
    return None


def _known_factor(factors, c):
    for value, message in factors.items():
        if abs(value - c) <= 1e-6 * max(1.0, abs(value)):
            return message
    return None


def generic_pattern(ex, case, expected, got):
    """Transposed, a constant multiple, or shifted by one position: a sentence, or None."""
    part = _first_bad_part(expected, got, _time_dims(ex, case))
    if part is None:
        return None
    e, g, time_dim = part
    if not e.is_floating_point() or g.dtype != e.dtype:
        return None
    if e.ndim >= 2 and e.shape[-1] != e.shape[-2] and g.shape == e.mT.shape and matches(e.mT, g):
        return "the result is transposed: swap the last two axes of the computation (which factor goes first?)."
    if e.ndim >= 2 and g.shape == e.shape and e.shape[-1] == e.shape[-2] and matches(e.mT, g):
        return "the result is transposed: entry [i, j] holds what belongs at [j, i]."
    if g.shape != e.shape:
        return None
    finite = torch.isfinite(e) & torch.isfinite(g)
    ed, gd = e.double()[finite], g.double()[finite]
    if ed.numel() and (ed * ed).sum() > 0:
        c = ((ed * gd).sum() / (ed * ed).sum()).item()
        if abs(c - 1) > 1e-6 and c != 0 and matches((e.double() * c).to(e.dtype), g):
            named = _known_factor(ex.factors(case), c) if ex.factors else None
            named = named or _known_factor({2.0: "a term is counted twice", 0.5: "a factor 2 is missing",
                                            -1.0: "the sign is flipped"}, c)
            return f"the result is scaled by a constant factor {c:.6g}" + (f": {named}." if named else
                                                                          ": a scale factor is off.")
    if time_dim is not None and e.shape[time_dim] > 1:
        d = time_dim % e.ndim
        T = e.shape[d]
        if matches(e.narrow(d, 0, T - 1), g.narrow(d, 1, T - 1)):
            return (f"the result is shifted by one position: at {ex.time_word} i it holds what belongs at i - 1"
                    " (an off-by-one: is position i itself included, j <= i?).")
        if matches(e.narrow(d, 1, T - 1), g.narrow(d, 0, T - 1)):
            return (f"the result is shifted by one position: at {ex.time_word} i it holds what belongs at i + 1"
                    " (an off-by-one that reads the next position).")
    return None


def named_mistake(ex, case, got):
    for mistake in ex.mistakes:
        try:
            alternative = mistake.make(case)
        except Exception:  # a mistake that does not apply to this case
            continue
        if alternative is not None and matches(alternative, got):
            return mistake.message
    return None


def explain(ex, fn, case, expected, got, problem):
    """The best explanation of a wrong result, with the plain difference after it."""
    if problem.kind != "dtype":
        mistake = named_mistake(ex, case, got)
        if mistake:
            return f"{mistake}.\n({problem.message})"
    if ex.causal and problem.kind in ("values", "nonfinite"):
        leak = leak_probe(ex, fn, case)
        if leak:
            i, p = leak
            return (f"future tokens leak into the output: the output at {ex.time_word} {i} changes when only the"
                    f" inputs after position {p} change. A causal result at position i may use positions j <= i"
                    f" only.\n({problem.message})")
    if problem.kind == "nonfinite":
        if ex.causal and problem.position == 0:
            return (f"{problem.message} Position 0 sees only itself: masking the diagonal too (j < i instead of"
                    " j <= i) leaves it nothing, an empty sum divided by zero.")
        return (f"{problem.message} Look for a division by zero or an exp that overflows (products of gates"
                " shrink fast: work in log space, exp(b_i - b_j) with j <= i stays <= 1).")
    if problem.kind in ("values", "shape"):
        pattern = generic_pattern(ex, case, expected, got)
        if pattern:
            return f"{pattern}\n({problem.message})"
    return problem.message


def run_case(ex, fn, case):
    """None if fn passes this case, else what went wrong."""
    expected = ex.reference(*clone_tree(case.inputs).values(), **clone_tree(case.options))
    inputs, options = clone_tree(case.inputs), clone_tree(case.options)
    run = run_watched(fn, list(inputs.values()), options, _FORBIDDEN[ex.name])
    if run.forbidden:
        message = (f"your function calls linattn_ref's `{run.forbidden.split('.')[-1]}` ({run.forbidden}), which"
                   " computes this answer for you; the exercise is to write it yourself with torch operations.")
    elif run.error is not None:
        message = _error_message(ex, run.error)
    else:
        changed = mutated_inputs({**case.inputs, **case.options}, {**inputs, **options})
        problem = compare(expected, run.result, _result_names(ex, case, expected), _time_dims(ex, case),
                          ex.time_word)
        if changed:
            message = (f"your function changed its input {', '.join(changed)} in place (an in-place operation such"
                       " as +=, [...] = or a method ending in _): the caller's tensors must stay as they were;"
                       " compute a new tensor instead (x = x + ..., or .clone() first).")
        elif problem is None:
            return None
        else:
            message = explain(ex, fn, case, expected, run.result, problem)
    if run.output.strip():
        shown = run.output[:OUTPUT_SHOWN] + ("..." if len(run.output) > OUTPUT_SHOWN else "")
        message += f"\nYour function printed (captured, shown here only):\n{shown}"
    return message


def check(exercise_id, fn, hidden=False):
    """Check the learner's `fn` against the reference on the exercise's visible cases (and held-out ones).

    Returns None when every case passes; raises AssertionError with an explanation otherwise. While the
    notebook is being graded it only records what fn returns, for the grader to judge (see grading_mode).
    """
    if grading_mode.exchange():
        return grading_mode.record_check(exercise_id, fn, hidden)
    ex = exercise(exercise_id)
    if not callable(fn):
        raise AssertionError(f"{ex.name}: expected your function, got {type(fn).__name__}; pass the function"
                             f" itself: check({ex.name!r}, {ex.name}).")
    with quiet():
        failure = _first_failure(ex, fn, hidden)
    if failure:
        raise AssertionError(failure)


def _first_failure(ex, fn, hidden):
    n_visible = len(ex.cases())
    cases = ex.cases(hidden)
    for n, case in enumerate(cases):
        if not accepts(fn, case.optional_params()):
            continue  # the notebook's version leaves these optional arguments out
        message = run_case(ex, fn, case)
        if message:
            label = (f"visible case {n + 1} of {n_visible}" if n < n_visible
                     else f"held-out case {n - n_visible + 1} of {len(cases) - n_visible}")
            return f"{ex.name}: {label} [{case.describe()}]:\n{message}"
    return None


class Check:
    """`check(exercise_id, fn, hidden=False)`, and `check.<exercise_id>(fn)` as a shorthand."""

    def __call__(self, exercise_id, fn, hidden=False):
        return check(exercise_id, fn, hidden)

    def __getattr__(self, exercise_id):
        # an AttributeError, so that hasattr() and IPython's probing of attributes (_repr_html_...) work
        if exercise_id not in EXERCISES:
            try:
                exercise(exercise_id)
            except ValueError as err:
                raise AttributeError(str(err)) from None
        return partial(check, exercise_id)

    def __dir__(self):
        return list(EXERCISES)

    def __repr__(self):
        return "<check(exercise_id, fn, hidden=False): the exercise checks of the course>"
