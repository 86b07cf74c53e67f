"""Printing results: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def cell(value: Any) -> str:
    """A short human form of a value."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def table(
    rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]], title: str | None = None
) -> None:
    """Print ``rows`` as a table of ``(key, heading)`` columns."""
    view = Table(title=title, show_lines=False, header_style="bold")
    for _, heading in columns:
        view.add_column(heading, overflow="fold")
    count = 0
    for row in rows:
        view.add_row(*(cell(row.get(key)) for key, _ in columns))
        count += 1
    if count == 0:
        console.print(f"[dim]{title + ': ' if title else ''}nothing to show[/dim]")
        return
    console.print(view)


def error(message: str) -> None:
    """Print an error for a person on stderr."""
    errors.print(f"[bold red]error:[/bold red] {message}", highlight=False)


def success(message: str) -> None:
    """Print a one-line confirmation."""
    console.print(f"[green]✓[/green] {message}", highlight=False)
