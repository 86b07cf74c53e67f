"""kill -9 of reminders, notifier or contacts in the middle of a digest window, then restart."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import ONE_OFFS, USERS
from tests.faults.harness import (
    FaultStack,
    audit,
    dispatched,
    nudges_at_twilio,
    open_window,
    seed,
    wait_for,
    wait_settled,
)

# Generous: the machine may be shared; alone, each test takes 40-100 s.
pytestmark = pytest.mark.timeout(420)


@pytest.mark.parametrize("victim", ["reminders", "notifier", "contacts"])
def test_kill_during_dispatch_then_restart(
    make_stack: Callable[..., FaultStack], victim: str
) -> None:
    fs = make_stack()
    due = seed(fs, USERS, ONE_OFFS)
    open_window(fs)
    # A random point of the dispatch (reproducible): after 10-60% of the digests.
    point = random.Random(f"kill-{victim}").randint(USERS // 10, USERS * 6 // 10)
    progress = nudges_at_twilio if victim == "notifier" else dispatched
    wait_for(lambda: progress(fs) >= point, f"{point} digests under way", 90)
    proc = fs.stack.procs[victim]
    proc.kill()
    time.sleep(1.0)
    fs.restart(proc)
    wait_settled(fs, 120)
    result = audit(fs)
    print(f"kill -9 {victim} after {point} digests: {result.summary()}")
    assert result.due == due
    assert result.failed_digests == 0
    assert result.in_digests + result.left_out == due
    assert result.sms_at_twilio == USERS + result.extra_sms
