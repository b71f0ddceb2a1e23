"""`tokenmill node drain NODE` and `node undrain NODE`: take a fleet node out for maintenance
and back, through the server's admin API."""

import time
from typing import Annotated, Any

import typer

from tokenmill.cli.admin_commands import Json, Url
from tokenmill.cli.client import AdminClient
from tokenmill.cli.node_commands import node
from tokenmill.cli.output import console, emit


def _ended(view: dict[str, Any]) -> list[str]:
    """The moves that ended without moving everything: failed, or stopped by an undrain."""
    return [d for d, m in view["moving"].items() if m["state"] in ("failed", "stopped")]


def _moving(view: dict[str, Any]) -> bool:
    """Moves under way or about to start, or old replicas still finishing their requests."""
    if any(m["state"] == "rolling" for m in view["moving"].values()) or view["stopping"]:
        return True
    return bool(view["replicas"]) and not _ended(view)


@node.command()
def drain(
    name: Annotated[str, typer.Argument(help="The node, as `tokenmill fleet` names it")],
    reason: Annotated[str, typer.Option(help="Why: kept with the drain, and audited")] = (
        "maintenance"
    ),
    wait: Annotated[bool, typer.Option(help="Follow the moves until they end")] = True,
    timeout: Annotated[float, typer.Option(help="Stop following after this many seconds")] = (
        1800.0
    ),
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Place nothing more on a node, and move each replica it runs to another node that fits:
    a new replica serves before the old one drains, so no request is lost. Returns once no
    replica of ours runs there, the old ones' last requests answered."""
    client = AdminClient(url)
    view = client.call("POST", f"/admin/nodes/{name}/drain", json={"reason": reason})
    shown: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while wait and _moving(view) and time.monotonic() < deadline:
        for deployment, move in view["moving"].items():
            if shown.get(deployment) != move["replaced"] and not json_out:
                shown[deployment] = move["replaced"]
                console.print(f"{deployment}: {move['replaced']} of {move['of']} replica(s) moved")
        time.sleep(1.0)
        view = client.call("GET", f"/admin/nodes/{name}")
    ended = {d: view["moving"][d] for d in _ended(view)}
    if json_out:
        emit(view, True)
    else:
        for deployment, move in ended.items():
            why = move["error"] or "the node was undrained"
            console.print(f"[red]{deployment}: not moved ({move['state']}):[/] {why}")
        left = view["replicas"] + view["stopping"]
        if _moving(view):
            console.print(f"{name}: drained, replicas still moving or finishing after "
                          f"{timeout:.0f} s: {', '.join(left)}")  # fmt: skip
        elif left:
            console.print(f"{name}: drained, but {len(left)} replica(s) still run there: "
                          f"{', '.join(left)}")  # fmt: skip
        else:
            console.print(f"{name}: drained, no replica of ours runs there")
    if ended or _moving(view):
        raise typer.Exit(1)


@node.command()
def undrain(
    name: Annotated[str, typer.Argument(help="A drained node")],
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Let replicas be placed on a drained node again (those moved off it stay put)."""
    view = AdminClient(url).call("DELETE", f"/admin/nodes/{name}/drain")
    if json_out:
        emit(view, True)
    else:
        console.print(f"{name}: back in the fleet; new replicas may be placed there")
