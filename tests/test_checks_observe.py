"""A check is observe (in the learner's process) then judge (anywhere): the two halves agree with the one-step check,
also when the observation crosses a process boundary as plain data (torch.save, torch.load(weights_only=True)),
and the structure rules see how a result was computed."""
import dataclasses
import io
import re
import sys
from pathlib import Path

import pytest
import torch

import linattn_ref as ref
from autograder.checks import EXERCISES, Case
from autograder.checks.checker import _first_failure, case_label, judge, observe
from autograder.checks.observation import Foreign, Observation, decode, encode
from autograder.checks.structure import TorchWatch, calls_grow_with_length, no_square_matrix, no_torch_function

sys.path.insert(0, str(Path(__file__).parent))
import mistakes  # noqa: E402  (the bank lives next to this file)
from mistakes import default_scale  # noqa: E402

TRITON = {name for name, ex in EXERCISES.items() if ex.reference.__module__.endswith("nb09_triton")}
BANK = [w for w in mistakes.load() if w.exercise not in TRITON]


def through_disk(payload):
    """What the grader reads back from a file the kernel wrote."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def judged_remotely(ex, fn, hidden=True):
    """The first failure as the grader reaches it: cases and observations both cross the boundary as plain data."""
    cases = ex.cases(hidden)
    for n, case in enumerate(cases):
        sent = Case.from_payload(through_disk(case.to_payload()))
        obs = Observation.from_payload(through_disk(observe(ex, fn, sent, eager=True).to_payload()))
        message = judge(ex, case, obs)
        if message:
            return f"{ex.name}: {case_label(ex, n, len(cases))} [{case.describe()}]:\n{message}"
    return None


@pytest.mark.parametrize("name", sorted(set(EXERCISES) - TRITON))
def test_cases_travel_as_plain_data(name):
    ex = EXERCISES[name]
    for case in ex.cases(hidden=True):
        back = Case.from_payload(through_disk(case.to_payload()))
        assert back.describe() == case.describe()
        expected = ex.reference(*case.inputs.values(), **case.options)
        again = ex.reference(*back.inputs.values(), **back.options)
        assert type(again) is type(expected) and repr(again) == repr(expected)


@pytest.mark.parametrize("wrong", BANK, ids=lambda w: w.id)
def test_remote_verdict_is_the_local_one(wrong):
    ex = EXERCISES[wrong.exercise]
    local = _first_failure(ex, wrong.fn, hidden=True)
    assert local is not None
    rate = re.compile(r"[\d.]+it/s")  # a progress bar the wrong answer prints shows its speed
    assert rate.sub("", judged_remotely(ex, wrong.fn)) == rate.sub("", local)


def test_a_right_answer_passes_remotely_too():
    ex = EXERCISES["softmax_attention_parallel"]

    def softmax_attention_parallel(q, k, v, scale=None):
        scale = default_scale(q, scale)
        T = q.shape[-2]
        scores = (q @ k.mT * scale).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        return torch.softmax(scores, -1) @ v

    assert judged_remotely(ex, softmax_attention_parallel) is None


def test_other_seeds_draw_new_values_of_the_same_sizes():
    ex = EXERCISES["gla_chunk"]
    a, b = ex.cases(hidden=True), ex.cases(hidden=True, seed=12345)
    assert [c.describe() for c in a] == [c.describe() for c in b]
    assert not torch.equal(a[-1].inputs["q"], b[-1].inputs["q"])
    assert ex.cases(hidden=True, seed=12345)[-1].inputs["q"].equal(b[-1].inputs["q"])


def test_foreign_results_and_callables_by_name():
    import numpy as np

    assert decode(through_disk(encode(ref.elu_plus_one))) is ref.elu_plus_one
    back = decode(through_disk(encode(np.zeros((2, 3)))))
    assert isinstance(back, Foreign) and back.module == "numpy" and back.shape == (2, 3)
    assert isinstance(decode(through_disk(encode(lambda x: x))), Foreign)
    with pytest.raises(ValueError, match="only linattn_ref functions"):
        decode({"__callable__": "os:system"})
    with pytest.raises(ValueError, match="must be a string"):
        Observation.from_payload({"error": 3})


def test_a_numpy_result_is_named_after_the_trip():
    ex = EXERCISES["causal_mask"]
    message = judged_remotely(ex, lambda T, device=None: __import__("numpy").tri(T, dtype=bool))
    assert "a numpy ndarray of shape" in message and "Stay in torch" in message


def test_skips_are_decided_by_the_graders_reading_of_the_signature():
    ex = EXERCISES["gla_recurrent"]
    case = next(c for c in ex.cases(hidden=True) if "initial_state" in c.options)
    forged = Observation(skipped=True)
    assert judge(ex, case, forged) is None  # self-study: the observation was made here
    assert judge(ex, case, forged, params=["q", "k", "v", "g", "scale"]) is None
    assert "did not run" in judge(ex, case, forged, params=["q", "k", "v", "g", "scale", "initial_state",
                                                             "output_final_state"])


# ---------------------------------------------------------------- structure


def test_torch_watch_records_calls_functions_and_square_matrices():
    q = torch.randn(6, 3)
    with TorchWatch() as watch:
        (q @ q.T).cumsum(0)
    facts = watch.facts()
    assert facts["calls"] == 2 and {"matmul", "cumsum"} <= set(facts["functions"]) and facts["max_second_dim"] == 6


def _with_rules(name, *rules):
    return dataclasses.replace(EXERCISES[name], structure=rules)


def _softmax(q, k, v, scale=None):
    scale = default_scale(q, scale)
    T = q.shape[-2]
    scores = (q @ k.mT * scale).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, -1) @ v


def _token_by_token(q, k, v, scale=None):
    outs = [_softmax(q[..., : t + 1, :], k[..., : t + 1, :], v[..., : t + 1, :], scale)[..., -1:, :]
            for t in range(q.shape[-2])]
    return torch.cat(outs, dim=-2)


def _sdpa(q, k, v, scale=None):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)


def test_rules_refuse_the_wrong_structure_and_say_why():
    recurrent = _with_rules("softmax_attention_parallel",
                            calls_grow_with_length("run one step per token"))
    assert _first_failure(recurrent, _token_by_token, hidden=False) is None
    message = _first_failure(recurrent, _softmax, hidden=False)
    assert "does not work token by token" in message and "run one step per token" in message

    no_attention = _with_rules("softmax_attention_parallel", no_torch_function(
        ["scaled_dot_product_attention"], "the exercise is to write attention yourself"))
    assert "calls torch's `scaled_dot_product_attention`" in _first_failure(no_attention, _sdpa, hidden=False)
    assert _first_failure(no_attention, _softmax, hidden=False) is None

    no_tt = _with_rules("softmax_attention_parallel", no_square_matrix(why="it must stay linear in T"))
    case = Case({"q": torch.randn(9, 2, dtype=torch.float64), "k": torch.randn(9, 2, dtype=torch.float64),
                 "v": torch.randn(9, 2, dtype=torch.float64)})
    assert "builds a T x T matrix" in judge(no_tt, case, observe(no_tt, _softmax, case))


def test_structure_probes_run_up_front_when_eager():
    ex = _with_rules("softmax_attention_parallel", calls_grow_with_length("one step per token"))
    case = ex.cases()[1]
    obs = Observation.from_payload(through_disk(observe(ex, _softmax, case, eager=True).to_payload()))
    assert "longer:4" in obs.probes and obs.rerun is None
    assert "does not work token by token" in judge(ex, case, obs)
