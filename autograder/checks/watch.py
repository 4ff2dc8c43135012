"""Running a learner's function under watch.

While the function runs:
- what it prints to stdout or stderr, and the warnings it raises, go to a bounded buffer, never to the real
  streams (nbgrader scores a test cell that writes to stderr as 0, even when every assert passes);
- a call into a forbidden function (the exercise's reference, or another form of the same computation) is
  stopped. Calls are recognised by code object through a profile hook, so holding the function under
  another name (`from linattn_ref import x as y`) does not get around it.
The function gets copies of its inputs; `mutated_inputs` compares them with the originals afterwards.
"""
import contextlib
import io
import sys
import threading
import warnings
from dataclasses import dataclass, field

import torch

OUTPUT_LIMIT = 4000  # characters of captured output kept; the rest is only counted


class BoundedBuffer(io.TextIOBase):
    """A text stream keeping the first `limit` characters written to it and counting the rest."""

    def __init__(self, limit=OUTPUT_LIMIT):
        self.limit = limit
        self.parts = []
        self.kept = 0
        self.dropped = 0

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self):
        more = f"\n... ({self.dropped} more characters)" if self.dropped else ""
        return "".join(self.parts) + more


class ForbiddenCall(BaseException):
    """Raised inside the learner's code when it calls a forbidden function.

    A BaseException, so that a learner's `except Exception` cannot swallow it.
    """

    def __init__(self, name):
        super().__init__(name)
        self.name = name


@dataclass
class Run:
    """What happened when the learner's function ran once."""

    result: object = None
    error: BaseException = None  # the exception it raised, if any
    forbidden: str = None  # the qualified name of a forbidden function it called, if any
    output: str = ""  # what it printed or warned, bounded
    notes: list = field(default_factory=list)


def _qualified_name(fn):
    return f"{fn.__module__}.{fn.__qualname__}"


def code_objects(functions):
    """{id(code object): (code object, qualified name)} of plain Python functions (methods are unwrapped).

    Keyed by identity: code objects compare equal by content, and a copy of a function is not the function.
    """
    codes = {}
    for fn in functions:
        fn = getattr(fn, "__func__", fn)
        codes[id(fn.__code__)] = (fn.__code__, _qualified_name(fn))
    return codes


@contextlib.contextmanager
def captured_output(buffer):
    """Send stdout, stderr and warnings to `buffer` for the duration."""

    def show(message, category, filename, lineno, file=None, line=None):
        buffer.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield


@contextlib.contextmanager
def forbidding(codes):
    """Raise ForbiddenCall when a function whose code object is in `codes` (see code_objects) is entered."""
    if not codes:
        yield
        return

    old_profile, old_thread_profile = sys.getprofile(), threading.getprofile()
    if old_profile is not None and not callable(old_profile):
        yield  # a C-level profiler (cProfile) is running and could not be put back: leave it alone
        return

    def profile(frame, event, arg):
        if event == "call":
            hit = codes.get(id(frame.f_code))
            if hit is not None and hit[0] is frame.f_code:
                raise ForbiddenCall(hit[1])
        if old_profile is not None:
            old_profile(frame, event, arg)

    sys.setprofile(profile)
    threading.setprofile(profile)  # threads the learner's code starts
    try:
        yield
    finally:
        sys.setprofile(old_profile)
        threading.setprofile(old_thread_profile)


def run_watched(fn, args, kwargs, forbidden_codes):
    """Call fn(*args, **kwargs) with output captured and forbidden calls stopped."""
    run, buffer = Run(), BoundedBuffer()
    with captured_output(buffer):
        try:
            with forbidding(forbidden_codes):
                run.result = fn(*args, **kwargs)
        except ForbiddenCall as err:
            run.forbidden = err.name
        except Exception as err:  # the learner's bug: reported, never re-raised
            run.error = err
    run.output = buffer.text()
    return run


def clone_tree(x):
    """A deep copy of nested tuples/lists/dicts of tensors; other values are shared (they are immutable here)."""
    if isinstance(x, torch.Tensor):
        return x.clone()  # keeps the strides, so non-contiguous inputs stay non-contiguous
    if isinstance(x, tuple):
        return tuple(clone_tree(e) for e in x)
    if isinstance(x, list):
        return [clone_tree(e) for e in x]
    if isinstance(x, dict):
        return {k: clone_tree(v) for k, v in x.items()}
    return x


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and torch.equal(a.nan_to_num(), b.nan_to_num()))
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True  # numbers, callables and None cannot be changed in place


def mutated_inputs(originals, copies):
    """Names of the inputs the learner's function changed in place."""
    return [name for name, value in originals.items() if not _same(value, copies[name])]
