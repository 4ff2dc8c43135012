"""The general recurrent memory: Mem_i = f((k_i, v_i), Mem_{i-1}).

Any attention whose history fits in a memory updated this way needs, at step i, only the new pair
(k_i, v_i) and the previous memory, never the earlier pairs themselves. When the memory has a fixed size,
every step costs the same however long the sequence gets. Each memory here has

    init(k_0 shape, v_0 shape) -> Mem_{-1}      update(Mem, k_i, v_i) -> Mem_i      read(Mem, q_i) -> o_i

and `scan_memory` runs any of them over a sequence. Instances:
- RunningSum: (mu, nu) of linear attention, sum of k^T v and of k.
- CumulativeAverage: the mean key and the mean value so far.
- FixedWindow: the last w keys and values (local attention).
- HybridMemory: a window of recent pairs plus a compressed summary (running mean) of the evicted ones.

The module also has the linear recurrence S_t = a_t * S_{t-1} + b_t, computed step by step and by a
parallel scan in ceil(log2 T) rounds.
"""
import math
from dataclasses import dataclass

import torch

from ._validate import check_length, check_tensor
from .feature_maps import elu_plus_one


def _softmax_read(q, keys, values, scale):
    """softmax(q keys^T * scale) values, for a single query [d_k] against [n, d_k] / [n, d_v]."""
    if keys.shape[0] == 0:
        return values.new_zeros(values.shape[-1])
    weights = torch.softmax((keys @ q) * scale, dim=0)
    return weights @ values


class RunningSum:
    """Linear attention's memory: Mem = (mu, nu), mu += phi(k)^T v, nu += phi(k).

    Size d' * d_v + d', with d' the feature map's output size (d_k for elu_plus_one).
    """

    def __init__(self, feature_map=elu_plus_one):
        self.feature_map = feature_map

    def init(self, d_k, d_v, dtype=torch.float64):
        d_feat = self.feature_map(torch.zeros(d_k, dtype=dtype)).shape[-1]  # phi may change the size
        return (torch.zeros(d_feat, d_v, dtype=dtype), torch.zeros(d_feat, dtype=dtype))

    def update(self, mem, k, v):
        mu, nu = mem
        kp = self.feature_map(k)
        return (mu + torch.outer(kp, v), nu + kp)

    def read(self, mem, q):
        mu, nu = mem
        qp = self.feature_map(q)
        return (qp @ mu) / (qp @ nu)


def average_update(mem, k, v):
    """Cumulative average: Mem = (n, k_bar, v_bar); k_bar_n = k_bar_{n-1} + (k - k_bar_{n-1}) / n, same for v."""
    n, k_bar, v_bar = mem
    n = n + 1
    return (n, k_bar + (k - k_bar) / n, v_bar + (v - v_bar) / n)


def window_update(mem, k, v, size):
    """Fixed window: Mem = (keys [m, d_k], values [m, d_v]), m <= size; append (k, v), drop the oldest past `size`."""
    keys, values = mem
    keys = torch.cat([keys, k.unsqueeze(0)])[-size:]
    values = torch.cat([values, v.unsqueeze(0)])[-size:]
    return (keys, values)


class CumulativeAverage:
    """Mem = (n, mean k, mean v): k_bar_i = k_bar_{i-1} + (k_i - k_bar_{i-1}) / i, the same for v. Size d_k + d_v + 1.

    Reading it returns the mean value: one summary slot, so the query cannot select anything.
    """

    def init(self, d_k, d_v, dtype=torch.float64):
        return (0, torch.zeros(d_k, dtype=dtype), torch.zeros(d_v, dtype=dtype))

    def update(self, mem, k, v):
        return average_update(mem, k, v)

    def read(self, mem, q):
        return mem[2]


@dataclass
class FixedWindow:
    """Mem = the last `size` keys and values (local attention). Size 2 * size * d at most, whatever T."""

    size: int
    scale: float = 1.0

    def __post_init__(self):
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"window size must be a positive integer, got {self.size!r}")

    def init(self, d_k, d_v, dtype=torch.float64):
        return (torch.zeros(0, d_k, dtype=dtype), torch.zeros(0, d_v, dtype=dtype))

    def update(self, mem, k, v):
        return window_update(mem, k, v, self.size)  # the oldest pair falls out once full

    def read(self, mem, q):
        return _softmax_read(q, mem[0], mem[1], self.scale)


