"""Notifier metrics: send attempts by outcome, inbound texts by handling, rejected webhooks."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True, slots=True)
class NotifierMetrics:
    """The notifier's counters, registered in the app's registry."""

    send_attempts: Counter
    inbound: Counter
    rejected_webhooks: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifierMetrics:
        """Register the counters in ``registry``."""
        return cls(
            send_attempts=Counter(
                "touchbase_sms_send_attempts_total",
                "Send attempts by outcome (sent, retry, retry_possibly_sent, opted_out, "
                "permanent, expired, suppressed, given_up).",
                ["outcome"],
                registry=registry,
            ),
            inbound=Counter(
                "touchbase_sms_inbound_total",
                "Inbound texts by how they were handled (answered, compliance, deferred, ...).",
                ["handling"],
                registry=registry,
            ),
            rejected_webhooks=Counter(
                "touchbase_sms_webhook_rejected_total",
                "Webhooks refused because their Twilio signature did not verify.",
                registry=registry,
            ),
        )
