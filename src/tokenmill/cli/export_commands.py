"""`tokenmill export-usage`: usage records for any filter, streamed from the server's admin API
to stdout or a file."""

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO

import httpx
import typer

from tokenmill.cli.admin_commands import Url
from tokenmill.cli.client import err_console, refused, resolve_key, resolve_url


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


Text = Annotated[str | None, typer.Option()]


def export_usage(
    since: Annotated[float | None, typer.Option(help="Unix time, inclusive")] = None,
    until: Annotated[float | None, typer.Option(help="Unix time, exclusive")] = None,
    tenant: Text = None,
    model: Text = None,
    key: Annotated[str | None, typer.Option(help="Key id")] = None,
    agent: Annotated[str | None, typer.Option(help="Agent id")] = None,
    owner: Text = None,
    outcome: Annotated[str | None, typer.Option(help="ok | partial | error")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.csv,
    out: Annotated[Path | None, typer.Option(help="Write to this file, not stdout")] = None,
    url: Url = None,
) -> None:
    """Usage records, one per request, every field: CSV (with a header row) or JSON lines."""
    given = {"since": since, "until": until, "tenant": tenant, "model": model, "key": key,
             "agent": agent, "owner": owner, "outcome": outcome, "format": fmt.value}  # fmt: skip
    params = {k: v for k, v in given.items() if v is not None}
    base = resolve_url(url)
    try:
        with httpx.stream(
            "GET",
            f"{base}/admin/usage/records",
            params=params,
            headers={"Authorization": f"Bearer {resolve_key()}"},
            timeout=httpx.Timeout(60.0, connect=5.0),
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                refused(resp)
            if out is None:
                _copy(resp, sys.stdout.buffer)
                return
            # A file appears only whole: a cut-off stream must not pass for a complete export.
            partial = out.with_name(f".{out.name}.part")
            try:
                with partial.open("wb") as sink:
                    _copy(resp, sink)
                os.replace(partial, out)
            finally:
                partial.unlink(missing_ok=True)
    except httpx.ConnectError:
        err_console.print(f"[red]No TokenMill server at {base}.[/] Start one or pass --url.")
        raise typer.Exit(3) from None
    except httpx.HTTPError as exc:
        err_console.print(f"[red]Export from {base} failed:[/] {exc}")
        raise typer.Exit(3) from None


def _copy(resp: httpx.Response, sink: BinaryIO) -> None:
    for chunk in resp.iter_bytes():
        sink.write(chunk)
    sink.flush()
