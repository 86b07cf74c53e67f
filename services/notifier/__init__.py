"""Notifier service: owns the wire: outbound SMS, inbound SMS and status webhooks, opt-outs."""
