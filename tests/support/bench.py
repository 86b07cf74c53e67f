"""Running a benchmark module at its --quick sizes, as the bench smoke tests do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.processes import REPO_ROOT


def quick_run(
    module: str, tmp_path: Path, *extra: str, timeout: float = 90
) -> tuple[dict[str, Any], str]:
    """Run ``python -m module --quick --json FILE``; the JSON it wrote and what it printed."""
    out = tmp_path / "run.json"
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--json", str(out), *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result, done.stdout
