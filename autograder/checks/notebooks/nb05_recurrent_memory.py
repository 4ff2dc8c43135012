"""The exercises of notebook 05: the general recurrent memory and linear scans."""
import torch

import linattn_ref as ref
from linattn_ref import memory

from ..exercise import F32, F64, Case, Mistake, call, exercise, randn, strided
from ..structure import calls_grow_like_log_length, calls_grow_with_steps

NOTEBOOK = "05_recurrent_memory"


def _avg_cases(gen):
    return [Case({"mem": (0, torch.zeros(2, dtype=F64), torch.zeros(3, dtype=F64)),
                  "k": torch.tensor([2.0, 4.0], dtype=F64), "v": torch.tensor([1.0, 0.0, 3.0], dtype=F64)},
                 note="the first step"),
            Case({"mem": (3, torch.tensor([1.0, 1.0], dtype=F64), torch.tensor([2.0, 0.0, 1.0], dtype=F64)),
                  "k": torch.tensor([5.0, -3.0], dtype=F64), "v": torch.tensor([6.0, 4.0, 1.0], dtype=F64)},
                 note="hand-checkable"),
            Case({"mem": (4, randn(gen, 3, dtype=F32), randn(gen, 2, dtype=F32)), "k": randn(gen, 3, dtype=F32),
                  "v": randn(gen, 2, dtype=F32)}, note="float32"),
            Case({"mem": (2, randn(gen, 2, 3), randn(gen, 2, 4)), "k": randn(gen, 2, 3), "v": randn(gen, 2, 4)},
                 note="two memories at once (a leading batch dimension)")]


def _avg_hidden(gen):
    return [Case({"mem": (9, randn(gen, 4, dtype=F32), randn(gen, 5, dtype=F32)), "k": randn(gen, 4, dtype=F32),
                  "v": randn(gen, 5, dtype=F32)}),
            Case({"mem": (1, randn(gen, 2, 3), randn(gen, 2, 3)), "k": randn(gen, 2, 3), "v": randn(gen, 2, 3)})]


def _avg_mistakes():
    def old_n(c):
        n, k_bar, v_bar = c.inputs["mem"]
        k, v = c.inputs["k"], c.inputs["v"]
        return n + 1, k_bar + (k - k_bar) / max(n, 1), v_bar + (v - v_bar) / max(n, 1)

    def plain_sum(c):
        n, k_bar, v_bar = c.inputs["mem"]
        return n + 1, k_bar + c.inputs["k"] / (n + 1), v_bar + c.inputs["v"] / (n + 1)

    def halfway(c):
        n, k_bar, v_bar = c.inputs["mem"]
        return n + 1, (k_bar + c.inputs["k"]) / 2, (v_bar + c.inputs["v"]) / 2

    def no_count(c):
        new = ref.average_update(**c.inputs)
        return (c.inputs["mem"][0], *new[1:])

    return (
        Mistake("divided by the old count: after this step n + 1 pairs are averaged", old_n),
        Mistake("the new pair must move the mean by (k - k_bar) / n; k_bar + k / n adds it without taking the old"
                " mean's share away", plain_sum),
        Mistake("averaging the old mean with the new pair weighs the newest pair 1/2; every pair must weigh 1/n",
                halfway),
        Mistake("the count n is not increased", no_count),
    )


def _window_cases(gen):
    keys, values = randn(gen, 0, 2), randn(gen, 0, 3)
    k, v = randn(gen, 2), randn(gen, 3)
    full_k, full_v = randn(gen, 3, 2), randn(gen, 3, 3)
    return [Case({"mem": (keys, values), "k": k, "v": v, "size": 3}, note="an empty window"),
            Case({"mem": (full_k[:2], full_v[:2]), "k": k, "v": v, "size": 3}, note="not yet full"),
            Case({"mem": (full_k, full_v), "k": k, "v": v, "size": 3}, note="a full window"),
            Case({"mem": (randn(gen, 1, 2, dtype=F32), randn(gen, 1, 3, dtype=F32)), "k": randn(gen, 2, dtype=F32),
                  "v": randn(gen, 3, dtype=F32), "size": 1}, note="a window of one pair, float32")]


def _window_hidden(gen):
    return [Case({"mem": (randn(gen, 1, 4), randn(gen, 1, 4)), "k": randn(gen, 4), "v": randn(gen, 4), "size": 1}),
            Case({"mem": (randn(gen, 5, 2, dtype=F32), randn(gen, 5, 6, dtype=F32)), "k": randn(gen, 2, dtype=F32),
                  "v": randn(gen, 6, dtype=F32), "size": 5})]


