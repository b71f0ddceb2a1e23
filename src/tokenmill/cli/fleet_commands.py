"""`tokenmill fleet`: nodes, their accelerators and the replicas on them, from the server."""

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from tokenmill.cli.admin_commands import Json, Url
from tokenmill.cli.client import AdminClient
from tokenmill.cli.output import emit


def _figure(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def fleet(url: Url = None, json_out: Json = False) -> None:
    """Nodes, their accelerators (utilisation, memory, power) and the replicas they run."""
    data = AdminClient(url).call("GET", "/admin/fleet")
    if json_out:
        emit(data, True)
        return
    replicas = data["replicas"]
    on_node = Counter(r["node"] for r in replicas if r["live"])
    nodes = [
        {
            "node": n["name"],
            "address": n["address"],
            "cpu": f"{n['cpu']['cores']} x {n['cpu']['model']}",
            "memory_GB": f"{n['cpu']['memory_gb']:.1f}",
            "accelerators": ", ".join(
                f"{count} {resource}"
                for resource, count in sorted(Counter(d["resource"] for d in n["devices"]).items())
            )
            or "none",
            "replicas": str(on_node.get(n["name"], 0)),
        }
        for n in data["nodes"]
    ]
    emit(nodes, False, list(nodes[0]) if nodes else None, "nodes")
    devices = [
        {
            "node": n["name"],
            "device": f"{d['resource']}{d['index']}",
            "model": d["model"],
            "util": _figure(d["utilisation"], ".0%"),
            "used_GB": _figure(d["memory_used_gb"], ".1f"),
            "memory_GB": _figure(d["memory_gb"], ".1f"),
            "power_W": _figure(d["power_w"], ".0f"),
            "health": d["health"],
        }
        for n in data["nodes"]
        for d in n["devices"]
    ]
    if devices:
        emit(devices, False, list(devices[0]), "accelerators", keys=2)
    rows = [
        {
            "replica": r["id"],
            "node": r["node"],
            "engine": r["engine"],
            "devices": ", ".join(r["devices"]) or "-",
            "state": r["state"] + (" (draining)" if r["draining"] else ""),
            "endpoint": r["endpoint"] or "-",
            "live": "yes" if r["live"] else f"no ({r['heartbeat_age_s']:.0f} s)",
        }
        for r in replicas
    ]
    columns = ["replica", "node", "engine", "devices", "state", "endpoint", "live"]
    emit(rows, False, columns, "replicas")
    drained = [{"node": d["node"], "reason": d["reason"], "since": _since(d["at"])}
               for d in data["drained"]]  # fmt: skip
    if drained:
        emit(drained, False, ["node", "reason", "since"], "drained nodes (nothing is placed there)")


def _since(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
