"""Printing results: a Rich table for people, JSON for scripts."""

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None, title: str = "") -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        console.print(f"[dim]no {title or 'rows'}[/]")
        return
    cols = list(columns or rows[0].keys())
    table = Table(title=title or None)
    for c in cols:
        table.add_column(c)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
    console.print(table)
