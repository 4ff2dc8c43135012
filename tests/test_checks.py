"""The exercise checks: the registry, the reference passing, the wrong-answer bank failing with the right
diagnosis, and the guards (forbidden calls, in-place changes, captured output, no stderr)."""
import importlib
import shutil
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import torch

import linattn_ref
from autograder import nbgrader_ops as ops
from autograder.checks import EXERCISES, Case, check
from autograder.checks.exercise import Exercise
from autograder.checks.registry import MODULES, NOTEBOOK_OF
from autograder.checks.watch import OUTPUT_LIMIT
from autograder.verdict import graded_cells

sys.path.insert(0, str(Path(__file__).parent))
import mistakes  # noqa: E402  (the bank lives next to this file)
from mistakes import default_scale  # noqa: E402

from linattn_ref.retnet import per_head

BANK = mistakes.load()


def solution_checks():
    """{assignment folder: the exercise ids its graded cells check}, read from solutions/ with the grader's own
    parser: the contract between the notebooks and the checks."""
    contract = {}
    for folder in ops.assignments(ops.SOURCE):
        for path in ops.notebooks(ops.SOURCE / folder):
            for _, _, calls in graded_cells(nbformat.read(path, as_version=4)):
                contract.setdefault(folder, set()).update(c.id for c in calls or () if c.kind == "check")
    return contract


CONTRACT = solution_checks()
CHECKS_MODULE = {module.NOTEBOOK: module for module in MODULES}
# Exercises whose reference is written in their own checks module, not in linattn_ref: the learner's own Triton
# kernels (cases float32 only, for the CPU interpreter and GPUs; right answers come from the bank's CORRECT).
TRITON = {name for name, ex in EXERCISES.items()
          if ex.reference.__module__ == CHECKS_MODULE[NOTEBOOK_OF[name]].__name__}
VISIBLE_SECONDS = 1.0  # a visible check must take well under this on a laptop
TRITON_VISIBLE_SECONDS = 5.0  # Triton's interpreter runs a kernel's programs one by one in numpy


@pytest.fixture(scope="module")
def learner_copy(tmp_path_factory):
    """linattn_ref copied under another name: the reference's code, as a learner who wrote it would hand it in.

    The checks refuse calls into linattn_ref itself, so the correct answer to test is a copy.
    """
    root = tmp_path_factory.mktemp("learner")
    shutil.copytree(Path(linattn_ref.__file__).parent, root / "learner_ref")
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module("learner_ref")
    finally:
        sys.path.remove(str(root))


def failure(exercise_id, fn, hidden=False):
    with pytest.raises(AssertionError) as info:
        check(exercise_id, fn, hidden=hidden)
    return str(info.value)


# ---------------------------------------------------------------- the registry


def test_registry_matches_the_checks_the_solutions_call():
    """Each notebook's graded cells check exactly the exercises its checks module declares."""
    declared = {}
    for name, folder in NOTEBOOK_OF.items():
        declared.setdefault(folder, set()).add(name)
    assert declared == {folder: ids for folder, ids in CONTRACT.items() if ids}
    for name, ex in EXERCISES.items():
        assert isinstance(ex, Exercise)
        home = CHECKS_MODULE[NOTEBOOK_OF[name]] if name in TRITON else linattn_ref  # else: linattn_ref.<name>
        assert ex.reference is getattr(home, name, None), f"{name}: the reference must be linattn_ref.{name}"
        assert ex.points >= 1 and ex.reference in ex.answers, name


def test_every_checks_module_is_named_after_an_assignment_folder():
    folders = set(ops.assignments(ops.SOURCE))
    for module in MODULES:
        assert module.NOTEBOOK in folders and module.__name__.endswith(f".nb{module.NOTEBOOK}"), module.__name__


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_cases_are_seeded_and_hidden_cases_add_more(name):
    ex = EXERCISES[name]
    visible, everything = ex.cases(), ex.cases(hidden=True)
    assert 2 <= len(visible) < len(everything)
    assert everything[: len(visible)] == visible
    again = Exercise(ex.name, ex.reference, ex.visible_cases, ex.hidden_cases, ex.points).cases(hidden=True)
    for a, b in zip(everything, again):
        assert a.describe() == b.describe()
        for x, y in zip(a.inputs.values(), b.inputs.values()):
            assert not isinstance(x, torch.Tensor) or torch.equal(x, y)


