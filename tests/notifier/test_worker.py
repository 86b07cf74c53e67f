"""The send worker: Twilio error branches (against a stub), claims, reaping, expiry, MPS limit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo.errors import OperationFailure

from services.notifier.keys import MESSAGE_SERVICE, WORKER
from services.notifier.models import StatusCallback
from services.notifier.ratelimit import TokenBucket
from services.notifier.repository import CLAIMS
from shared.clock import ControllableClock
from shared.devdb import free_port
from shared.web.keys import DB
from tests.notifier.conftest import (
    ACCOUNT_SID,
    FROM_NUMBER,
    TWILIO_TOKEN,
    AppFactory,
    RecordingTransport,
    service_headers,
    wait_for,
)
from tests.notifier.twilio_stub import Answer, TwilioStub

TO = "+14155550101"


async def queue(client: TestClient[Any, Any], key: str, **extra: Any) -> str:
    payload = {"user_id": "u1", "to": TO, "body": f"hello {key}", "purpose": "nudge", **extra}
    resp = await client.post(
        "/internal/v1/messages", json=payload, headers=service_headers(**{"Idempotency-Key": key})
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def message(client: TestClient[Any, Any], message_id: str) -> dict[str, Any]:
    doc = await client.app[MESSAGE_SERVICE].get(message_id)
    return doc


async def run_worker(client: TestClient[Any, Any]) -> None:
    worker = client.app[WORKER]
    await worker.poll_once()
    await worker.drain()


async def stub_notifier(
    notifier_app: AppFactory, aiohttp_server: Any, stub: TwilioStub, **extra: Any
) -> TestClient[Any, Any]:
    server: TestServer = await aiohttp_server(stub.app())
    settings: dict[str, Any] = {
        "worker_enabled": False,
        "sms_transport": "twilio",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_from_number": FROM_NUMBER,
        "twilio_api_base_url": str(server.make_url("")),
        "public_base_url": "https://notify.example.com",
        "send_timeout_s": 0.5,
    }
    settings.update(extra)
    return await notifier_app(**settings)


@pytest.mark.parametrize(
    ("answer", "possibly_sent"),
    [
        (Answer(429, 20429), False),
        (Answer(429, None), False),
        (Answer(400, 21611), False),
        (Answer(500, 20500), True),
        (Answer(503, None), True),
        (Answer(201, None, delay_s=1.5), True),  # no answer within SEND_TIMEOUT_S
    ],
    ids=["429-20429", "429", "21611-queue-full", "500", "503", "timeout"],
)
async def test_retryable_errors_are_retried(
    notifier_app: AppFactory, aiohttp_server: Any, answer: Answer, possibly_sent: bool
) -> None:
    stub = TwilioStub(script=[answer])
    client = await stub_notifier(notifier_app, aiohttp_server, stub)
    message_id = await queue(client, "k1")
    await run_worker(client)
    doc = await message(client, message_id)
    assert doc["status"] == "queued"
    assert doc["attempts"] == 1
    assert doc["possibly_sent"] is possibly_sent
    # The next attempt succeeds; the possibly-sent mark stays as a record of the risk.
    await run_worker(client)
    doc = await message(client, message_id)
    assert doc["status"] == "sending"
    assert doc["provider_sid"].startswith("SM")
    assert doc["attempts"] == 2
    assert doc["possibly_sent"] is possibly_sent
    assert len(stub.requests) == 2
    sent = stub.requests[-1]
    assert sent["To"] == TO
    assert sent["From"] == FROM_NUMBER
    assert sent["Body"] == "hello k1"
    assert sent["StatusCallback"] == (
        f"https://notify.example.com/webhooks/twilio/status?message_id={message_id}"
    )


@pytest.mark.parametrize("code", [21211, 21614, 21608, 21408])
async def test_permanent_errors_fail_the_message(
    notifier_app: AppFactory, aiohttp_server: Any, code: int
) -> None:
    stub = TwilioStub(script=[Answer(400, code)])
    client = await stub_notifier(notifier_app, aiohttp_server, stub)
    message_id = await queue(client, "k1")
    await run_worker(client)
    doc = await message(client, message_id)
    assert doc["status"] == "failed"
    assert doc["error_code"] == code
    assert doc["attempts"] == 1
    await run_worker(client)
    assert len(stub.requests) == 1
    got = await client.get(f"/internal/v1/messages/{message_id}", headers=service_headers())
    assert (await got.json())["error_code"] == code


async def test_unsubscribed_recipient_is_suppressed(
    notifier_app: AppFactory, aiohttp_server: Any
) -> None:
    stub = TwilioStub(script=[Answer(400, 21610)])
    client = await stub_notifier(notifier_app, aiohttp_server, stub)
    first = await queue(client, "k1")
    await run_worker(client)
    doc = await message(client, first)
    assert doc["status"] == "suppressed"
    assert doc["error_code"] == 21610
    service = client.app[MESSAGE_SERVICE]
    assert await service.suppressions.is_suppressed(TO)
    events = await service.suppressions.events(TO)
    assert [(e["action"], e["source"]) for e in events] == [("opt_out", "twilio_error_21610")]
    # Later messages to the number are suppressed without calling Twilio.
    second = await queue(client, "k2")
    assert (await message(client, second))["status"] == "suppressed"
    await run_worker(client)
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("answer", "final"),
    [(Answer(500, None), "possibly_sent"), (Answer(429, 20429), "failed")],
)
async def test_gives_up_after_max_attempts(
    notifier_app: AppFactory, aiohttp_server: Any, answer: Answer, final: str
) -> None:
    stub = TwilioStub(script=[answer, answer, answer])
    client = await stub_notifier(notifier_app, aiohttp_server, stub, max_send_attempts=3)
    message_id = await queue(client, "k1")
    for _ in range(4):
        await run_worker(client)
    doc = await message(client, message_id)
    assert doc["status"] == final
    assert doc["attempts"] == 3
    assert len(stub.requests) == 3
    listed = await client.get(f"/internal/v1/messages?status={final}", headers=service_headers())
    assert [m["id"] for m in (await listed.json())["items"]] == [message_id]


async def test_connection_refused_is_retried_without_duplicate_risk(
    notifier_app: AppFactory,
) -> None:
    client = await notifier_app(
        worker_enabled=False,
        sms_transport="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_messaging_service_sid="MG" + "2" * 32,
        twilio_api_base_url=f"http://127.0.0.1:{free_port()}",
    )
    message_id = await queue(client, "k1")
    await run_worker(client)
    doc = await message(client, message_id)
    assert (doc["status"], doc["attempts"], doc["possibly_sent"]) == ("queued", 1, False)


async def test_two_workers_never_send_twice(notifier_app: AppFactory) -> None:
    transport = RecordingTransport(delay_s=0.01)
    a = await notifier_app(transport=transport, worker_enabled=False)
    b = await notifier_app(transport=transport, worker_enabled=False)
    ids = [await queue(a, f"k{i}") for i in range(30)]
    workers = [a.app[WORKER], b.app[WORKER]]

    # Both workers read the same due list at the same time; only the unique-key claim stands
    # between them and a double send.
    for _ in range(4):
        await asyncio.gather(*(w.poll_once() for w in workers for _ in range(2)))
        await asyncio.gather(*(w.drain() for w in workers))
    bodies = sorted(body for _, _, body in transport.sends)
    assert bodies == sorted(f"hello k{i}" for i in range(30))
    for message_id in ids:
        doc = await message(a, message_id)
        assert (doc["status"], doc["attempts"]) == ("sending", 1)


async def test_two_running_workers_share_a_backlog(notifier_app: AppFactory) -> None:
    transport = RecordingTransport(delay_s=0.005)
    a = await notifier_app(transport=transport)
    b = await notifier_app(transport=transport)
    ids = [await queue(b if i % 2 else a, f"k{i}") for i in range(40)]

    async def all_sent() -> bool:
        docs = [await message(a, i) for i in ids]
        return all(d["provider_sid"] for d in docs)

    await wait_for(all_sent, timeout_s=20)
    assert len(transport.sends) == 40
    assert a.app[WORKER].sent + b.app[WORKER].sent == 40


async def test_crashed_worker_claims_are_reaped_and_retried(notifier_app: AppFactory) -> None:
    clock = ControllableClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    transport = RecordingTransport()
    client = await notifier_app(clock=clock, transport=transport, worker_enabled=False)
    message_id = await queue(client, "k1")
    now = clock.now()
    # What a worker leaves behind when it dies during attempt 1: a claim and no outcome.
    await client.app[DB][CLAIMS].insert_one(
        {
            "_id": f"send:{message_id}:1",
            "kind": "send",
            "message_id": message_id,
            "attempt": 1,
            "owner": "dead",
            "state": "claimed",
            "claimed_at": now,
            "lease_until": now + timedelta(seconds=60),
            "updated_at": now,
        }
    )
    worker = client.app[WORKER]
    await run_worker(client)
    assert transport.sends == []  # attempt 1 still belongs to the dead worker
    assert await worker.reap_once() == 0  # not before its lease ends
    clock.advance(timedelta(seconds=61))
    assert await worker.reap_once() == 1
    doc = await message(client, message_id)
    # It may have reached Twilio before the worker died: marked, then retried.
    assert (doc["status"], doc["attempts"], doc["possibly_sent"]) == ("queued", 1, True)
    await run_worker(client)
    doc = await message(client, message_id)
    assert (doc["status"], doc["attempts"]) == ("sending", 2)
    assert len(transport.sends) == 1
    # Finished claims are dropped once their lease is over; the reaped one is kept for a while.
    clock.advance(timedelta(seconds=61))
    assert await worker.reap_once() == 0
    left = await client.app[DB][CLAIMS].find().to_list()
    assert [(c["_id"], c["state"]) for c in left] == [(f"send:{message_id}:1", "reaped")]


async def test_callback_arriving_before_the_send_is_recorded(notifier_app: AppFactory) -> None:
    client: TestClient[Any, Any]

    class FastCallbacks(RecordingTransport):
        """Twilio's 'delivered' callback lands before the worker records the send."""

        async def send(self, **kwargs: Any) -> Any:
            outcome = await super().send(**kwargs)
            message_id = kwargs["status_callback"].rsplit("=", 1)[1]
            await client.app[MESSAGE_SERVICE].apply_callback(
                message_id,
                StatusCallback(MessageSid=outcome.provider_sid, MessageStatus="delivered"),
            )
            return outcome

    client = await notifier_app(
        transport=FastCallbacks(), worker_enabled=False, public_base_url="https://n.example.com"
    )
    message_id = await queue(client, "k1")
    await run_worker(client)
    doc = await message(client, message_id)
    assert (doc["status"], doc["attempts"]) == ("delivered", 1)


