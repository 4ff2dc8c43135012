"""Notebooks 05-08: the visible cases exercise every behaviour the exercises promise (saved states in and out, the
scan's initial, per-head gamma, eps, feature_map=None, leading dims, d_k != d_v, and float32 cases where the notes
warn about overflow), and the structure rules of the scans and the chunked forms judge alike here and remotely."""
import io
import math

import pytest
import torch

from autograder.checks import EXERCISES
from autograder.checks.checker import judge, observe
from autograder.checks.observation import Observation
from autograder.checks.structure import calls_grow_like_log_length, calls_grow_with_steps, repeated

FLOAT32_EXP_LIMIT = math.log(torch.finfo(torch.float32).max)  # 88.7: exp overflows float32 beyond it
FLOAT64_EXP_LIMIT = math.log(torch.finfo(torch.float64).max)  # 709.8

STATES = ("retention_recurrent", "gla_recurrent", "chunk_gated_linear_attention", "retention_chunk", "gla_chunk",
          "linear_attention_chunk")
PER_HEAD_GAMMA = ("decay_mask", "retention_parallel", "retention_recurrent", "retention_chunk")
SEQUENCES = ("retention_parallel", "retention_recurrent", "gla_recurrent", "gla_parallel",
             "chunk_gated_linear_attention", "retention_chunk", "gla_chunk", "linear_attention_chunk")


def visible(name):
    return EXERCISES[name].cases()


@pytest.mark.parametrize("name", STATES)
def test_a_visible_case_passes_a_state_in_and_asks_for_it_back(name):
    assert any(c.options.get("initial_state") is not None and c.options.get("output_final_state")
               for c in visible(name))


@pytest.mark.parametrize("name", ("linear_scan_sequential", "linear_scan_parallel"))
def test_a_visible_scan_starts_from_initial(name):
    assert any(c.options.get("initial") is not None for c in visible(name))


@pytest.mark.parametrize("name", PER_HEAD_GAMMA)
def test_a_visible_case_has_one_gamma_per_head(name):
    assert any(isinstance(c.inputs["gamma"], torch.Tensor) and c.inputs["gamma"].numel() > 1 for c in visible(name))


@pytest.mark.parametrize("name", SEQUENCES)
def test_visible_cases_have_leading_dims_and_d_k_other_than_d_v(name):
    cases = visible(name)
    assert any(c.inputs["q"].ndim >= 3 for c in cases)
    assert any(c.inputs["v"].shape[-1] != c.inputs["q"].shape[-1] for c in cases)


def test_linear_attention_chunk_shows_eps_no_feature_map_and_both_normalizations():
    cases = visible("linear_attention_chunk")
    assert any(c.options.get("eps", 0.0) > 0 for c in cases)
    assert any("feature_map" in c.options and c.options["feature_map"] is None for c in cases)
    assert {True, False} <= {c.options.get("normalize", True) for c in cases}


def _max_log_decay_in_a_chunk(case):
    """The most negative sum of log-gates inside one chunk (what exp(b_i - b_j), j > i, and exp(-b) meet)."""
    g = case.inputs.get("g")
    if g is None:
        gamma = torch.as_tensor(case.inputs["gamma"], dtype=torch.float64)
        g = gamma.log().min().expand(case.inputs["q"].shape[-2], 1)
    C = case.options["chunk_size"]
    return max(-g[..., s:s + C, :].double().sum(-2).min().item() for s in range(0, g.shape[-2], C))