def _hidden_tensors(ex):
    hidden = ex.cases(hidden=True)[len(ex.cases()):]
    return hidden, [x for c in hidden for x in c.inputs.values() if isinstance(x, torch.Tensor)]


@pytest.mark.parametrize("name", sorted(n for n, ex in EXERCISES.items() if "q" in ex.seq_inputs))
def test_hidden_cases_cover_the_edges(name):
    """T=1, float32 and float64, batch and heads, d_k != d_v, non-contiguous inputs; chunks that do not divide T."""
    ex = EXERCISES[name]
    hidden, tensors = _hidden_tensors(ex)
    qs = [c.inputs["q"] for c in hidden]
    assert any(q.shape[-2] == 1 for q in qs), "T = 1"
    assert ({torch.float32} if name in TRITON else {torch.float32, torch.float64}) <= {q.dtype for q in qs}
    assert any(q.ndim == 4 for q in qs), "[B, H, T, d]"
    assert any(not x.is_contiguous() for x in tensors), "non-contiguous inputs"
    if "v" in ex.seq_inputs:
        assert any(c.inputs["v"].shape[-1] != c.inputs["q"].shape[-1] for c in hidden), "d_k != d_v"
    if any("chunk_size" in c.options for c in hidden):
        assert any(c.inputs["q"].shape[-2] % c.options["chunk_size"] for c in hidden), "T not a multiple of C"
    if "gamma" in hidden[0].inputs:
        assert any(isinstance(c.inputs["gamma"], torch.Tensor) for c in ex.cases(hidden=True)), "per-head gamma"


def test_unknown_exercise_lists_close_matches():
    with pytest.raises(ValueError, match="'softmax_attention_parallel'"):
        check("softmax_atention_parallel", lambda q, k, v: q)
    with pytest.raises(AttributeError, match="unknown exercise id 'gla_chunks'. Did you mean 'gla_chunk'"):
        check.gla_chunks
    assert not hasattr(check, "_repr_html_")  # IPython probes such names


def test_attribute_access_is_the_same_check(learner_copy):
    assert check.causal_mask(learner_copy.causal_mask) is None
    with pytest.raises(AssertionError, match="upper triangle"):
        check.causal_mask(lambda T, device=None: torch.ones(T, T, dtype=torch.bool).triu())
    assert "gla_chunk" in dir(check)


def test_not_a_function():
    assert "pass the function itself" in failure("causal_mask", None)


# ---------------------------------------------------------------- the reference passes, quickly


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_reference_passes_visible_and_hidden_quickly(name, learner_copy, capfd):
    fn = mistakes.nb09_triton.CORRECT[name] if name in TRITON else getattr(learner_copy, name)
    assert check(name, fn) is None
    assert check(name, fn, hidden=True) is None
    seconds = []
    for _ in range(3):  # the fastest of three, so that a busy machine does not decide the result
        start = time.perf_counter()
        check(name, fn)
        seconds.append(time.perf_counter() - start)
    limit = TRITON_VISIBLE_SECONDS if name in TRITON else VISIBLE_SECONDS
    assert min(seconds) < limit, f"{name}: visible check took {min(seconds):.3f} s"
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_calling_the_reference_fails(name):
    message = failure(name, EXERCISES[name].reference)
    assert "calls linattn_ref" in message and name in message


# ---------------------------------------------------------------- the wrong-answer bank


def test_bank_has_three_wrong_answers_per_exercise():
    counts = Counter(w.exercise for w in BANK)
    assert set(counts) == set(EXERCISES)
    assert min(counts.values()) >= 3, counts
    assert len({w.id for w in BANK}) == len(BANK), "bank entries need distinct names"


# A learner studying alone never sees the held-out cases, so every wrong answer must fail the VISIBLE check.
@pytest.mark.parametrize("wrong", BANK, ids=[w.id for w in BANK])
def test_wrong_answer_fails_the_visible_check_with_its_diagnosis(wrong, capfd):
    message = failure(wrong.exercise, wrong.fn)
    assert message.startswith(f"{wrong.exercise}: "), message
    assert "visible case" in message, message
    assert wrong.phrase in message, message
    assert capfd.readouterr() == ("", ""), "nothing may reach stdout or stderr"


# ---------------------------------------------------------------- the guards


