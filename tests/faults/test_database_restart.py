"""The database server stopped in the middle of a digest window and started again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from shared.devdb import DevDatabase, free_port
from tests.faults.conftest import ONE_OFFS, USERS
from tests.faults.harness import (
    FaultStack,
    audit,
    dispatched,
    open_window,
    seed,
    wait_settled,
)
from tests.support.http import wait_for

# Generous: the machine may be shared; alone, each test takes 40-100 s.
pytestmark = pytest.mark.timeout(420)


@pytest.fixture
def dedicated_db() -> Iterator[DevDatabase]:
    """A database server of this test alone, on a fixed port so it can come back there.

    Its state is on disk (mongo-java-server's H2 file, flushed by the normal stop below) so the
    restart finds it again; a SIGKILL of the H2 backend would lose recent writes.
    """
    server = DevDatabase(port=free_port(), uri="", persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.close()


def test_database_stopped_and_restarted_mid_dispatch(
    dedicated_db: DevDatabase, make_stack: Callable[..., FaultStack]
) -> None:
    fs = make_stack(dedicated_db.uri)
    due = seed(fs, USERS, ONE_OFFS)
    open_window(fs)
    wait_for(lambda: dispatched(fs) >= USERS // 5, "a fifth of the digests claimed", 90)
    dedicated_db.stop()
    time.sleep(4.0)  # longer than the services' MONGO_TIMEOUT_MS: their calls fail meanwhile
    dedicated_db.restart()
    wait_settled(fs, 150)
    for proc in fs.procs():
        assert proc.process is not None, proc.name
        assert proc.process.poll() is None, f"{proc.name} died"
    result = audit(fs)
    print(f"database restart: {result.summary()}")
    assert result.due == due
    assert result.failed_digests == 0
    assert result.sms_at_twilio == USERS + result.extra_sms