def _overflows(name, case):
    if name == "decay_mask":  # gamma^(i-j) above the diagonal, in float64
        gamma = torch.as_tensor(case.inputs["gamma"], dtype=torch.float64)
        return (case.inputs["T"] - 1) * -gamma.log().max().item() > FLOAT64_EXP_LIMIT
    if name == "retention_parallel":
        gamma = torch.as_tensor(case.inputs["gamma"], dtype=torch.float64)
        T = case.inputs["q"].shape[-2]
        return case.inputs["q"].dtype == torch.float32 and (T - 1) * -gamma.log().max().item() > FLOAT64_EXP_LIMIT
    if name == "gla_gates":  # sigmoid(z) rounds to 0 in float32
        i = case.inputs
        return i["x"].dtype == torch.float32 and (i["x"] @ i["w_down"] @ i["w_up"] + i["bias"]).min() < -104
    if name == "gla_parallel":  # 1 / B = exp(-cumsum g)
        return case.inputs["q"].dtype == torch.float32 and -case.inputs["g"].sum(-2).min() > FLOAT32_EXP_LIMIT
    if name == "intra_chunk_scores":
        b = case.inputs["b"]
        return b is not None and b.dtype == torch.float32 and -b.min() > FLOAT32_EXP_LIMIT
    return case.inputs["q"].dtype == torch.float32 and _max_log_decay_in_a_chunk(case) > FLOAT32_EXP_LIMIT


@pytest.mark.parametrize("name", ("decay_mask", "retention_parallel", "gla_gates", "gla_parallel",
                                  "intra_chunk_scores", "chunk_gated_linear_attention", "retention_chunk",
                                  "gla_chunk"))
def test_where_the_notes_warn_about_overflow_a_visible_case_overflows(name):
    assert any(_overflows(name, c) for c in visible(name))


# ---------------------------------------------------------------- structure


def _scan_loop(a, b, initial=None):
    S, out = torch.zeros_like(b[0]) if initial is None else initial, []
    for t in range(b.shape[0]):
        S = a[t] * S + b[t]
        out.append(S)
    return torch.stack(out)


def _scan_rounds(a, b, initial=None):
    A, B = torch.broadcast_to(a, b.shape).clone(), b.clone()
    if initial is not None:
        B[0] = A[0] * initial + B[0]
    step = 1
    while step < b.shape[0]:
        B = torch.cat([B[:step], A[step:] * B[:-step] + B[step:]])
        A = torch.cat([A[:step], A[step:] * A[:-step]])
        step *= 2
    return B


def _scan_closed_form(a, b, initial=None):
    P = torch.broadcast_to(a, b.shape).cumprod(0)
    S = P * (b / P).cumsum(0)
    return S if initial is None else S + P * initial


def _through_disk(obs):
    buffer = io.BytesIO()
    torch.save(obs.to_payload(), buffer)
    buffer.seek(0)
    return Observation.from_payload(torch.load(buffer, weights_only=True))


def test_repeated_lengthens_the_named_inputs_along_their_axis():
    case = EXERCISES["linear_scan_parallel"].cases()[2]  # a [5, 1, 1], b [5, 2, 3]
    longer = repeated(case, 3, ("a", "b"), 0)
    assert longer.inputs["a"].shape == (15, 1, 1) and longer.inputs["b"].shape == (15, 2, 3)
    assert torch.equal(longer.inputs["b"][5:10], case.inputs["b"])


@pytest.mark.parametrize("case_index", range(4))
def test_the_scan_rules_tell_a_loop_from_rounds_here_and_remotely(case_index):
    parallel, sequential = EXERCISES["linear_scan_parallel"], EXERCISES["linear_scan_sequential"]
    assert [type(r.verdict) for r in parallel.structure] == [type(calls_grow_like_log_length("x").verdict)]
    assert [type(r.verdict) for r in sequential.structure] == [type(calls_grow_with_steps("x").verdict)]
    case = parallel.cases()[case_index]
    for obs in (observe(parallel, _scan_rounds, case), _through_disk(observe(parallel, _scan_rounds, case, True))):
        assert judge(parallel, case, obs) is None
    loop = _through_disk(observe(parallel, _scan_loop, case, eager=True))
    assert "works step by step" in judge(parallel, case, loop) and "ceil(log2 T) rounds" in judge(parallel, case, loop)
    assert judge(sequential, case, observe(sequential, _scan_loop, case)) is None
    assert "does not work step by step" in judge(sequential, case, observe(sequential, _scan_closed_form, case))
