"""Every load and store of a kernel run by Triton's CPU interpreter, checked against the tensors it was given.

The interpreter reads and writes raw CPU memory. A load past the end of a tensor returns whatever lies there (a
verdict that changes from run to run), and a store past the end overwrites the heap: later the process dies
(`malloc(): unaligned tcache chunk detected`, a segfault) and the learner loses the notebook's kernel with no
message. While the guard is on:

- each tensor argument of a launch is copied into the middle of a larger buffer, with a guard zone on each side
  as large as the tensor (at least 4 KiB), so that a pointer that runs a little past the end of `x` lands in `x`'s
  own guard zone whatever else is in memory, and the verdict is the same on every run;
- every load, store and atomic checks, before it touches memory, that each lane it does not mask off points into
  one of those tensors; if not, it raises OutOfBounds naming the tensor, the direction and the distance. Nothing
  is ever read or written outside the tensors, so the process cannot crash;
- after the launch, what the kernel wrote is copied back into the caller's tensors.

`guard()` is a context manager (the checks use it); `install()` keeps the guard on for the rest of the process
(the notebook's set-up cell). Both do nothing where the interpreter is not in use (a GPU, TRITON_INTERPRET unset).
"""
import contextlib
import inspect
import os

import numpy as np
import torch

MIN_GUARD = 4096  # bytes of guard zone on each side of a tensor, at least


class OutOfBounds(IndexError):
    """A kernel's load or store pointed outside every tensor the launch was given. The message is a tutor's."""

    def __init__(self, what, fix, access, tensor):
        super().__init__(f"{what}: {fix}.")
        self.what, self.fix = what, fix  # "a store 3 elements past the end of `o` (...)", how to mend it
        self.access, self.tensor = access, tensor  # "load" or "store", the kernel argument's name (None: none)