def _window_mistakes():
    def cat(c, front=False):
        (keys, values), k, v = c.inputs["mem"], c.inputs["k"].unsqueeze(0), c.inputs["v"].unsqueeze(0)
        if front:
            return torch.cat([k, keys]), torch.cat([v, values])
        return torch.cat([keys, k]), torch.cat([values, v])

    size = lambda c: c.inputs["size"]  # noqa: E731
    return (
        Mistake("the window never drops anything: once it holds `size` pairs, the oldest must leave", cat),
        Mistake("the newest pair is dropped instead of the oldest: keep the last `size` rows ([-size:])",
                lambda c: tuple(x[: size(c)] for x in cat(c))),
        Mistake("the new pair goes in front: append it at the end so the rows stay in time order",
                lambda c: tuple(x[: size(c)] for x in cat(c, front=True))),
        Mistake("the new pair goes in front: append it at the end so the rows stay in time order",
                lambda c: tuple(x[-size(c):] for x in cat(c, front=True))),
    )


def _scan_cases(gen):
    return [Case({"a": torch.tensor([0.5, 0.5, 2.0, 1.0], dtype=F64), "b": torch.tensor([1.0, 2.0, 3.0, 4.0],
                                                                                         dtype=F64)},
                 note="hand-checkable"),
            Case({"a": torch.rand(6, 3, generator=gen, dtype=F64).to(F32), "b": strided(randn(gen, 6, 3, dtype=F32))},
                 note="float32, b non-contiguous"),
            Case({"a": torch.rand(5, 1, 1, generator=gen, dtype=F64), "b": randn(gen, 5, 2, 3)}),
            Case({"a": torch.rand(6, 2, 1, generator=gen, dtype=F64), "b": randn(gen, 6, 2, 3)},
                 {"initial": randn(gen, 2, 3)}, "from a given state S_{-1} = initial")]


def _scan_hidden(gen):
    return [Case({"a": torch.rand(1, 2, generator=gen, dtype=F64), "b": randn(gen, 1, 2)}),
            Case({"a": torch.rand(13, 4, generator=gen).to(F32), "b": randn(gen, 13, 4, dtype=F32)}),
            Case({"a": torch.rand(8, generator=gen, dtype=F64).view(8, 1), "b": strided(randn(gen, 8, 3))}),
            Case({"a": torch.rand(7, 3, generator=gen, dtype=F64), "b": randn(gen, 7, 3)},
                 {"initial": randn(gen, 3)})]


def _scan_mistakes(fn):
    def exclusive(c):
        S = call(fn, c)
        first = c.options.get("initial")
        first = torch.zeros_like(S[0]) if first is None else torch.broadcast_to(first, S[0].shape).to(S.dtype)
        return torch.cat([first.unsqueeze(0), S[:-1]])

    def initial_not_decayed(c):
        initial = c.options.get("initial")
        if initial is None:
            return None
        b = c.inputs["b"].clone()
        b[0] = b[0] + initial
        return call(fn, c, b=b, initial=None)

    return (
        Mistake("b_t is added before the decay: S_t = a_t * S_{t-1} + b_t multiplies only the old state",
                lambda c: call(fn, c, b=torch.broadcast_to(c.inputs["a"], c.inputs["b"].shape) * c.inputs["b"])),
        Mistake("only the final state is returned: return S_t for every step t, stacked along dim 0",
                lambda c: call(fn, c)[-1]),
        Mistake("off-by-one: the state is stored before step t is applied (S_{t-1} instead of S_t)", exclusive),
        Mistake("the initial state is ignored: the recurrence starts from S_{-1} = initial (zeros only when"
                " initial is None)", lambda c: None if c.options.get("initial") is None else call(fn, c, initial=None)),
        Mistake("`initial` is S_{-1}, the state before step 0: the first step decays it too, S_0 = a_0 * initial +"
                " b_0 (here it was added as S_0 = initial + b_0)", initial_not_decayed),
    )


SCAN_ROUNDS = ("the parallel scan: ceil(log2 T) rounds, each combining every t >= 2^r with t - 2^r in one"
               " whole-tensor operation, no loop over t")
SCANS = (memory.linear_scan_sequential, memory.linear_scan_parallel)

EXERCISES = [
    exercise(memory.average_update, _avg_cases, _avg_hidden, points=1, time_dims=None,
             output_names=("n", "k_bar", "v_bar"), mistakes=_avg_mistakes(),
             answers=(memory.average_update, memory.CumulativeAverage.update)),
    exercise(memory.window_update, _window_cases, _window_hidden, points=1, time_dims=None,
             output_names=("keys", "values"), mistakes=_window_mistakes(),
             answers=(memory.window_update, memory.FixedWindow.update)),
    exercise(memory.linear_scan_sequential, _scan_cases, _scan_hidden, points=2, causal=True,
             seq_inputs={"a": 0, "b": 0}, time_dims=0, time_word="step",
             mistakes=_scan_mistakes(memory.linear_scan_sequential), answers=SCANS,
             structure=(calls_grow_with_steps("S_t = a_t * S_{t-1} + b_t, one t after the other", factor=16),)),
    exercise(memory.linear_scan_parallel, _scan_cases, _scan_hidden, points=3, causal=True,
             seq_inputs={"a": 0, "b": 0}, time_dims=0, time_word="step",
             mistakes=_scan_mistakes(memory.linear_scan_parallel), answers=SCANS,
             structure=(calls_grow_like_log_length(SCAN_ROUNDS),)),
]
