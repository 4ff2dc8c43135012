"""Wrong answers to notebook 05: the general recurrent memory and linear scans."""
import math

import torch

from . import wrong

# ---------------------------------------------------------------- average_update


@wrong("average_update", "divided by the old count")
def average_old_count(mem, k, v):
    n, k_bar, v_bar = mem
    n_safe = max(n, 1)
    return n + 1, k_bar + (k - k_bar) / n_safe, v_bar + (v - v_bar) / n_safe


@wrong("average_update", "without taking the old mean's share away")
def average_adds_share(mem, k, v):
    n, k_bar, v_bar = mem
    n = n + 1
    return n, k_bar + k / n, v_bar + v / n


@wrong("average_update", "weighs the newest pair 1/2")
def average_halfway(mem, k, v):
    n, k_bar, v_bar = mem
    return n + 1, (k_bar + k) / 2, (v_bar + v) / 2


@wrong("average_update", "count n is not increased")
def average_count_stays(mem, k, v):
    n, k_bar, v_bar = mem
    return n, k_bar + (k - k_bar) / (n + 1), v_bar + (v - v_bar) / (n + 1)


@wrong("average_update", "changed its input")
def average_in_place(mem, k, v):
    n, k_bar, v_bar = mem
    n = n + 1
    k_bar += (k - k_bar) / n
    v_bar += (v - v_bar) / n
    return n, k_bar, v_bar


# ---------------------------------------------------------------- window_update


@wrong("window_update", "never drops anything")
def window_unbounded(mem, k, v, size):
    keys, values = mem
    return torch.cat([keys, k[None]]), torch.cat([values, v[None]])


@wrong("window_update", "newest pair is dropped")
def window_keeps_oldest(mem, k, v, size):
    keys, values = mem
    return torch.cat([keys, k[None]])[:size], torch.cat([values, v[None]])[:size]


@wrong("window_update", "goes in front")
def window_prepends(mem, k, v, size):
    keys, values = mem
    return torch.cat([k[None], keys])[:size], torch.cat([v[None], values])[:size]


@wrong("window_update", "wrong type")
def window_lists(mem, k, v, size):
    keys, values = mem
    return list(keys)[1 - size:] + [k] if size > 1 else [k], list(values)[1 - size:] + [v] if size > 1 else [v]


# ---------------------------------------------------------------- linear_scan_sequential


@wrong("linear_scan_sequential", "added before the decay")
def scan_add_then_decay(a, b, initial=None):
    S = torch.zeros_like(b[0]) if initial is None else initial
    out = []
    for t in range(b.shape[0]):
        S = a[t] * (S + b[t])
        out.append(S)
    return torch.stack(out)


@wrong("linear_scan_sequential", "only the final state")
def scan_last_only(a, b, initial=None):
    S = torch.zeros_like(b[0]) if initial is None else initial
    for t in range(b.shape[0]):
        S = a[t] * S + b[t]
    return S


@wrong("linear_scan_sequential", "off-by-one")
def scan_store_before(a, b, initial=None):
    S = torch.zeros_like(b[0]) if initial is None else initial
    out = []
    for t in range(b.shape[0]):
        out.append(S)
        S = a[t] * S + b[t]
    return torch.stack(out)


@wrong("linear_scan_sequential", "changed its input")
def scan_in_place(a, b, initial=None):
    for t in range(1, b.shape[0]):
        b[t] += a[t] * b[t - 1]
    return b


# ---------------------------------------------------------------- linear_scan_parallel


def _rounds(T):
    return math.ceil(math.log2(T)) if T > 1 else 0


@wrong("linear_scan_parallel", "future tokens leak")
def scan_parallel_wrong_neighbour(a, b, initial=None):
    A = torch.broadcast_to(a, b.shape).clone()
    B = b.clone()
    for r in range(_rounds(b.shape[0])):
        step = 2 ** r
        # combines with the position `step` later instead of earlier
        B = torch.cat([A[:-step] * B[step:] + B[:-step], B[-step:]])
        A = torch.cat([A[:-step] * A[step:], A[-step:]])
    return B


