"""Per-document atomicity probes against the suite's database, run by 20 concurrent clients."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from pymongo import AsyncMongoClient, MongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]
Collection = AsyncCollection[Document]
T = TypeVar("T")

WORKERS = 20
INCREMENTS_PER_WORKER = 200
UPDATE_ROUNDS = 30
QUEUED_JOBS = 200
CLAIM_KEYS = 5

FERRETDB_V1_LIMIT = (
    "known FerretDB v1 limit: find_one_and_update and conditional updates are read-then-write"
)


def ferretdb_version(build_info: Document) -> str | None:
    """FerretDB's own version from ``buildInfo`` ("unknown" if it hides it), None elsewhere."""
    # FerretDB v1.24 reports ferretdbVersion and ferretdbFeatures (no plain "ferretdb" key);
    # a "ferretdb" document, or any other ferretdb* key, is taken as FerretDB too.
    nested = build_info.get("ferretdb")
    if isinstance(nested, dict) and nested.get("version"):
        return str(nested["version"])
    if build_info.get("ferretdbVersion"):
        return str(build_info["ferretdbVersion"])
    if any(key.lower().startswith("ferretdb") for key in build_info):
        return "unknown"
    return None


@pytest.fixture(scope="session")
def server_ferretdb_version(mongodb_uri: str) -> str | None:
    """The FerretDB version of the suite's server, or None when it is not FerretDB."""
    client: MongoClient[Document] = MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000)
    try:
        return ferretdb_version(client.admin.command("buildInfo"))
    finally:
        client.close()


@pytest.fixture
def known_ferretdb_v1_limit(
    request: pytest.FixtureRequest, server_ferretdb_version: str | None
) -> None:
    """Expect failure on FerretDB v1, whose updates race; a lucky pass shows as XPASS."""
    # Only v1 (or a FerretDB that hides its version) was measured to break these; any other
    # server, later FerretDB included, must pass them outright.
    version = server_ferretdb_version
    if version is not None and (version == "unknown" or version.lstrip("v").startswith("1.")):
        request.applymarker(pytest.mark.xfail(strict=False, reason=FERRETDB_V1_LIMIT))


@pytest.fixture
async def collections(mongodb_uri: str, db_name: str) -> AsyncIterator[list[Collection]]:
    """One handle on the same collection per worker, each through its own client."""
    # Separate clients give every worker its own connection, so the server really sees
    # WORKERS operations in flight at once rather than a queue behind one socket.
    clients: list[AsyncMongoClient[Document]] = [
        AsyncMongoClient(mongodb_uri, appname=f"atomicity-{i}", serverSelectionTimeoutMS=10_000)
        for i in range(WORKERS)
    ]
    try:
        # Connect them all first, so that no worker joins the race late, still handshaking.
        await asyncio.gather(*(client.admin.command("ping") for client in clients))
        yield [client[db_name]["probe"] for client in clients]
    finally:
        await asyncio.gather(*(client.close() for client in clients))


async def race(work: Callable[[int], Awaitable[T]]) -> list[T]:
    """Run ``work(worker)`` for every worker, all released at the same moment."""
    barrier = asyncio.Barrier(WORKERS)

    async def run(worker: int) -> T:
        await barrier.wait()
        return await work(worker)

    return await asyncio.gather(*(run(worker) for worker in range(WORKERS)))


