"""Printing results: a Rich table for people, JSON for scripts."""

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from tokenmill.cli.tables import print_table

console = Console()


def emit(
    data: Any,
    as_json: bool,
    columns: Sequence[str] | None = None,
    title: str = "",
    keys: int = 1,
) -> None:
    """JSON, or a table that fits the console (tables.py); `keys` leading columns name the
    row and are repeated when a wide table is split."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        console.print(f"[dim]no {title or 'rows'}[/]")
        return
    cols = list(columns or rows[0].keys())
    cells = [["" if row.get(c) is None else str(row.get(c)) for c in cols] for row in rows]
    print_table(console, cols, cells, title, keys)
