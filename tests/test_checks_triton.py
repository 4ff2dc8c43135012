"""Notebook 09's checks beyond the bank: the interpreter's memory guard, right answers written differently."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.checks import check

sys.path.insert(0, str(Path(__file__).parent))
from mistakes import nb09_triton as bank  # noqa: E402  (sets TRITON_INTERPRET before triton defines a kernel)

ROOT = Path(__file__).resolve().parents[1]
GUARDED_LAUNCHES = """
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
import torch, triton, triton.language as tl
from autograder.checks import memory_guard

@triton.jit
def double(x, out, n, BLOCK: tl.constexpr, STORE_MASKED: tl.constexpr, LOAD_MASKED: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    values = tl.load(x + offs, mask=offs < n, other=0.0) if LOAD_MASKED else tl.load(x + offs)
    if STORE_MASKED:
        tl.store(out + offs, values * 2, mask=offs < n)
    else:
        tl.store(out + offs, values * 2)

assert memory_guard.install()
verdicts = set()
for i in range(int(sys.argv[1])):
    xs = [torch.randn(37) for _ in range(20)]  # other tensors nearby, as in a notebook
    out = torch.zeros(37)
    for store_masked, load_masked in ((False, True), (True, False)):
        try:
            double[(3,)](xs[0], out, 37, BLOCK=256, STORE_MASKED=store_masked, LOAD_MASKED=load_masked)
        except memory_guard.OutOfBounds as err:
            verdicts.add(str(err))
out = torch.zeros(37)
double[(1,)](xs[0], out, 37, BLOCK=64, STORE_MASKED=True, LOAD_MASKED=True)
assert torch.equal(out, xs[0] * 2), "a correct kernel's result reaches the caller's tensor"
print(*sorted(verdicts), sep="\\n")
"""


def test_memory_guard_stops_stray_stores_and_loads_the_same_way_every_time():
    """Unguarded, this script's unmasked stores killed the process in 4 runs of 5 (malloc: unaligned tcache chunk,
    double free); guarded, every launch stops before it touches memory, with the same two verdicts each time."""
    proc = subprocess.run([sys.executable, "-c", GUARDED_LAUNCHES, "30"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    verdicts = proc.stdout.strip().splitlines()
    assert len(verdicts) == 2, verdicts
    assert verdicts[0].startswith("a load 219 elements past the end of `x` (219 of its 256 lanes): mask the load")
    assert verdicts[1].startswith("a store 219 elements past the end of `out` (219 of its 256 lanes): mask the store")



@pytest.mark.parametrize("fn", [bank.retention_b_from_zero], ids=lambda f: f.__name__)
def test_right_answer_with_compensating_off_by_ones_passes(fn):
    """b_i = i log(gamma) reads the state one gamma short and stores each key one gamma long: the same output."""
    check("retention_triton", fn)
    check("retention_triton", fn, hidden=True)
