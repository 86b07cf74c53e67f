"""Small helpers the benchmarks share for their sections of docs/BENCHMARKS.md."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median_range(values: Sequence[float], fmt: str = ".1f") -> str:
    """The median of ``values``, followed by their range when runs differ: ``12.3 (11.0-14.2)``."""
    if fmt == ".1f" and all(float(v).is_integer() for v in values):
        fmt = ".0f"  # counts read better without a decimal
    mid = statistics.median(values)
    low, high = min(values), max(values)
    if len(values) > 1 and f"{low:{fmt}}" != f"{high:{fmt}}":
        return f"{mid:{fmt}} ({low:{fmt}}-{high:{fmt}})"
    return f"{mid:{fmt}}"
