"""Reminders service: owns time: cadences, touchpoints, nudges, digests and reply interpretation."""
