"""`tokenmill models update`: a rolling update, followed until it ends."""

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenmill.cli.admin_commands import Json, Url, models, parse_options
from tokenmill.cli.client import AdminClient
from tokenmill.cli.output import console, emit


@models.command("update")
def models_update(
    name: str,
    path: Annotated[Path | None, typer.Option(help="New model file (.gguf)")] = None,
    upstream_model: Annotated[str | None, typer.Option(help="New model name upstream")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            metavar="KEY=VALUE",
            help="Engine option, repeatable: the given set replaces the current",
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the rollout until it ends")] = True,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Roll a deployment onto a new model file, upstream name or engine options, one replica
    at a time: each new replica serves before an old one drains."""
    body: dict[str, Any] = {
        "model_path": str(path.expanduser().resolve()) if path else None,
        "upstream_model": upstream_model,
        "options": parse_options(option) if option else None,
    }
    client = AdminClient(url)
    view = client.call("POST", f"/admin/deployments/{name}/rollout", json=body)
    seen = -1
    while wait and view["rollout"]["state"] == "rolling":
        if view["rollout"]["replaced"] != seen and not json_out:
            seen = view["rollout"]["replaced"]
            console.print(f"{name}: {seen} of {view['rollout']['of']} replica(s) replaced")
        time.sleep(1.0)
        [view] = [d for d in client.call("GET", "/admin/deployments")["data"] if d["name"] == name]
    rollout = view["rollout"]
    if json_out:
        emit(view, True)
    elif rollout["state"] == "done":
        console.print(f"{name}: rolled out, {rollout['replaced']} replica(s) replaced")
    elif rollout["state"] == "failed":
        console.print(f"[red]{name}: rollout stopped:[/] {rollout['error']}")
    else:
        console.print(f"{name}: rolling out; `tokenmill models list` shows how far")
    if rollout["state"] == "failed":
        raise typer.Exit(1)
