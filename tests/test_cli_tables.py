"""CLI tables at 80 columns (a terminal's default, and every pipe): no cell cut with an
ellipsis, every figure whole, no table line wider than the console."""

import io
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tokenmill.cli import admin_commands, output
from tokenmill.cli.main import app

BOX = "│┃┏┗┡└┌╭"  # the first character of a table's lines


def _plan(columns: int, *args: str) -> str:
    env = {**os.environ, "COLUMNS": str(columns)}
    proc = subprocess.run(
        [sys.executable, "-m", "tokenmill", "plan", "--model", "llama-3.1-8b", "--rate", "20",
         *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cells(text: str) -> list[list[str]]:
    """The body rows of every table in `text` (lines between │), cells stripped."""
    return [
        [c.strip() for c in line.strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in BOX]


def _assert_fits(text: str, width: int = 80) -> None:
    assert "…" not in text
    lines = _table_lines(text)
    assert lines and all(len(line) <= width for line in lines), max(lines, key=len)


@pytest.mark.parametrize("extra", [(), ("--acquire", "owned", "--price", "0.5")])
def test_plan_at_80_columns_cuts_no_figure(extra: tuple[str, ...]) -> None:
    narrow, wide = _plan(80, *extra), _plan(250, *extra)
    _assert_fits(narrow)
    wide_rows = _cells(wide)
    assert wide_rows and len(wide_rows[0]) >= 11  # the wide table is one table, unsplit
    narrow_cells = {c for row in _cells(narrow) for c in row}
    for row in wide_rows:  # every cell of the wide table, whole, in the narrow one
        assert set(row) <= narrow_cells, set(row) - narrow_cells
    assert "$/1M" in narrow and "device" in narrow


USAGE = {
    "group_by": ["tenant", "model", "day"],
    "data": [
        {"tenant": "acme-research-division", "model": "llama-3.1-70b-instruct",
         "day": "2026-12-01", "requests": 123456, "prompt_tokens": 98765432,
         "cached_tokens": 1234567, "completion_tokens": 12345678, "total_tokens": 111111110},
        {"tenant": "t1", "model": "smollm2-135m", "day": "2026-12-02", "requests": 7,
         "prompt_tokens": 901, "cached_tokens": 0, "completion_tokens": 3456,
         "total_tokens": 4357},
    ],
    "total": None,
}  # fmt: skip


def _emit(width: int, *args: Any, **kwargs: Any) -> str:
    buffer = io.StringIO()
    saved = output.console
    output.console = Console(file=buffer, width=width, color_system=None)
    try:
        output.emit(*args, **kwargs)
    finally:
        output.console = saved
    return buffer.getvalue()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w.\-/$~]+", text))


@pytest.mark.parametrize("width", [80, 60])
def test_emit_usage_like_rows_keeps_numbers_and_headers_whole(width: int) -> None:
    rows = [{**r, "cost": f"{1234.567891 * (i + 1):.6f}"} for i, r in enumerate(USAGE["data"])]
    cols = [*USAGE["group_by"], "requests", "prompt_tokens", "cached_tokens",
            "completion_tokens", "total_tokens", "cost"]  # fmt: skip
    text = _emit(width, rows, False, cols, "usage", keys=3)
    _assert_fits(text, width)
    words = _words(text)
    for row in rows:
        assert {str(v) for v in row.values()} <= words
    assert {"requests", "prompt", "completion", "tokens", "cost"} <= words


def test_a_text_longer_than_the_console_is_folded_not_cut() -> None:
    path = "/srv/models/" + "very-long-directory-name/" * 6 + "model.gguf"
    text = _emit(80, [{"name": "m", "source": path, "replicas": 3}], False)
    _assert_fits(text)
    first = text[: text.index("└")]  # the part with the path
    body = "".join(row[1] for row in _cells(first))
    assert body == path  # every character, in order, across the folded lines
    assert "3" in {c for row in _cells(text) for c in row}


def test_the_usage_command_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    class Canned:
        def __init__(self, url: str | None) -> None:
            pass

        def call(self, method: str, path: str, **_: Any) -> Any:
            assert (method, path) == ("GET", "/admin/usage")
            return USAGE

    monkeypatch.setattr(admin_commands, "AdminClient", Canned)
    result = CliRunner().invoke(app, ["usage"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    _assert_fits(result.output)
    words = _words(result.output)
    for row in USAGE["data"]:
        assert {str(v) for v in row.values()} <= words
