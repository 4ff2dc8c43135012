"""`check(exercise_id, fn)`: run a learner's function on an exercise's cases and explain the first failure.

A check is two steps, so that the verdict can be reached outside the learner's process when grading:
- `observe(ex, fn, case)` runs the learner's function on copies of the inputs, watched (see sandbox and
  structure), and records an Observation: the result, or the error, printed output, inputs changed in place,
  what torch calls it made, and the runs on variants of the case the judge may need (probes);
- `judge(ex, case, obs)` compares the observation with the reference. On a difference the explanation is, in
  order of preference: a named mistake the output matches, a future-token leak found by perturbing later
  positions, a transposed or constant-multiple or shifted-by-one result, and otherwise the first wrong value.
  A right result must also pass the exercise's structure rules (token by token, no T x T matrix, ...).
"""
import contextlib
import difflib
import importlib.util
import inspect
import re
import traceback
import warnings
from functools import partial
from pathlib import Path

import torch

from . import grading_mode
from .compare import close, compare, matches
from .exercise import GATE_INPUTS, Case, output_only
from .memory_guard import OutOfBounds, guard
from .observation import Observation
from .registry import EXERCISES
from .structure import TorchWatch
from .watch import BoundedBuffer, clone_tree, code_objects, mutated_inputs, run_watched


def _triton_dir():
    """Triton's folder (its interpreter's frames are not the learner's code), found without importing triton: the
    notebook must set TRITON_INTERPRET before triton is first imported."""
    spec = importlib.util.find_spec("triton")
    return str(Path(spec.origin).parent) if spec and spec.origin else "\0"


_FORBIDDEN = {name: code_objects(ex.answers) for name, ex in EXERCISES.items()}
_NOT_THE_LEARNERS = (str(Path(__file__).parent), str(Path(torch.__file__).parent), _triton_dir())
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


def _learner_frame(err):
    """The deepest frame of the traceback outside torch and this package (the learner's line), or None."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(_NOT_THE_LEARNERS)]
    return frames[-1] if frames else None


def _where(err):
    """' (in f, line 4: `x = y @ z`)': where in the learner's code the error was raised."""
    f = _learner_frame(err)
    if f is None:
        return ""
    code = f" `{f.line.strip()}`" if f.line else ""
    return f" (in {f.name}, line {f.lineno}:{code})"


def _error_hint(err):
    """What a common error means, read from the learner's line and torch's message."""
    f = _learner_frame(err)
    line = (f.line or "") if f else ""
    if re.search(r"\.T\b", line):
        return (" `.T` reverses every axis of a tensor with more than two (a [B, H, T, d] tensor becomes"
                " [d, T, H, B]): transpose the last two axes with .mT or .transpose(-2, -1).")
    if "must match the size of tensor" in str(err):
        return (" Two tensors do not line up for broadcasting (sizes are matched from the last axis). A reduction"
                " without keepdim=True, such as x.sum(-1), drops its axis, so the result no longer lines up with"
                " the other tensor's axes: keep the axis (keepdim=True) or unsqueeze(-1).")
    return ""


def _not_attempted(err):
    """NotImplementedError, or (on a GPU) Triton refusing to compile a kernel body that still raises it."""
    if isinstance(err, NotImplementedError):
        return True
    compile_error = type(err).__name__ in ("CompilationError", "UnsupportedLanguageConstruct")
    return compile_error and "raise NotImplementedError" in str(err)


def _error_message(ex, err):
    if _not_attempted(err):
        return "not attempted yet: replace `raise NotImplementedError()` with your code."
    if isinstance(err, OutOfBounds):  # stopped before it touched memory: a tutor's message already
        return f"your kernel made {err.what}{_where(err)}: {err.fix}."
    text = f"your function raised {type(err).__name__}: {err}{_where(err)}.{_error_hint(err)}"
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


def leak_variant(ex, case, p):
    """The case with the sequence inputs after position p changed (p = None: unchanged), without the final state."""
    seq = _seq_inputs(ex, case)
    inputs = {n: _perturb(n, x, seq[n], p) if (n in seq and p is not None) else x for n, x in case.inputs.items()}
    return Case(inputs, output_only(case), case.note)


def _seq_inputs(ex, case):
    return {n: d for n, d in ex.seq_inputs.items() if isinstance(case.inputs.get(n), torch.Tensor)}


def _leak_positions(ex, case):
    seq = _seq_inputs(ex, case)
    if not ex.causal or not seq:
        return 0
    name, dim = next(iter(seq.items()))
    return case.inputs[name].shape[dim]