@dataclass
class HybridMemory:
    """A window of the last `size` pairs plus one summary slot: the running mean of the pairs evicted so far.

    Mem = (window keys, window values, n evicted, mean evicted k, mean evicted v). Reading attends over
    the window and the summary slot together: recent tokens in detail, the distant past compressed.
    """

    size: int
    scale: float = 1.0

    def __post_init__(self):
        FixedWindow(self.size)  # same validation

    def init(self, d_k, d_v, dtype=torch.float64):
        window = FixedWindow(self.size).init(d_k, d_v, dtype)
        return (*window, *CumulativeAverage().init(d_k, d_v, dtype))

    def update(self, mem, k, v):
        keys, values, n, k_bar, v_bar = mem
        if keys.shape[0] == self.size:  # full: the oldest pair leaves the window for the summary
            n, k_bar, v_bar = average_update((n, k_bar, v_bar), keys[0], values[0])
        keys, values = window_update((keys, values), k, v, self.size)
        return (keys, values, n, k_bar, v_bar)

    def read(self, mem, q):
        keys, values, n, k_bar, v_bar = mem
        if n > 0:
            keys, values = torch.cat([k_bar.unsqueeze(0), keys]), torch.cat([v_bar.unsqueeze(0), values])
        return _softmax_read(q, keys, values, self.scale)


def memory_numel(mem):
    """How many numbers a memory holds (tensors counted by element, plain counters as one)."""
    if isinstance(mem, torch.Tensor):
        return mem.numel()
    if isinstance(mem, (tuple, list)):
        return sum(memory_numel(m) for m in mem)
    return 1


def scan_memory(memory, q, k, v):
    """Run Mem_i = f((k_i, v_i), Mem_{i-1}) over a sequence and read each step with q_i.

    q, k: [T, d_k]; v: [T, d_v]. Returns (outputs [T, d_v], [Mem_0, ..., Mem_{T-1}]).
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, x)
        if x.ndim != 2:
            raise ValueError(f"{name} must be [T, d] for a memory scan, got shape {tuple(x.shape)}")
    if not (q.shape[0] == k.shape[0] == v.shape[0]) or q.shape[1] != k.shape[1]:
        raise ValueError(f"q, k, v do not fit: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    mem = memory.init(k.shape[1], v.shape[1], dtype=v.dtype)
    states, outputs = [], []
    for i in range(k.shape[0]):
        mem = memory.update(mem, k[i], v[i])  # only (k_i, v_i) and the previous memory
        states.append(mem)
        outputs.append(memory.read(mem, q[i]))
    return torch.stack(outputs), states


def _check_scan(a, b):
    check_tensor("b", b, min_ndim=1)
    check_tensor("a", a, min_ndim=1)
    if b.shape[0] == 0:
        raise ValueError("the sequence is empty (T = 0)")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b need the same length T along dim 0, got {tuple(a.shape)} and {tuple(b.shape)}")
    # a must broadcast against b: compare trailing dimensions (plain Python, no torch.broadcast_shapes,
    # which imports sympy on first use and costs seconds in a fresh kernel)
    for da, db in zip(reversed(a.shape), reversed(b.shape)):
        if da != db and 1 not in (da, db):
            raise ValueError(f"a {tuple(a.shape)} must broadcast against b {tuple(b.shape)}")


def linear_scan_sequential(a, b, initial=None):
    """S_t = a_t * S_{t-1} + b_t for t = 0..T-1 (S_{-1} = initial or 0). a, b: [T, ...], time first."""
    _check_scan(a, b)
    S = torch.zeros_like(b[0]) if initial is None else initial
    out = []
    for t in range(b.shape[0]):
        S = a[t] * S + b[t]
        out.append(S)
    return torch.stack(out)


def linear_scan_parallel(a, b, initial=None):
    """The same S_t in ceil(log2 T) rounds (a Hillis-Steele scan).

    Each step is the affine map S -> a_t S + b_t; two maps compose into one:
    (a_1, b_1) then (a_2, b_2) is (a_2 a_1, a_2 b_1 + b_2). In round r every position t >= 2^r combines
    with the position 2^r earlier, so after round r each holds the composition of its last 2^(r+1) steps.
    All positions of a round run in parallel: depth log2 T, work T log2 T.
    """
    _check_scan(a, b)
    A = torch.broadcast_to(a, b.shape).clone()
    B = b.clone()
    if initial is not None:
        B[0] = A[0] * initial + B[0]  # fold the initial state into the first step
    T = b.shape[0]
    for r in range(math.ceil(math.log2(T)) if T > 1 else 0):
        step = 2 ** r
        A_prev, B_prev = A[:-step], B[:-step]
        B = torch.cat([B[:step], A[step:] * B_prev + B[step:]])
        A = torch.cat([A[:step], A[step:] * A_prev])
    return B


def scan_rounds(T):
    """How many rounds linear_scan_parallel takes for T steps: ceil(log2 T)."""
    check_length(T)
    return math.ceil(math.log2(T)) if T > 1 else 0
