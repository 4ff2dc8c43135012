"""Comparing a learner's result with the expected one, and saying what differs the way a tutor would.

`compare(expected, got)` returns None when they agree, or a `Problem` naming the first difference: the
type, the shape, the dtype, NaN/inf, or the first wrong value, within the tolerances of linattn_ref.tolerances
(the course's one table).
"""
import operator
from dataclasses import dataclass

import torch

from linattn_ref.tolerances import elementwise

from .observation import Foreign


@dataclass
class Problem:
    kind: str  # "type", "length", "shape", "dtype", "nonfinite", "values"
    message: str
    position: int = None  # for "nonfinite" and "values": where along the time axis the first difference is


def module_of(x):
    """The module of x's type; for a value observed in another process (a Foreign), the module it had there."""
    return x.module if isinstance(x, Foreign) else type(x).__module__


def kind_of(x):
    """A few words for what x is: 'a tensor of shape [2, 3] and dtype torch.float32', 'a list of 3 items'."""
    if x is None:
        return "None"
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {list(x.shape)} and dtype {x.dtype}"
    if module_of(x) == "numpy":
        name = x.name if isinstance(x, Foreign) else type(x).__name__
        shape = x.shape if isinstance(x, Foreign) else getattr(x, "shape", None)
        return f"a numpy {name}" + (f" of shape {list(shape)}" if shape is not None else "")
    if isinstance(x, Foreign):
        return f"{x.name} {x.text}"[:80]
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)} item{'s' if len(x) != 1 else ''}"
    return f"{type(x).__name__} {x!r}"[:80]


def fmt(x):
    return f"{x:.6g}" if isinstance(x, float) else repr(x)


def distinct(e, g):
    """'0.1145880012, got 0.1145880234': both numbers with as many digits as it takes to tell them apart."""
    digits = 6
    while f"{e:.{digits}g}" == f"{g:.{digits}g}" and digits < 17:
        digits += 1
    return f"{e:.{digits}g}, got {g:.{digits}g}"


def _precision_hint(err, e, dtype):
    """A float64 result off by about float32's rounding: a float32 tensor somewhere in the computation."""
    scale = e.abs().max().item() if e.numel() else 0.0
    if dtype == torch.float64 and scale > 0 and err <= 1e-5 * scale:
        return (" An error this small is float32 rounding (about 1e-7 of the values): the inputs are float64, so"
                " keep every tensor you make in float64 (dtype=x.dtype, torch.zeros_like(x)).")
    return ""


def position_words(index, time_dim, ndim, time_word):
    """'at index (0, 2, 1), position i=2' for a tensor whose time axis is time_dim."""
    words = f"at index {tuple(index)}"
    if time_dim is not None and ndim > 0:
        words += f" ({time_word} {index[time_dim % ndim]})"
    return words


def _shape_hint(expected, got):
    es, gs = list(expected.shape), list(got.shape)
    if len(es) >= 2 and gs == es[:-2] + [es[-1], es[-2]]:
        return " That is the transposed shape: check which side of the product each factor goes."
    if len(gs) < len(es) and gs == es[len(es) - len(gs):]:
        return (" The leading (batch/head) dimensions are missing: index from the end (dim=-1, -2, .mT) and use"
                " `@` or einsum with '...' so the function works for any leading dimensions.")
    if len(gs) == len(es) + 1 and 1 in gs and [s for i, s in enumerate(gs) if i != gs.index(1)] == es:
        return " There is an extra dimension of size 1: a squeeze (or keepdim=False) is missing."
    if len(gs) == len(es) - 1 and [s for i, s in enumerate(es) if s != 1 or i != es.index(1)] == gs:
        return " A dimension of size 1 is missing (keepdim=True or an unsqueeze)."
    if len(gs) == len(es) and sum(a != b for a, b in zip(es, gs)) == 1:
        dim = next(i for i, (a, b) in enumerate(zip(es, gs)) if a != b)
        off = gs[dim] - es[dim]
        if abs(off) == 1:
            return f" Dimension {dim} has one {'more' if off > 0 else 'fewer'} entry than expected: an off-by-one."
    if got.numel() == expected.numel():
        return " The number of elements is right, so the entries are probably arranged differently (reshape/view?)."
    return ""