async def test_expiry_and_not_before(notifier_app: AppFactory) -> None:
    clock = ControllableClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    transport = RecordingTransport()
    client = await notifier_app(clock=clock, transport=transport, worker_enabled=False)
    later = await queue(client, "later", not_before="2026-03-01T13:00:00Z")
    stale = await queue(
        client, "stale", not_before="2026-03-01T12:30:00Z", expires_at="2026-03-01T12:45:00Z"
    )
    await run_worker(client)
    assert transport.sends == []
    clock.advance(timedelta(hours=1, minutes=1))
    await run_worker(client)
    assert (await message(client, stale))["status"] == "expired"
    assert (await message(client, later))["status"] == "sending"
    assert [body for _, _, body in transport.sends] == ["hello later"]


async def test_opt_out_after_queueing_suppresses_the_send(notifier_app: AppFactory) -> None:
    transport = RecordingTransport()
    client = await notifier_app(transport=transport, worker_enabled=False)
    message_id = await queue(client, "k1")
    await client.app[MESSAGE_SERVICE].suppressions.record(
        TO, opted_out=True, source="sms", keyword="STOP", at=datetime.now(UTC)
    )
    await run_worker(client)
    assert (await message(client, message_id))["status"] == "suppressed"
    assert transport.sends == []


