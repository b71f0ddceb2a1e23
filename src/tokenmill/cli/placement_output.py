"""`tokenmill models deploy ... --dry-run`: the placement the server computed, for people."""

from typing import Any

from rich.markup import escape

from tokenmill.cli.output import console


def print_placement(data: dict[str, Any]) -> None:
    name = escape(data["name"])
    if data.get("note"):
        console.print(f"[bold]{name}[/] (dry run): {escape(data['note'])}")
        return
    demand = data["demand"]
    where = demand["resource"] or "any accelerator"
    console.print(
        f"[bold]{name}[/] (dry run, nothing created): {demand['replicas']} replica(s) on "
        f"{where}, each weights {demand['weights_gb']:.3f} GB + KV {demand['kv_gb']:.3f} GB "
        f"+ overhead {demand['overhead_gb']:.3f} GB, {demand['strategy']}"
    )
    for note in demand["notes"]:
        console.print(f"  · {escape(note)}")
    for r in data["replicas"]:
        if "reason" in r:
            console.print(f"[red]replica {r['replica']}: not placed:[/] {escape(r['reason'])}")
            continue
        console.print(f"[green]replica {r['replica']}[/] -> {_where(r)}")
        for other in r["also_fit"]:
            console.print(f"    also fits: {_where(other)}")
    if data["rejections"]:
        console.print("rejected:")
    for j in data["rejections"]:
        at = f"{j['node']} {j['device']}" if j["device"] else j["node"]
        console.print(f"  {escape(at)}: {escape(j['reason'])}")
    if data["ok"]:
        console.print("[green]placeable[/]: deploy without --dry-run to start it")


def _where(option: dict[str, Any]) -> str:
    devices = ",".join(f"{option['target']}{i}" for i in option["devices"]) or "CPU"
    tp = f" (TP {option['tensor_parallel']})" if option["tensor_parallel"] > 1 else ""
    cached = ", holds the model file" if option["cached"] else ""
    per = "of RAM" if option["target"] == "CPU" else "per device"
    return escape(
        f"{option['node']} {devices}{tp} [{option['hardware']}]: "
        f"{option['gb_per_device']:.3f} GB {per}, score {option['score']}{cached}"
    )