def _dtype_hint(expected, got, input_dtypes=None):
    if expected.dtype == torch.bool:
        return (" A mask should be a bool tensor (True where a key is visible): build it with dtype=torch.bool"
                " or from a comparison such as j <= i, not from 0/1 numbers.")
    if got.dtype == torch.bool:
        return " Boolean results are only right for masks; compute numbers here."
    if expected.is_floating_point() and got.is_floating_point():
        if input_dtypes is not None and expected.dtype not in input_dtypes:  # plain numbers in, a tensor out
            return (f" No input tensor has that dtype here (the arguments are numbers): create the tensor with"
                    f" dtype={expected.dtype}, as the exercise asks (torch.zeros/ones/tensor/arange without"
                    " dtype=... give float32 or int64).")
        return (f" The inputs are {expected.dtype}: you probably created a tensor with torch.zeros/torch.ones/"
                "torch.tensor without dtype=..., which gives float32. Use torch.zeros_like(x), x.new_zeros(...)"
                " or pass dtype=x.dtype.")
    if not got.is_floating_point():
        return " Integer results lose the fractions: compute in the input's floating dtype."
    return ""


def compare_tensor(expected, got, name="the result", time_dim=None, time_word="position", input_dtypes=None):
    if not isinstance(got, torch.Tensor):
        hint = ""
        if got is None:
            hint = " Did you forget `return`?"
        elif module_of(got) == "numpy":
            hint = " Stay in torch (torch operations, not numpy), so the result is a torch.Tensor."
        elif isinstance(got, (list, tuple)):
            hint = " Build the tensor with torch.stack(...) / torch.cat(...) rather than returning a Python list."
        elif isinstance(got, (int, float)):
            hint = " A tensor is expected here, not a single number."
        return Problem("type", f"{name} is {kind_of(got)}, but {kind_of(expected)} is expected: wrong type.{hint}")
    if got.shape != expected.shape:
        return Problem("shape", f"{name} has the wrong shape: expected {list(expected.shape)}, got "
                                f"{list(got.shape)}.{_shape_hint(expected, got)}")
    if got.dtype != expected.dtype:
        return Problem("dtype", f"{name} has the wrong dtype: expected {expected.dtype}, got {got.dtype}."
                                f"{_dtype_hint(expected, got, input_dtypes)}")
    if expected.dtype == torch.bool or not expected.is_floating_point():
        bad = got != expected
        if bad.any():
            index = bad.nonzero()[0].tolist()
            where = position_words(index, time_dim, got.ndim, time_word)
            e, g = fmt(expected[tuple(index)].item()), fmt(got[tuple(index)].item())
            return Problem("values", f"{name} has wrong values: first {where} expected {e}, got {g}"
                                     f" ({int(bad.sum())} of {bad.numel()} entries differ).")
        return None
    e, g = expected.detach().double(), got.detach().double()
    nonfinite = ~torch.isfinite(g) & torch.isfinite(e)
    if nonfinite.any():
        index = nonfinite.nonzero()[0].tolist()
        what = "NaN" if torch.isnan(g[tuple(index)]) else "inf"
        where = position_words(index, time_dim, g.ndim, time_word)
        return Problem("nonfinite", f"{name} contains {what} (first {where}; {int(nonfinite.sum())} non-finite"
                                    " entries) where the expected values are finite.",
                       None if time_dim is None else index[time_dim % g.ndim])
    bad = ~close(g, e, expected.dtype)
    if bad.any():
        index = bad.nonzero()[0].tolist()
        rtol, atol = elementwise(expected.dtype)
        err = (g - e).abs()[bad].nan_to_num(float("inf")).max().item()
        ev, gv = e[tuple(index)].item(), g[tuple(index)].item()
        return Problem("values", f"{name} has wrong values: first {position_words(index, time_dim, g.ndim, time_word)}"
                                 f" expected {distinct(ev, gv)}, off by {abs(gv - ev):.2g} where"
                                 f" {atol + rtol * abs(ev):.2g} is allowed; {int(bad.sum())} of {bad.numel()}"
                                 f" entries are off, the largest error is {err:.3g} (allowed: {atol:g} + {rtol:g} *"
                                 " |expected|)."
                                 f"{_precision_hint(err, e, expected.dtype)}")
    return None