async def test_token_bucket_never_exceeds_its_rate() -> None:
    bucket = TokenBucket(rate=25, burst=1)
    loop = asyncio.get_running_loop()
    times = []
    start = loop.time()
    for _ in range(51):
        await bucket.take()
        times.append(loop.time())
    elapsed = times[-1] - start
    assert 1.95 <= elapsed <= 2.4  # 50 intervals of 40 ms: sustained, not slower
    # No one-second window holds more than 25 sends.
    assert all(times[i + 25] - times[i] >= 0.999 for i in range(len(times) - 25))


async def test_token_bucket_burst_and_try_take() -> None:
    ticks = [0.0]
    bucket = TokenBucket(rate=2, burst=3, monotonic=lambda: ticks[0])
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.5)
    ticks[0] = 0.5
    assert bucket.try_take() == 0.0
    ticks[0] = 100.0
    assert [bucket.try_take() for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0)


async def test_worker_sustains_the_configured_rate(notifier_app: AppFactory) -> None:
    transport = RecordingTransport(delay_s=0.02)
    client = await notifier_app(transport=transport, worker_enabled=False, send_rate_per_second=20)
    for i in range(41):
        await queue(client, f"k{i}")
    start = asyncio.get_running_loop().time()
    worker = client.app[WORKER]
    while len(transport.sends) < 41:
        await worker.poll_once()
        await asyncio.sleep(0.01)
    await worker.drain()
    times = sorted(t for t, _, _ in transport.sends)
    # The bucket spaces tokens exactly; a few ms of scheduling jitter sit between token and call.
    assert all(times[i + 20] - times[i] >= 0.98 for i in range(len(times) - 20))
    assert times[-1] - start <= 2.6


async def test_outcome_write_failure_after_a_send_is_retried(notifier_app: AppFactory) -> None:
    transport = RecordingTransport()
    client = await notifier_app(transport=transport, worker_enabled=False)
    message_id = await queue(client, "k1")
    repo = client.app[WORKER]._repo
    real = repo.raise_status
    failures = [OperationFailure("database is locked (5) (SQLITE_BUSY)")]

    async def flaky(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await real(*args, **kwargs)

    repo.raise_status = flaky  # type: ignore[method-assign]
    await run_worker(client)
    doc = await message(client, message_id)
    # Recorded as sent after the retry: no reaping, no second send.
    assert (doc["status"], doc["attempts"], doc["possibly_sent"]) == ("sending", 1, False)
    assert len(transport.sends) == 1


async def test_slow_senders_claim_only_what_fits_in_a_lease(notifier_app: AppFactory) -> None:
    transport = RecordingTransport()
    client = await notifier_app(
        transport=transport, worker_enabled=False, send_rate_per_second=0.1, lease_s=60
    )
    for i in range(3):
        await queue(client, f"k{i}")
    worker = client.app[WORKER]
    # At 0.1 msg/s a second claim would wait 10 s for its token; a quarter lease allows one.
    assert await worker.poll_once() == 1
    await worker.drain()
    assert len(transport.sends) == 1