def test_reference_held_under_another_name_is_caught():
    from linattn_ref import causal_mask as borrowed  # taken before the check starts

    def causal_mask(T, device=None):
        try:
            return borrowed(T)
        except Exception:  # a learner cannot swallow the refusal
            return torch.ones(T, T, dtype=torch.bool).tril()

    assert "calls linattn_ref's `causal_mask`" in failure("causal_mask", causal_mask)


def test_other_forms_of_the_same_computation_are_caught():
    def retention_parallel(q, k, v, gamma, scale=None):
        log_gamma = torch.as_tensor(gamma, dtype=q.dtype).log()
        g = per_head(log_gamma).expand(*q.shape[:-1], 1)
        return linattn_ref.chunk.chunk_gated_linear_attention(q, k, v, g, scale or q.shape[-1] ** -0.5, 4)

    assert "chunk_gated_linear_attention" in failure("retention_parallel", retention_parallel)


def test_helpers_passed_in_and_torch_stay_usable():
    def linear_attention_parallel(q, k, v, feature_map=None, normalize=True, scale=None, eps=0.0):
        phi = feature_map or (lambda x: x)  # linattn_ref.elu_plus_one, or None: no feature map
        qp = phi(q) * default_scale(q, scale)
        kp = phi(k)
        A = torch.einsum("...id,...jd->...ij", qp, kp).tril()
        out = A @ v
        return out / (A.sum(-1, keepdim=True) + eps) if normalize else out

    assert check("linear_attention_parallel", linear_attention_parallel, hidden=True) is None


def test_in_place_change_of_a_correct_result_is_reported():
    def state_update(mu, nu, kp_t, v_t):
        mu.add_(kp_t.unsqueeze(-1) * v_t.unsqueeze(-2))
        return mu, nu + kp_t

    message = failure("state_update", state_update)
    assert "changed its input mu in place" in message


def test_not_attempted():
    def gla_chunk(q, k, v, g, scale=None, chunk_size=64):
        raise NotImplementedError()

    assert "not attempted yet: replace `raise NotImplementedError()`" in failure("gla_chunk", gla_chunk)


def test_not_attempted_triton_kernel_on_a_gpu():
    """On a GPU, Triton refuses to compile a kernel body that still raises NotImplementedError: the error is
    Triton's (UnsupportedLanguageConstruct, a CompilationError), and the learner should still read 'not attempted'."""
    class UnsupportedLanguageConstruct(Exception):
        pass

    def gla_chunk(q, k, v, g, scale=None, chunk_size=64):
        raise UnsupportedLanguageConstruct("at 7:4:\n    # YOUR CODE HERE\n    raise NotImplementedError()\n    ^")

    assert "not attempted yet" in failure("gla_chunk", gla_chunk)

    def retention_chunk(q, k, v, gamma, scale=None, chunk_size=64):
        raise UnsupportedLanguageConstruct("at 3:8:\n    x = [i for i in range(3)]\n        ^")

    message = failure("retention_chunk", retention_chunk)
    assert "not attempted" not in message and "UnsupportedLanguageConstruct" in message


def test_exception_names_type_message_and_line():
    def kv_cache_bytes(T, n_layers, n_heads, d_head, bytes_per_element=2, batch_size=1):
        return 2 * T * n_layers * n_heads * d_head * bytes_per_element * batch_size / 0

    message = failure("kv_cache_bytes", kv_cache_bytes)
    assert "ZeroDivisionError: division by zero" in message and "batch_size / 0" in message


def test_missing_parameter_shows_the_signature():
    def gla_chunk(q, k, v, g, scale=None):
        return q

    message = failure("gla_chunk", gla_chunk)
    assert "unexpected keyword argument 'chunk_size'" in message
    assert "gla_chunk(q, k, v, g, scale=None, chunk_size=64" in message


def test_correct_solution_that_warns_and_prints_passes_with_empty_stderr(capfd):
    from tqdm import tqdm

    def causal_mask(T, device=None):
        print("building a mask of size", T)
        print("debug", file=sys.stderr)
        warnings.warn("a learner's warning")
        torch.ones(2).resize_(3)  # a torch warning would be a UserWarning as well
        for _ in tqdm(range(3)):  # progress bars write to stderr
            pass
        return torch.ones(T, T).tril().bool()

    assert check("causal_mask", causal_mask, hidden=True) is None
    assert capfd.readouterr() == ("", "")


