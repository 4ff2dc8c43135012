"""Headless execution: the wait on a kernel's sockets that once stalled a run for a whole cell timeout."""
import asyncio
import time
from queue import Empty

import pytest
from jupyter_client.channels import AsyncZMQSocketChannel

from autograder import execute


class MissedWakeup:
    """A socket channel whose poll misses a message that arrives while it waits, and sees it only when its timeout
    runs out (as jupyter_client's did right after widget cells)."""

    def __init__(self, arrives_after):
        self.arrives = time.monotonic() + arrives_after

    async def get_msg(self, timeout=None):
        if time.monotonic() >= self.arrives:
            return {"msg": "reply"}
        await asyncio.sleep(timeout)
        if time.monotonic() >= self.arrives:
            return {"msg": "reply"}
        raise Empty


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", MissedWakeup.get_msg)
    execute.fix_lost_wakeups()
    execute.fix_lost_wakeups()  # idempotent: one wrapper, not two
    assert AsyncZMQSocketChannel.get_msg.__wrapped__ is MissedWakeup.get_msg
    return AsyncZMQSocketChannel.get_msg


def test_a_missed_wakeup_costs_one_slice_not_the_timeout(patched):
    start = time.monotonic()
    assert asyncio.run(patched(MissedWakeup(arrives_after=0.2), timeout=30)) == {"msg": "reply"}
    assert time.monotonic() - start < 2 * execute.POLL_SLICE_S + 0.5


def test_no_message_still_times_out_at_the_deadline(patched):
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(patched(MissedWakeup(arrives_after=60), timeout=1.2))
    assert 1.1 < time.monotonic() - start < 2.0
