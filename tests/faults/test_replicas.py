"""Two replicas of reminders and two of notifier dispatching the same window at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.faults.conftest import ONE_OFFS, USERS
from tests.faults.harness import FaultStack, audit, open_window, seed, wait_settled

# Generous: the machine may be shared; alone, each test takes 40-100 s.
pytestmark = pytest.mark.timeout(420)


def test_two_replicas_of_reminders_and_notifier(make_stack: Callable[..., FaultStack]) -> None:
    fs = make_stack(replicas=2)
    assert len(fs.procs("reminders")) == len(fs.procs("notifier")) == 2
    due = seed(fs, USERS, ONE_OFFS)
    open_window(fs)
    wait_settled(fs, 150)
    result = audit(fs)
    owners = Counter(c["owner"] for c in fs.read("reminders", "dispatches"))
    print(f"replicas: claims by reminders replica {dict(owners)}; {result.summary()}")
    assert result.due == due
    assert result.failed_digests == 0
    assert result.sms_at_twilio == USERS + result.extra_sms
    # Which replica wins a claim is a race: runs have split 34/16, 32/18 and 50/0. Either way
    # each digest is claimed once and sent once (the audit), and both replicas stay up.
    assert sum(owners.values()) == USERS
    for proc in fs.procs():
        assert proc.process is not None, proc.name
        assert proc.process.poll() is None, f"{proc.name} died"