def leak_probe(ex, case, obs):
    """The first output position that changes when only later inputs change, as (i, p), or None."""
    T = _leak_positions(ex, case)
    if T < 2:
        return None
    base = obs.probe("leak:base", leak_variant(ex, case, None))
    if base is None or not base.ran:
        return None
    base_parts = _parts(base.result, ex.time_dims)
    for p in range(T - 1):
        run = obs.probe(f"leak:{p}", leak_variant(ex, case, p))
        if run is None or not run.ran:
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


def probe_cases(ex, case):
    """{key: variant case} of every extra run the judge may ask for: leak probes and the structure rules' probes."""
    variants = {}
    if _leak_positions(ex, case) >= 2:
        variants["leak:base"] = leak_variant(ex, case, None)
        variants.update({f"leak:{p}": leak_variant(ex, case, p) for p in range(_leak_positions(ex, case) - 1)})
    for rule in ex.structure:
        variants.update(rule.variants(case))
    return variants


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


def _row_factors(e, g, time_dim):
    """'each row is the expected row times its own factor': the entries of a row are right up to their scale."""
    if time_dim is None or e.ndim < 2 or e.shape[-1] < 2 or (time_dim % e.ndim) != e.ndim - 2:
        return None
    ed, gd = e.double(), g.double()
    norm = (ed * ed).sum(-1, keepdim=True)
    if not (torch.isfinite(ed).all() and torch.isfinite(gd).all() and (norm > 0).all()):
        return None
    c = (ed * gd).sum(-1, keepdim=True) / norm
    if not matches((ed * c).to(e.dtype), g) or torch.allclose(c, c.flatten()[0].expand_as(c)):
        return None
    first = ", ".join(f"{x:.4g}" for x in c.flatten()[:4].tolist())
    return ("each row of the result is the expected row times a factor of its own (the first rows: "
            f"{first}): within a row the entries are in the right proportions, but each row's normalization"
            " (what it is divided by) is not the expected one.")


def _listed(items, limit=4):
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def where_it_differs(ex, case, expected, got):
    """' Only the batch/head slices (0, 1) differ; the others are right.' and the same for positions: which
    parts of the result are wrong when some are right (a head handled differently, a chunk boundary...)."""
    part = _first_bad_part(expected, got, _time_dims(ex, case))
    if part is None or not part[0].is_floating_point() or part[0].shape != part[1].shape:
        return ""
    e, g, time_dim = part
    bad = ~close(g.detach().double(), e.detach().double(), e.dtype)
    text = ""
    matrix_dims = 2 if e.ndim >= 2 else 1
    if e.ndim > matrix_dims:  # leading (batch / head) dimensions
        lead = bad.flatten(e.ndim - matrix_dims).any(-1)
        if 0 < int(lead.sum()) < lead.numel():
            wrong = [tuple(i) for i in lead.nonzero().tolist()]
            text += f" Only the batch/head slices {_listed(wrong)} differ; the other slices are right."
    if time_dim is not None and e.ndim >= 1 and e.shape[time_dim] > 1:
        d = time_dim % e.ndim
        rows = bad.movedim(d, 0).flatten(1).any(-1) if e.ndim > 1 else bad
        if 0 < int(rows.sum()) < rows.numel():
            wrong = rows.nonzero().flatten().tolist()
            right = int((~rows).sum())
            text += (f" Only the outputs at {ex.time_word} {_listed(wrong)} differ; "
                     + ("the other one is right." if right == 1 else f"the other {right} are right."))
    return text


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
            if named:
                return f"the result is scaled by a constant factor {c:.6g}: {named}."
            inverse = f" (= 1/{round(1 / c)})" if abs(1 / c - round(1 / c)) < 1e-6 and abs(1 / c) > 1 else ""
            return (f"the result is scaled by a constant factor {c:.6g}{inverse}: every entry is that factor times"
                    " the expected one, so the formula is right up to a constant multiplication or division.")
    rows = _row_factors(e, g, time_dim)
    if rows:
        return rows
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


_FILLS = {"masked_fill", "masked_fill_", "full", "full_like", "fill_", "where", "__setitem__", "tensor"}
_DIVISIONS = {"div", "div_", "true_divide", "divide", "__truediv__", "__rtruediv__", "__itruediv__", "reciprocal"}
_MASKS = {"tril", "triu", "masked_fill", "masked_fill_", "where"}
_EXPS = {"exp", "exp_", "pow", "__pow__", "__rpow__"}


def _made_at(origin):
    """'`masked_fill` (line 6 of your function f: `A = A.masked_fill(...)`)' from a recorded origin."""
    where = f"line {origin['line']} of {origin.get('in', 'your code')}" if origin.get("line") else "your code"
    code = f": `{origin['code']}`" if origin.get("code") else ""
    return f"`{origin.get('function', '?')}` ({where}{code})"