def close(g, e, dtype):
    """Elementwise agreement of two float64 tensors at the tolerance of `dtype`; infinities must match exactly, and
    NaN agrees with NaN (a named mistake that gives NaN is recognised by the NaN it gives)."""
    rtol, atol = elementwise(dtype)
    finite_ok = (g - e).abs() <= atol + rtol * e.abs()
    return torch.where(torch.isfinite(e), finite_ok, (g == e) | (torch.isnan(g) & torch.isnan(e)))


def as_int(x):
    """x as a Python int if it is a whole number of an integer type (int, numpy int, 0-d integer tensor)."""
    if isinstance(x, bool):
        return None
    if isinstance(x, torch.Tensor):
        return int(x.item()) if x.ndim == 0 and not x.is_floating_point() and x.dtype != torch.bool else None
    try:
        return operator.index(x)
    except TypeError:
        return None


def compare_int(expected, got, name="the result"):
    value = as_int(got)
    if value is None:
        hint = ""
        if isinstance(got, float) or (isinstance(got, torch.Tensor) and got.ndim == 0):
            hint = " A count is a whole number: use integer arithmetic (// rather than /) or int(...)."
        elif got is None:
            hint = " Did you forget `return`?"
        return Problem("type", f"{name} is {kind_of(got)}, but an int is expected: wrong type.{hint}")
    if value != expected:
        return Problem("values", f"{name} is wrong: expected {expected}, got {value}.")
    return None


def compare_list(expected, got, name="the result"):
    if isinstance(got, torch.Tensor) or not isinstance(got, (list, tuple)):
        return Problem("type", f"{name} is {kind_of(got)}, but a list is expected: wrong type.")
    try:
        got = [tuple(e) if isinstance(e, (list, tuple)) else e for e in got]
    except TypeError:
        pass
    for n, (e, g) in enumerate(zip(expected, got)):
        if e != g:
            return Problem("values", f"{name} is wrong from item {n} on: expected {e!r}, got {g!r}"
                                     f" (expected {len(expected)} items, got {len(got)}).")
    if len(got) != len(expected):
        return Problem("length", f"{name} has {len(got)} items, expected {len(expected)}; the first "
                                 f"{min(len(got), len(expected))} agree.")
    return None


def compare(expected, got, names=None, time_dims=None, time_word="position", name="the result", input_dtypes=None):
    """Compare a result of any of the course's kinds: tensor, int, list, or a tuple of those.

    input_dtypes: the dtypes of the call's floating input tensors, if known (a dtype hint talks about them).
    """
    if isinstance(expected, torch.Tensor):
        return compare_tensor(expected, got, name, time_dims, time_word, input_dtypes)
    if isinstance(expected, bool) or not isinstance(expected, (int, tuple, list)):
        raise TypeError(f"cannot compare results of type {type(expected).__name__}")
    if isinstance(expected, int):
        return compare_int(expected, got, name)
    if isinstance(expected, list):
        return compare_list(expected, got, name)
    names = names or [f"item {n} of the result" for n in range(len(expected))]
    if not isinstance(got, (tuple, list)):
        return Problem("type", f"the result is {kind_of(got)}, but a tuple of {len(expected)} "
                               f"({', '.join(names)}) is expected: wrong type.")
    if len(got) != len(expected):
        return Problem("length", f"the result has {len(got)} items, but {len(expected)} are expected "
                                 f"({', '.join(names)}): wrong type.")
    time_dims = time_dims if isinstance(time_dims, (tuple, list)) else [time_dims] * len(expected)
    for e, g, part, td in zip(expected, got, names, time_dims):
        sub = compare(e, g, None, td, time_word, part, input_dtypes)
        if sub is not None:
            return sub
    return None


def matches(expected, got):
    """Whether got agrees with expected (used to recognise named mistakes)."""
    try:
        return compare(expected, got) is None
    except (TypeError, RuntimeError):
        return False
