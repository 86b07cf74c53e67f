"""Configuration of the reminders service, read from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config import ServiceSettings


class RemindersSettings(ServiceSettings):
    """Reminders service settings.

    Job intervals here are only the defaults written to the database on first start; operators
    change them at run time through the admin API (stored in MongoDB, applied without restart).
    """

    service_name: Literal["reminders"] = "reminders"
    db_name: str = Field(default="touchbase_reminders", pattern=r"^[A-Za-z0-9_-]+$")
    port: int = Field(default=8082, ge=0, le=65535)
    contacts_url: str = Field(default="http://127.0.0.1:8081", pattern=r"^https?://")
    notifier_url: str = Field(default="http://127.0.0.1:8083", pattern=r"^https?://")
    scheduler_enabled: bool = True
    # System job defaults, in seconds.
    sync_interval_s: float = Field(default=5.0, gt=0, le=86_400)
    sweep_interval_s: float = Field(default=15.0, gt=0, le=86_400)
    retry_interval_s: float = Field(default=30.0, gt=0, le=86_400)
    reap_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    reconcile_interval_s: float = Field(default=86_400.0, gt=0, le=7 * 86_400)
    # How often each replica re-reads job timings written by an operator on another replica.
    timings_refresh_s: float = Field(default=10.0, gt=0, le=3_600)
    # A claim untouched for this long is considered abandoned by a crashed replica.
    claim_stale_s: float = Field(default=120.0, gt=0, le=86_400)
    digest_max_segments: int = Field(default=2, ge=1, le=10)
    sweep_batch: int = Field(default=1000, ge=1, le=100_000)
    # Users claimed with one insert and handed to the notifier in one call (its limit: 100).
    sweep_claim_batch: int = Field(default=50, ge=1, le=100)
    # Users in flight at once; claim batches in flight are this divided by the claim batch.
    sweep_concurrency: int = Field(default=100, ge=1, le=1_000)
    change_page_size: int = Field(default=500, ge=1, le=5_000)
    undo_window_s: float = Field(default=600.0, gt=0, le=86_400)
