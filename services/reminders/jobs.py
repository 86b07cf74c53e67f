"""System jobs on APScheduler 3.x: sync, sweep, retry, reap, reconcile; timings live-editable.

Only these few jobs exist per process; per-user and per-touchpoint schedules are data in
MongoDB. Job intervals are stored in MongoDB: a change made through the admin API is applied
at once on the replica that took it and within ``timings_refresh_s`` on every other replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo.errors import PyMongoError

from services.reminders.keys import IDEMPOTENCY, JOBS, SERVICE
from services.reminders.service import RemindersService
from services.reminders.sync import ChangeFeedConsumer
from shared.mongo import INDEXES_READY
from shared.tasks import cancel_and_wait
from shared.web.keys import METRICS

log = logging.getLogger(__name__)


def loop_time() -> float:
    """Monotonic seconds, for timing job runs."""
    return asyncio.get_running_loop().time()


class JobRunner:
    """Owns the scheduler of one process and the coroutines its jobs run."""

    def __init__(
        self,
        service: RemindersService,
        consumer: ChangeFeedConsumer,
        refresh_s: float,
        registry: CollectorRegistry | None = None,
        purge: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self.svc = service
        self._purge = purge
        registry = registry or CollectorRegistry()
        self.job_runs = Counter(
            "touchbase_reminders_job_runs_total",
            "System job runs, by job and result (ok, error).",
            ["job", "result"],
            registry=registry,
        )
        self.job_seconds = Histogram(
            "touchbase_reminders_job_duration_seconds",
            "Time one system job run took.",
            ["job"],
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
        )
        self.sweep_users = Counter(
            "touchbase_reminders_sweep_users_total",
            "Users handled by sweeps, by outcome (dispatched, deferred, failed, nothing_due, "
            "paused, window_missed, owned_elsewhere, ...).",
            ["outcome"],
            registry=registry,
        )
        self.consumer = consumer
        self.refresh_s = refresh_s
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.timings: dict[str, float] = {}
        self.running: set[asyncio.Task[Any]] = set()
        self.runs: dict[str, int] = dict.fromkeys(
            ("sync", "sweep", "retry", "reap", "reconcile"), 0
        )
        self.jobs: dict[str, Callable[[], Awaitable[Any]]] = {
            "sync": consumer.run_once,
            "sweep": service.sweep,
            "retry": service.recover,
            "reap": service.recover,
            "reconcile": self._reconcile,
        }

    async def _reconcile(self) -> Any:
        # Daily housekeeping rides on the daily job: expired Idempotency-Key records go too
        # (FerretDB has no TTL indexes).
        result = await self.consumer.reconcile()
        if self._purge is not None:
            await self._purge()
        return result

    def _wrap(self, name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self.running.add(task)
            started = loop_time()
            result = "ok"
            try:
                outcome = await self.jobs[name]()
                if name == "sweep" and isinstance(outcome, dict):
                    for key, count in outcome.items():
                        if isinstance(count, int):
                            self.sweep_users.labels(key).inc(count)
            except Exception:
                result = "error"
                log.exception("system job %s failed; it runs again at its next interval", name)
            finally:
                self.job_runs.labels(name, result).inc()
                self.job_seconds.labels(name).observe(loop_time() - started)
                self.runs[name] += 1
                if task is not None:
                    self.running.discard(task)

        return run

    async def start(self) -> None:
        """Read the stored timings and start the scheduler."""
        self.timings = await self.svc.job_timings()
        for name, seconds in self.timings.items():
            self.scheduler.add_job(
                self._wrap(name),
                IntervalTrigger(seconds=seconds),
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self.scheduler.add_job(
            self.refresh,
            IntervalTrigger(seconds=self.refresh_s),
            id="timings",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()

    async def refresh(self) -> dict[str, float]:
        """Apply job timings stored by an operator (on any replica) without a restart."""
        try:
            stored = await self.svc.job_timings()
        except Exception:
            log.warning("could not read job timings; keeping the current ones")
            return self.timings
        return self.apply(stored)

    def apply(self, timings: dict[str, float]) -> dict[str, float]:
        """Reschedule jobs whose interval changed."""
        for name, seconds in timings.items():
            if name in self.timings and self.timings[name] != seconds and self.scheduler.running:
                self.scheduler.reschedule_job(name, trigger=IntervalTrigger(seconds=seconds))
                log.info("job %s now runs every %.1fs", name, seconds)
            self.timings[name] = seconds
        return dict(self.timings)

    def intervals(self) -> dict[str, float]:
        """What the scheduler is actually running, per job (seconds)."""
        out: dict[str, float] = {}
        for job in self.scheduler.get_jobs():
            if job.id in self.jobs:
                out[job.id] = job.trigger.interval.total_seconds()
        return out

    async def shutdown(self) -> None:
        """Stop scheduling, then cancel and await job runs still in flight."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the system jobs once the database indexes are ready; stop them on exit."""
    service = app[SERVICE]
    settings = service.settings
    runner = JobRunner(
        service,
        ChangeFeedConsumer(service, settings.change_page_size),
        settings.timings_refresh_s,
        app[METRICS],
        app[IDEMPOTENCY].purge,
    )
    app[JOBS] = runner

    async def starter() -> None:
        await app[INDEXES_READY].wait()
        delay = 0.5
        while True:
            try:
                await service.init_defaults()
                if settings.scheduler_enabled:
                    await runner.start()
                return
            except PyMongoError as exc:
                # The database went away right after the indexes were made: keep trying.
                log.warning("starting the system jobs failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    task = asyncio.create_task(starter(), name="reminders-jobs-start")
    try:
        yield
    finally:
        await cancel_and_wait([task])
        await runner.shutdown()
