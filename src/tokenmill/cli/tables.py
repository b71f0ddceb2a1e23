"""Tables that fit the console without cutting a figure.

Rich shrinks a table that is too wide by cutting cells with an ellipsis (`0.0…`), which at 80
columns (a terminal's default, and every pipe) took the very figures people read a table for.
Here a cell is never narrower than its text: headers wrap at spaces instead; a table still too
wide is split into parts that each repeat the leading key columns (the row's identity), which
are stacked into one column first when they are wide; keys too wide for even that are printed
one row per block, `header: value` per line.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

_MIN_TEXT = 12  # narrowest a lone long text column (a path, a list) is folded to


@dataclass(frozen=True, slots=True)
class _Column:
    header: str  # as shown: underscores become spaces so long names wrap
    need: int  # widest cell, or longest header word: narrower would cut or fold something
    natural: int  # widest cell or whole header: the width with nothing wrapped


def _width(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[_Column]:
    out = []
    for i, name in enumerate(headers):
        shown = name.replace("_", " ")
        cells = max((_width(r[i]) for r in rows), default=0)
        word = max((cell_len(w) for w in shown.split()), default=0)
        out.append(_Column(shown, max(cells, word, 1), max(cells, _width(shown), 1)))
    return out


def _stacked(
    headers: Sequence[str], rows: Sequence[Sequence[str]], keys: int
) -> tuple[list[str], list[list[str]]]:
    """The key columns as one, a line each: `tenant / model / day` take the width of the
    widest of them, not of all three side by side."""
    head = ["\n".join(headers[:keys]), *headers[keys:]]
    return head, [["\n".join(r[:keys]), *r[keys:]] for r in rows]


def _frame(n: int) -> int:
    """Columns taken by borders and padding of an n-column table (Rich's default box)."""
    return 3 * n + 1


def _widths(cols: Sequence[_Column], limit: int) -> list[int]:
    """Each column's width: its need, then spare room to unwrap headers, left to right."""
    widths = [c.need for c in cols]
    spare = limit - _frame(len(cols)) - sum(widths)
    for i, c in enumerate(cols):
        grow = max(0, min(spare, c.natural - widths[i]))
        widths[i] += grow
        spare -= grow
    if spare < 0:  # one text column wider than the console on its own: fold it, never cut
        widest = max(range(len(cols)), key=lambda i: widths[i])
        widths[widest] = max(_MIN_TEXT, widths[widest] + spare)
    return widths


def _parts(cols: Sequence[_Column], keys: int, limit: int) -> list[list[int]] | None:
    """Column indices of each part: the key columns, then as many others as fit. None when
    the keys leave too little room for any other column."""
    n = len(cols)
    if _frame(n) + sum(c.need for c in cols) <= limit:
        return [list(range(n))]
    keys = min(keys, n - 1)
    base = _frame(keys) + sum(c.need for c in cols[:keys])
    if limit - base - 3 < _MIN_TEXT:
        return None
    parts: list[list[int]] = []
    used = base
    for i in range(keys, n):
        width = 3 + cols[i].need
        if not parts or used + width > limit:
            parts.append(list(range(keys)))
            used = base
        parts[-1].append(i)
        used += width
    return parts


def print_table(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str = "",
    keys: int = 1,
) -> None:
    """Print `rows` under `headers` within the console's width; `keys` leading columns say
    which row is which and are repeated in every part of a split table."""
    limit = console.width
    shown, cells = list(headers), [list(r) for r in rows]
    cols = _columns(shown, cells)
    parts = _parts(cols, keys, limit)
    if keys > 1 and parts != [list(range(len(cols)))]:
        stacked_shown, stacked_cells = _stacked(shown, cells, keys)
        stacked_cols = _columns(stacked_shown, stacked_cells)
        stacked = _parts(stacked_cols, 1, limit)
        if stacked is not None and (parts is None or len(stacked) < len(parts)):
            shown, cells, cols, parts = stacked_shown, stacked_cells, stacked_cols, stacked
    if parts is None:
        _print_records(console, headers, rows, title)
        return
    tall = any("\n" in c for row in cells for c in row)  # rows of several lines: rule them off
    for n, part in enumerate(parts, 1):
        chosen = [cols[i] for i in part]
        label = title if len(parts) == 1 else f"{title or 'table'} ({n}/{len(parts)})"
        table = Table(title=label or None, show_lines=tall)
        for c, width in zip(chosen, _widths(chosen, limit), strict=True):
            table.add_column(c.header, width=width, overflow="fold")
        for row in cells:
            table.add_row(*(Text(row[i]) for i in part))
        console.print(table)


def _print_records(
    console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], title: str
) -> None:
    if title:
        console.print(Text(title, style="italic"))
    for row in rows:
        for name, cell in zip(headers, row, strict=True):
            console.print(Text(f"{name}: {cell}", overflow="fold"))
        console.print()