def _origins(obs):
    """{"nan"/"+inf"/"-inf": {"function", "line", "code", "in"}} as recorded by the watcher, checked (it may come
    from an untrusted kernel) and reduced to strings and ints."""
    recorded = obs.facts.get("nonfinite") if isinstance(obs.facts, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {kind: {k: (v if isinstance(v, int) else str(v)[:120]) for k, v in origin.items() if isinstance(k, str)}
            for kind, origin in recorded.items() if kind in ("nan", "+inf", "-inf") and isinstance(origin, dict)}


def nonfinite_origin(ex, case, obs, problem):
    """Where the first NaN / inf of the result was made, and what that kind of operation does wrong."""
    functions = obs.facts.get("functions") if isinstance(obs.facts, dict) else None
    functions = {str(f) for f in functions} if isinstance(functions, (list, tuple)) else set()
    origins = _origins(obs)
    gates = any(n in case.inputs for n in ("g", "a", "gamma", "b")) or "gate" in ex.name
    nan, plus, minus = origins.get("nan"), origins.get("+inf"), origins.get("-inf")
    overflow = plus if plus and plus.get("function") in _EXPS else None
    filled = minus if minus and minus.get("function") in _FILLS else None
    # the inf that matters: an overflow, else a -inf filled in, else the first one made
    inf = overflow or filled or plus or minus
    shown = nan if "contains NaN" in problem.message and nan else inf
    if not shown:
        return ("Look for a division by zero, an exp that overflows" + (" (products of gates shrink fast: work in log"
                " space, exp(b_i - b_j) with j <= i stays <= 1)" if gates else "") + ", or a value filled in as inf.")
    text = f"The first {'NaN' if shown is nan else 'inf'} is made by {_made_at(shown)}."
    if shown is nan and inf:
        text += f" Before it, an inf was made by {_made_at(inf)}."
    if overflow:
        text += " exp overflows above about 709 in float64 and 88 in float32 (and inf / inf is NaN)."
        if "softmax" in ex.name:
            text += " A softmax written by hand subtracts each row's maximum score before exp, as torch.softmax does."
    elif filled and not functions & {"softmax", "log_softmax"}:
        text += (" A value filled in as -inf is right before a softmax, which turns it into a weight exp(-inf) = 0;"
                 " here nothing does, and -inf times a value, or -inf + inf, is inf or NaN: a weight that must be"
                 " zero is filled with 0.")
    elif shown.get("function") == "softmax":
        text += (" A softmax over a row whose scores are all -inf is 0/0 = NaN: every query must keep at least one"
                 " key, itself (j <= i).")
    elif shown.get("function") in _DIVISIONS:
        text += " That is a division by zero (0/0 is NaN, x/0 is inf)."
        if ex.causal and problem.position == 0:
            text += (" At position 0 the denominator sums only position 0 itself; it is 0 when position 0 is left"
                     + (" out: a mask must keep the diagonal (j <= i, not j < i)." if functions & _MASKS else
                        " out: the output at position t must include token t (update the state with k_t, v_t"
                        " before reading it)."))
    elif shown.get("function") in ("log", "log_"):
        text += " log(0) is -inf and the log of a negative number is NaN."
    if gates:
        text += (" Products of gates shrink fast, so dividing by one, or an exp that overflows, gives inf: work in"
                 " log space, exp(b_i - b_j) with j <= i stays <= 1.")
    return text


def named_mistake(ex, case, got):
    for mistake in ex.mistakes:
        try:
            alternative = mistake.make(case)
        except Exception:  # a mistake that does not apply to this case
            continue
        if alternative is not None and matches(_nan_marked(alternative), _nan_marked(got)):
            return mistake.message
    return None


def _nan_marked(x):
    """NaN replaced by a marker value: a mistake that gives NaN (inf * 0) is recognised by where its NaNs are."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.nan_to_num(nan=-7.25e7, posinf=float("inf"), neginf=float("-inf"))
    return type(x)(_nan_marked(e) for e in x) if isinstance(x, (tuple, list)) else x


def explain(ex, case, expected, obs, problem):
    """The best explanation of a wrong result, with the plain difference after it."""
    got = obs.result
    if problem.kind != "dtype":
        mistake = named_mistake(ex, case, got)
        if mistake:
            return f"{mistake}.\n({problem.message})"
    if ex.causal and problem.kind in ("values", "nonfinite"):
        leak = leak_probe(ex, case, obs)
        if leak:
            i, p = leak
            return (f"future tokens leak into the output: the output at {ex.time_word} {i} changes when only the"
                    f" inputs after position {p} change. A causal result at position i may use positions j <= i"
                    f" only.\n({problem.message})")
    if problem.kind == "nonfinite":
        return f"{problem.message} {nonfinite_origin(ex, case, obs, problem)}"
    if problem.kind in ("values", "shape"):
        pattern = generic_pattern(ex, case, expected, got)
        if pattern:
            return f"{pattern}\n({problem.message})"
    if problem.kind == "values":
        return problem.message + where_it_differs(ex, case, expected, got)
    return problem.message


def _run(ex, fn, case):
    """One watched call of fn on copies of the case's inputs, as an Observation (without probes)."""
    inputs, options = clone_tree(case.inputs), clone_tree(case.options)
    watch = TorchWatch()
    with watch, guard():  # a Triton kernel's stray load or store stops with a message, never a crash
        run = run_watched(fn, list(inputs.values()), options, _FORBIDDEN[ex.name])
    obs = Observation(result=run.result, forbidden=run.forbidden, output=run.output, facts=watch.facts())
    if run.error is not None:
        obs.error, obs.not_attempted = _error_message(ex, run.error), _not_attempted(run.error)
    obs.mutated = mutated_inputs({**case.inputs, **case.options}, {**inputs, **options})
    return obs


def observe(ex, fn, case, eager=False):
    """Run the learner's fn on one case in this process and record what it did (see observation.py).

    eager: also run every probe the judge may ask for (leak probes, structure probes), so that the observation can
    be judged elsewhere; otherwise probes run on demand, here, when the judge asks.
    """
    if not accepts(fn, case.optional_params()):
        return Observation(skipped=True)
    with quiet():
        obs = _run(ex, fn, case)
        if eager:
            obs.probes = {key: _run(ex, fn, variant) for key, variant in probe_cases(ex, case).items()}

    def rerun(key, variant):
        with quiet():
            return _run(ex, fn, variant)
    obs.rerun = rerun
    return obs


def skipped(case, obs, params=None):
    """Whether a case does not apply: the function does not take an optional argument the case passes.

    params None trusts the observation (self-study: it was made here); otherwise params are the names of the
    parameters the notebook's version of the function takes, read from the notebook by the grader.
    """
    if params is None:
        return obs.skipped
    return not set(case.optional_params()) <= set(params)


def judge(ex, case, obs, params=None):
    """None if the observation shows a right answer to this case, else the tutor's explanation. Never calls fn."""
    if skipped(case, obs, params):
        return None
    if obs.skipped:
        return "the check did not run this case: the function was not called with all its arguments."
    with quiet():
        return _judge(ex, case, obs)


def _input_dtypes(case):
    """The dtypes of the case's floating tensors, the inputs and the tensors inside options (a saved state)."""
    found, todo = set(), [*case.inputs.values(), *case.options.values()]
    while todo:
        x = todo.pop()
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            found.add(x.dtype)
        elif isinstance(x, (tuple, list)):
            todo.extend(x)
    return found


def _judge(ex, case, obs):
    expected = ex.reference(*clone_tree(case.inputs).values(), **clone_tree(case.options))
    if obs.forbidden:
        message = (f"your function calls linattn_ref's `{obs.forbidden.split('.')[-1]}` ({obs.forbidden}), which"
                   " computes this answer for you; the exercise is to write it yourself with torch operations.")
    elif obs.error is not None:
        message = obs.error
    else:
        problem = None if ex.randomized else compare(expected, obs.result, _result_names(ex, case, expected),
                                                     _time_dims(ex, case), ex.time_word,
                                                     input_dtypes=_input_dtypes(case))
        if obs.mutated:
            message = (f"your function changed its input {', '.join(obs.mutated)} in place (an in-place operation"
                       " such as +=, [...] = or a method ending in _): the caller's tensors must stay as they were;"
                       " compute a new tensor instead (x = x + ..., or .clone() first).")
        elif problem is None:
            message = next((m for rule in ex.structure if (m := rule.verdict(case, obs))), None)
            if message is None:
                return None
        else:
            message = explain(ex, case, expected, obs, problem)
    if obs.output.strip():
        shown = obs.output[:OUTPUT_SHOWN] + ("..." if len(obs.output) > OUTPUT_SHOWN else "")
        message += f"\nYour function printed (captured, shown here only):\n{shown}"
    return message


def run_case(ex, fn, case):
    """None if fn passes this case, else what went wrong (observe and judge in this process)."""
    return judge(ex, case, observe(ex, fn, case))


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


def case_label(ex, n, n_cases):
    n_visible = len(ex.cases())
    if n < n_visible:
        return f"visible case {n + 1} of {n_visible}"
    return f"held-out case {n - n_visible + 1} of {n_cases - n_visible}"


def _first_failure(ex, fn, hidden):
    cases = ex.cases(hidden)
    for n, case in enumerate(cases):
        message = run_case(ex, fn, case)
        if message:
            return f"{ex.name}: {case_label(ex, n, len(cases))} [{case.describe()}]:\n{message}"
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
