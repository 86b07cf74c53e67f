"""Run every service benchmark in turn: ``python -m bench`` (or ``make bench``).

Each benchmark starts its own database and servers on 127.0.0.1, stops them when done, and
writes its figures into the service's document under docs/ (see each module's ``--help``).
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = (
    ("contacts API vs a bare aiohttp+PyMongo handler", ["bench.contacts_api", "--write-docs"]),
    ("notifier send rate and webhook latency", ["bench.notifier_send_rate"]),
    ("reminders sweep vs one APScheduler job per touchpoint", ["bench.reminders_sweep"]),
)


def main() -> int:
    """Run each benchmark; the exit code is the first failure's, else 0."""
    failed = 0
    for title, args in BENCHMARKS:
        print(f"== {title}: python -m {' '.join(args)}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", *args])
        print(f"== done in {time.monotonic() - started:.0f}s (exit {code})", flush=True)
        failed = failed or code
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