def _interpreter_active():
    """Whether kernels run in Triton's interpreter in this process."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


class _Launch:
    """The guarded copies of one launch's tensor arguments: (start, end) of each tensor's bytes, and its name."""

    def __init__(self):
        self.copies = {}  # caller's storage data_ptr -> (padded uint8 buffer, pad, nbytes, caller's storage)
        self.regions = []  # (guard start, tensor start, tensor end, guard end, name), by address

    def guarded(self, t, name):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in self.copies:
            n = storage.nbytes()
            pad = -(-max(n, MIN_GUARD) // 64) * 64
            buf = torch.full((pad + n + pad,), 0xFF, dtype=torch.uint8)  # 0xFF...: NaN in every float type
            buf[pad:pad + n] = torch.empty(0, dtype=torch.uint8).set_(storage)
            self.copies[key] = (buf, pad, n, storage)
            start = buf.data_ptr()
            self.regions.append((start, start + pad, start + pad + n, start + pad + n + pad, name))
            self.regions.sort()
        buf, pad, _, _ = self.copies[key]
        copy = t.new_empty(0)
        copy.set_(buf.untyped_storage(), pad // t.element_size() + t.storage_offset(), t.size(), t.stride())
        return copy

    def restore(self):
        for buf, pad, n, storage in self.copies.values():
            torch.empty(0, dtype=torch.uint8).set_(storage).copy_(buf[pad:pad + n])

    def check(self, ptrs, mask, access, itemsize):
        """Raise OutOfBounds if a lane of `ptrs` that `mask` keeps lies outside every tensor."""
        p = np.asarray(ptrs, dtype=np.uint64)
        if mask is not None and not mask.all():
            p = p[np.broadcast_to(mask, p.shape)]
        if p.size == 0:
            return
        lo, hi = int(p.min()), int(p.max()) + itemsize
        for _, start, end, _, _ in self.regions:
            if start <= lo and hi <= end:
                return  # the usual case: one block inside one tensor
        p = p.ravel()
        # find the first lane outside its tensor and say where it is
        for g0, t0, t1, g1, name in self.regions:
            inside = (p >= t0) & (p + itemsize <= t1)
            if not (g0 <= lo < g1) or inside.all():
                continue
            bad = p[~inside]
            below = bad[bad < t0]
            if below.size:
                where = f"{_elements((t0 - int(below.min())) // itemsize)} before the start"
            else:
                where = f"{_elements((int(bad.max()) + itemsize - t1 + itemsize - 1) // itemsize)} past the end"
            raise OutOfBounds(*_message(access, name, where, int((~inside).sum()), p.size), access, name)
        raise OutOfBounds(*_message(access, None, "outside every tensor", int(p.size), p.size), access, None)


def _elements(n):
    return f"{n} element{'s' if n != 1 else ''}"


def _message(access, name, where, n_bad, n_lanes):
    """(what happened, how to mend it) for a load or store outside the tensors."""
    target = f"`{name}`" if name else "any tensor the kernel was given"
    what = (f"a {access} {where} of {target}" if name else f"a {access} outside {target}") + \
        f" ({n_bad} of its {n_lanes} lanes)"
    if n_bad == n_lanes or not name or "before" in where:
        fix = ("the whole block is outside, so the offsets are wrong, not only the mask: check the row stride (a"
               " [T, d] tensor's rows are d elements apart: d_k for q and k, d_v for v and o) and the program's"
               " offset (tl.program_id)")
    elif access == "store":
        fix = ("mask the store (tl.store(ptrs, value, mask=...)) to the rows and columns that exist, as in a last"
               " partial block: without a mask it writes over other memory, which can crash the notebook's kernel")
    else:
        fix = ("mask the load (tl.load(ptrs, mask=..., other=0.0)) to the rows and columns that exist, as in a last"
               " partial block: without a mask it reads whatever lies there, different on every run")
    return what, fix


_current = []  # the launch in progress
_depth = 0


def _patch():
    from triton.runtime import interpreter as itp

    builder = itp.interpreter_builder
    grid_executor = itp.GridExecutor
    saved = (grid_executor.__call__, grid_executor._init_args_hst, grid_executor._restore_args_dev,
             builder.create_masked_load, builder.create_masked_store, builder.create_atomic_rmw,
             builder.create_atomic_cas)
    launch_grid, init_args, restore_args, load, store, rmw, cas = saved

    def launch_guarded(self, *args, **kwargs):
        try:
            return launch_grid(self, *args, **kwargs)
        except Exception as err:  # without TRITON_FRONT_END_DEBUGGING the interpreter wraps errors in its own
            if isinstance(err.__cause__, OutOfBounds) and not isinstance(err, OutOfBounds):
                raise err.__cause__ from None
            raise

    def init_guarded(self, args_dev, kwargs):
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        launch = _Launch()
        _current[:] = [launch]  # one launch at a time; one that raised left its entry behind
        names = inspect.signature(self.fn).bind(*args_hst, **kwargs_hst).arguments

        def wrap(name, x):
            if isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.untyped_storage().nbytes():
                return launch.guarded(x, name)
            return x

        by_id = {id(v): wrap(n, v) for n, v in names.items()}
        return ([by_id.get(id(a), a) for a in args_hst], {k: by_id.get(id(v), v) for k, v in kwargs_hst.items()})

    def restore_guarded(self, args_dev, args_hst, kwargs, kwargs_hst):
        if _current:
            _current.pop().restore()  # the caller's tensors get what the kernel wrote

    def itemsize(ptrs):
        return np.dtype(itp._get_np_dtype(ptrs.get_element_ty())).itemsize

    def load_guarded(ptrs, mask, other, cache_policy, is_volatile):
        if _current:
            _current[-1].check(ptrs.data, mask.data, "load", itemsize(ptrs))
        return load(ptrs, mask, other, cache_policy, is_volatile)

    def store_guarded(ptrs, value, mask, cache_policy):
        if _current:
            _current[-1].check(ptrs.data, mask.data, "store", itemsize(ptrs))
        return store(ptrs, value, mask, cache_policy)

    def rmw_guarded(op, ptr, val, mask, sem, scope):
        if _current:
            _current[-1].check(ptr.data, mask.data, "store", itemsize(ptr))
        return rmw(op, ptr, val, mask, sem, scope)

    def cas_guarded(ptr, cmp, val, sem, scope):
        if _current:
            _current[-1].check(ptr.data, None, "store", itemsize(ptr))
        return cas(ptr, cmp, val, sem, scope)

    grid_executor.__call__ = launch_guarded
    grid_executor._init_args_hst = init_guarded
    grid_executor._restore_args_dev = restore_guarded
    builder.create_masked_load = load_guarded
    builder.create_masked_store = store_guarded
    builder.create_atomic_rmw = rmw_guarded
    builder.create_atomic_cas = cas_guarded

    def unpatch():
        grid_executor.__call__, grid_executor._init_args_hst, grid_executor._restore_args_dev = saved[:3]
        for attr in ("create_masked_load", "create_masked_store", "create_atomic_rmw", "create_atomic_cas"):
            builder.__dict__.pop(attr, None)
    return unpatch


_unpatch = None
_installed = False


@contextlib.contextmanager
def guard():
    """Check every interpreted kernel's memory accesses for the duration (nothing to do off the interpreter)."""
    global _depth, _unpatch
    if not _interpreter_active():
        yield
        return
    if _depth == 0 and not _installed:
        _unpatch = _patch()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        _current.clear()  # a launch that raised never reached its restore
        if _depth == 0 and not _installed:
            _unpatch()


def install():
    """Keep the guard on in this process from now on (idempotent). Returns whether the interpreter is in use."""
    global _installed
    if not _interpreter_active():
        return False
    if not _installed:
        _patch()
        _installed = True
    return True
