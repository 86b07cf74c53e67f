"""Helpers the test suites share: settings, database fixtures, service processes."""