@wrong("linear_scan_parallel", "wrong values")
def scan_parallel_a_first(a, b, initial=None):
    A = torch.broadcast_to(a, b.shape).clone()
    B = b.clone()
    for r in range(_rounds(b.shape[0])):
        step = 2 ** r
        A = torch.cat([A[:step], A[step:] * A[:-step]])  # composes A first, so B uses this round's A
        B = torch.cat([B[:step], A[step:] * B[:-step] + B[step:]])
    return B


@wrong("linear_scan_parallel", "calls linattn_ref")
def scan_parallel_borrowed(a, b, initial=None):
    from linattn_ref.memory import linear_scan_sequential as sequential
    return sequential(a, b, initial)


@wrong("linear_scan_parallel", "only the final state")
def scan_parallel_total(a, b, initial=None):
    A = torch.broadcast_to(a, b.shape).clone()
    B = b.clone()
    for r in range(_rounds(b.shape[0])):
        step = 2 ** r
        B = torch.cat([B[:step], A[step:] * B[:-step] + B[step:]])
        A = torch.cat([A[:step], A[step:] * A[:-step]])
    return B[-1]


@wrong("linear_scan_sequential", "initial state is ignored")
def scan_ignores_initial(a, b, initial=None):
    S = torch.zeros_like(b[0])  # the given S_{-1} is never used
    out = []
    for t in range(b.shape[0]):
        S = a[t] * S + b[t]
        out.append(S)
    return torch.stack(out)


@wrong("linear_scan_sequential", "the first step decays it too")
def scan_initial_as_first_state(a, b, initial=None):
    out = []
    S = None
    for t in range(b.shape[0]):
        if S is None:
            S = b[0] if initial is None else initial + b[0]  # initial taken as S_0 - b_0, never decayed by a_0
        else:
            S = a[t] * S + b[t]
        out.append(S)
    return torch.stack(out)


@wrong("linear_scan_sequential", "does not work step by step")
def scan_sequential_closed_form(a, b, initial=None):
    P = torch.broadcast_to(a, b.shape).cumprod(0)  # prod_{s<=t} a_s; fine while no a_s is 0 or tiny
    S = P * (b / P).cumsum(0)
    return S if initial is None else S + P * initial


@wrong("linear_scan_parallel", "initial state is ignored")
def scan_parallel_ignores_initial(a, b, initial=None):
    A = torch.broadcast_to(a, b.shape).clone()
    B = b.clone()
    for r in range(_rounds(b.shape[0])):
        step = 2 ** r
        B = torch.cat([B[:step], A[step:] * B[:-step] + B[step:]])
        A = torch.cat([A[:step], A[step:] * A[:-step]])
    return B


@wrong("linear_scan_parallel", "works step by step")
def scan_parallel_is_a_loop(a, b, initial=None):
    S = torch.zeros_like(b[0]) if initial is None else initial
    out = []
    for t in range(b.shape[0]):  # right states, but T dependent steps instead of log2 T rounds
        S = a[t] * S + b[t]
        out.append(S)
    return torch.stack(out)


@wrong("linear_scan_parallel", "works step by step")
def scan_parallel_rounds_over_positions(a, b, initial=None):
    A = torch.broadcast_to(a, b.shape).clone()
    B = b.clone()
    if initial is not None:
        B[0] = A[0] * initial + B[0]
    for r in range(_rounds(b.shape[0])):
        step = 2 ** r
        A_new, B_new = A.clone(), B.clone()
        for t in range(step, b.shape[0]):  # the rounds are right, but each visits the positions one by one
            B_new[t] = A[t] * B[t - step] + B[t]
            A_new[t] = A[t] * A[t - step]
        A, B = A_new, B_new
    return B