def test_printed_output_is_bounded_and_shown_on_failure(capfd):
    def num_visible_keys(T, i):
        print("x" * 10_000_000)  # 10 MB of output costs no more than the buffer
        return i

    start = time.perf_counter()
    message = failure("num_visible_keys", num_visible_keys)
    assert time.perf_counter() - start < 5
    assert "off-by-one" in message and "Your function printed" in message
    assert len(message) < OUTPUT_LIMIT
    assert capfd.readouterr() == ("", "")


def test_the_check_itself_emits_no_warning(learner_copy, capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("softmax_attention_recurrent", "gla_chunk", "state_readout"):
            check(name, getattr(learner_copy, name), hidden=True)
            failure(name, lambda *args, **kwargs: args[0])
    assert capfd.readouterr() == ("", "")


def test_profile_hook_is_removed_afterwards(learner_copy):
    check("linear_attention_recurrent", learner_copy.linear_attention_recurrent, hidden=True)
    failure("linear_attention_recurrent", linattn_ref.linear_attention_recurrent)
    assert sys.getprofile() is None


# ---------------------------------------------------------------- diagnostics


def test_leak_probe_names_the_first_leaking_query():
    def softmax_attention_parallel(q, k, v, scale=None):
        T = q.shape[-2]
        scale = default_scale(q, scale)
        sees_next = torch.ones(T, T, dtype=torch.bool).tril(1)  # query i also sees key i + 1
        scores = (q @ k.mT * scale).masked_fill(~sees_next, float("-inf"))
        return torch.softmax(scores, -1) @ v

    message = failure("softmax_attention_parallel", softmax_attention_parallel)
    assert "future tokens leak into the output: the output at query 0 changes" in message


def test_wrong_value_names_position_expected_got_and_tolerance():
    def linear_scan_sequential(a, b, initial=None):
        S, out = torch.zeros_like(b[0]), []
        for t in range(b.shape[0]):
            S = a[t] * S + b[t] * (1.001 if t == 2 else 1.0)  # one step slightly off
            out.append(S)
        return torch.stack(out)

    message = failure("linear_scan_sequential", linear_scan_sequential)
    assert "first at index (2,) (step 2) expected" in message and "allowed: 1e-09 + 1e-07 * |expected|" in message


def test_transposed_result_is_recognised():
    def state_readout(qp_t, mu, nu=None, eps=0.0):
        out = (qp_t.unsqueeze(-2) @ mu).mT  # [..., d_v, 1] instead of [..., d_v]
        return out if nu is None else out / (qp_t * nu).sum(-1)

    message = failure("state_readout", state_readout)
    assert "wrong shape: expected [2], got [2, 1]" in message


def test_constant_factor_is_named():
    def retention_parallel(q, k, v, gamma, scale=None):
        T = q.shape[-2]
        i = torch.arange(T, dtype=q.dtype)
        g = per_head(gamma, q.dtype)
        D = torch.where(i[:, None] >= i[None, :], g ** (i[:, None] - i[None, :]).clamp(min=0), 0.0)
        return ((q @ k.mT) * D) @ v * 3 * default_scale(q, scale)

    message = failure("retention_parallel", retention_parallel)
    assert "scaled by a constant factor 3: every entry is that factor times the expected one" in message
    assert "scale factor is off" not in message  # no cause is guessed for a factor nobody named


def test_shift_by_one_is_recognised():
    def linear_scan_sequential(a, b, initial=None):
        S, out = torch.zeros_like(b[0]), []
        for t in range(b.shape[0]):
            S = a[t] * S + b[t]
            out.append(S)
        return torch.stack([out[0]] + out[:-1])  # row t holds S_{t-1}

    assert "shifted by one position" in failure("linear_scan_sequential", linear_scan_sequential)


def test_optional_arguments_are_only_passed_when_the_function_takes_them(learner_copy):
    def gla_recurrent(q, k, v, g, scale=None):  # the notebook's version leaves the state arguments out
        return learner_copy.gla_recurrent(q, k, v, g, scale)

    assert check("gla_recurrent", gla_recurrent, hidden=True) is None

    def gla_recurrent_ignoring_state(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
        o, S = learner_copy.gla_recurrent(q, k, v, g, scale, output_final_state=True)
        return (o, S) if output_final_state else o

    message = failure("gla_recurrent", gla_recurrent_ignoring_state)  # the notebook promises the state: visible
    assert "visible case" in message and "initial_state is ignored" in message


def test_case_description_names_shapes_dtypes_and_options():
    case = EXERCISES["gla_chunk"].cases()[1]
    assert isinstance(case, Case)
    assert case.describe().startswith("q=<[7, 3] float64 non-contiguous>, k=<[7, 3] float64 non-contiguous>,"
                                      " v=<[7, 4] float64 non-contiguous>, g=<[7, 3]")
    assert "chunk_size=3" in case.describe()


def test_torch_threads_are_put_back(learner_copy):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        check("gla_chunk", learner_copy.gla_chunk)
        failure("gla_chunk", lambda q, k, v, g, scale=None, chunk_size=64: v)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_float32_result_from_plain_numbers_is_not_blamed_on_the_inputs():
    def multiscale_gammas(n_heads):
        return 1.0 - 2.0 ** (-5.0 - torch.arange(n_heads))  # float32: the argument is an int, not a tensor

    message = failure("multiscale_gammas", multiscale_gammas)
    assert "wrong dtype: expected torch.float64, got torch.float32" in message
    assert "the arguments are numbers" in message and "The inputs are" not in message


def test_nan_is_traced_to_where_it_was_made_without_guessing_a_mask():
    bank = {w.fn.__name__: w for w in BANK}
    no_mask = failure("linear_attention_recurrent", bank["recurrent_denominator_before_update"].fn)
    assert "is made by `div` (line" in no_mask and "mask" not in no_mask
    filled = failure("linear_attention_parallel", bank["linear_parallel_neg_inf"].fn)
    assert "made by `masked_fill`" in filled and "diagonal" not in filled
    strict = failure("softmax_attention_parallel", bank["softmax_parallel_strict_mask"].fn)
    assert "The first NaN is made by `softmax`" in strict and "keep at least one key, itself" in strict


def test_minus_1e9_is_accepted_where_a_softmax_follows():
    """The message for -1e9 in masked_scores says softmax attention accepts it: that must stay true."""
    def softmax_attention_parallel(q, k, v, scale=None):
        T = q.shape[-2]
        scale = default_scale(q, scale)
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        return torch.softmax((q @ k.mT * scale).masked_fill(future, -1e9), dim=-1) @ v

    assert check("softmax_attention_parallel", softmax_attention_parallel, hidden=True) is None


def test_structure_rules_pass_right_answers_written_the_right_way(learner_copy):
    """Token by token with the learner's own step, and k'^T v first: the structure rules let these through."""
    def softmax_attention_recurrent(q, k, v, scale=None):
        return torch.stack([learner_copy.softmax_attention_step(q[..., t, :], k[..., : t + 1, :], v[..., : t + 1, :],
                                                                scale) for t in range(q.shape[-2])], -2)

    assert check("softmax_attention_recurrent", softmax_attention_recurrent, hidden=True) is None
    assert check("linear_attention_noncausal", learner_copy.linear_attention_noncausal, hidden=True) is None


def _properties(case):
    """What a case exercises besides its values and sizes: option names, dtypes, leading dims, layout, None."""
    found = {f"option {name}" for name, value in case.options.items() if value is not None}
    for name, x in case.inputs.items():
        if isinstance(x, torch.Tensor):
            found |= {f"{name} {x.dtype}", *([f"{name} non-contiguous"] if not x.is_contiguous() else [])}
        elif x is None:
            found.add(f"{name} None")
    tensors = [x for x in case.inputs.values() if isinstance(x, torch.Tensor)]
    if tensors and max(x.ndim for x in tensors) > min(x.ndim for x in tensors) + 1 or any(x.ndim > 3 for x in tensors):
        found.add("leading dims")
    return found


@pytest.mark.parametrize("name", sorted(n for nb, ids in CONTRACT.items() if nb[:2] in ("01", "02", "03", "04")
                                         for n in ids))
def test_hidden_cases_add_only_values_and_sizes(name):
    """Whatever a held-out case exercises (an option, a dtype, leading dims, a layout), a visible case does too:
    a learner who passes every visible check gets full marks."""
    ex = EXERCISES[name]
    visible = set().union(*(_properties(c) for c in ex.cases()))
    hidden = set().union(*(_properties(c) for c in ex.cases(hidden=True)[len(ex.cases()):]))
    assert hidden <= visible, f"{name}: only held-out cases exercise {sorted(hidden - visible)}"