@pytest.mark.usefixtures("known_ferretdb_v1_limit")
async def test_concurrent_find_one_and_update_inc_loses_no_increment(
    collections: list[Collection],
) -> None:
    """Concurrent find_one_and_update $inc on one document counts every increment."""
    await collections[0].insert_one({"_id": "counter", "n": 0})

    async def increment(worker: int) -> list[int]:
        seen = []
        for _ in range(INCREMENTS_PER_WORKER):
            doc = await collections[worker].find_one_and_update(
                {"_id": "counter"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.BEFORE
            )
            assert doc is not None
            seen.append(doc["n"])
        return seen

    seen = [n for values in await race(increment) for n in values]
    final = await collections[0].find_one({"_id": "counter"})
    assert final is not None
    expected = WORKERS * INCREMENTS_PER_WORKER
    # Each increment must have applied to a value no other increment applied to: a repeated
    # pre-image is an update computed from a stale read. Pre-images, not post-images: the
    # counter stays exact on mongo-java-server 1.47, but its post-image is read after the
    # update, so other clients' increments can show in it (measured: 9-56 repeats in 4,000).
    repeats = len(seen) - len(set(seen))
    assert (final["n"], repeats) == (expected, 0), (
        f"{WORKERS} clients x {INCREMENTS_PER_WORKER} find_one_and_update $inc: final n = "
        f"{final['n']}, expected {expected} ({expected - final['n']} lost); "
        f"{repeats} of {len(seen)} returned pre-images were repeats"
    )


@pytest.mark.usefixtures("known_ferretdb_v1_limit")
async def test_concurrent_conditional_updates_modify_once(collections: list[Collection]) -> None:
    """Of concurrent update_one calls on a matching state, exactly one modifies each round."""
    bad_rounds: dict[int, list[int]] = {}
    for round_no in range(UPDATE_ROUNDS):
        job_id = f"job:{round_no}"
        await collections[0].insert_one({"_id": job_id, "state": "claimed"})

        async def finish(worker: int, job_id: str = job_id) -> int:
            result = await collections[worker].update_one(
                {"_id": job_id, "state": "claimed"}, {"$set": {"state": "done", "by": worker}}
            )
            return result.modified_count

        winners = [worker for worker, modified in enumerate(await race(finish)) if modified]
        stored = await collections[0].find_one({"_id": job_id})
        assert stored is not None
        # The stored result must also be the sole winner's, not a loser's write landing late.
        if len(winners) != 1 or stored != {"_id": job_id, "state": "done", "by": winners[0]}:
            bad_rounds[round_no] = winners
    assert not bad_rounds, (
        f"{len(bad_rounds)} of {UPDATE_ROUNDS} rounds of {WORKERS} concurrent conditional "
        f"update_one calls did not have exactly one modifying writer whose write was stored "
        f"(round: workers that reported modified_count == 1): {bad_rounds}"
    )


@pytest.mark.usefixtures("known_ferretdb_v1_limit")
async def test_concurrent_claims_take_each_queued_document_once(
    collections: list[Collection],
) -> None:
    """Workers claiming queued documents with find_one_and_update never share one."""
    await collections[0].insert_many(
        [{"_id": job, "state": "queued"} for job in range(QUEUED_JOBS)]
    )

    async def claim_all(worker: int) -> list[int]:
        claimed = []
        # A worker can claim at most every job once; a bound keeps a broken server from
        # looping until the test times out.
        for _ in range(QUEUED_JOBS + 1):
            doc = await collections[worker].find_one_and_update(
                {"state": "queued"},
                {"$set": {"state": "claimed", "worker": worker}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                return claimed
            claimed.append(doc["_id"])
        raise AssertionError(
            f"worker {worker} still found queued documents after {QUEUED_JOBS} claims"
        )

    claims_by_worker = await race(claim_all)
    claims = Counter(job for claimed in claims_by_worker for job in claimed)
    claimed_twice = {job: n for job, n in claims.items() if n > 1}
    missing = sorted(set(range(QUEUED_JOBS)) - set(claims))
    claimer = {job: worker for worker, jobs in enumerate(claims_by_worker) for job in jobs}
    stored = {doc["_id"]: doc async for doc in collections[0].find({})}
    # A document claimed once must hold that claim, not another worker's overwrite.
    wrong_owner = sorted(
        job
        for job, doc in stored.items()
        if claims.get(job) == 1
        and (doc.get("state"), doc.get("worker")) != ("claimed", claimer[job])
    )
    assert (claimed_twice, missing, wrong_owner) == ({}, [], []), (
        f"{WORKERS} workers claiming {QUEUED_JOBS} queued documents made {claims.total()} claims: "
        f"{len(claimed_twice)} documents claimed more than once {claimed_twice}, "
        f"{len(missing)} never claimed {missing}, "
        f"{len(wrong_owner)} stored with another worker than their claimer {wrong_owner}"
    )


async def test_concurrent_inserts_of_one_id_admit_exactly_one(
    collections: list[Collection],
) -> None:
    """Of concurrent inserts with the same _id, one succeeds and the rest get DuplicateKeyError."""
    # The services' claim guard: this one must hold on every server, FerretDB included.
    outcomes: dict[str, list[int]] = {}
    for key_no in range(CLAIM_KEYS):
        key = f"claim:{key_no}"

        async def insert(worker: int, key: str = key) -> bool:
            try:
                await collections[worker].insert_one({"_id": key, "by": worker})
            except DuplicateKeyError:
                return False
            return True

        winners = [worker for worker, won in enumerate(await race(insert)) if won]
        stored = await collections[0].find({"_id": key}).to_list()
        if len(winners) != 1 or stored != [{"_id": key, "by": winners[0]}]:
            outcomes[key] = winners
    assert not outcomes, (
        f"{len(outcomes)} of {CLAIM_KEYS} keys raced by {WORKERS} concurrent insert_one calls "
        f"did not have exactly one successful insert, stored as its own "
        f"(key: workers whose insert succeeded): {outcomes}"
    )
