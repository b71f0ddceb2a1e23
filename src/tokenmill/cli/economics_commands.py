"""`tokenmill report` and `tokenmill report economics`: what tokens earn and what they cost."""

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from tokenmill.cli import billing_commands
from tokenmill.cli.admin_commands import Json, Url
from tokenmill.cli.client import AdminClient
from tokenmill.cli.output import console, emit

report = typer.Typer(help="Business reports: revenue (default) and economics.")
report.callback(invoke_without_command=True)(billing_commands.report)


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def _energy(e: dict[str, Any]) -> str:
    if "watts" not in e:
        return "unknown"
    mark = " (estimate)" if e["estimated"] else ""
    if "joules_per_token_it" not in e:
        return f"{e['watts']} W{mark}"
    return (
        f"{e['watts']} W{mark}; {e['joules_per_token_it']:.3g} J/token IT, "
        f"{e['joules_per_token_all_in']:.3g} all-in; "
        f"{e['tokens_per_kwh_all_in']:,.0f} tokens/kWh all-in"
    )


def _print_inputs(node: dict[str, Any]) -> None:
    i, h = node["inputs"], node["inputs"]["hour_cost"]
    acq = ", ".join(f"{k} {v}" for k, v in i["acquisition"].items())
    mark = " [yellow](default estimate)[/]" if node.get("cost_estimated") else ""
    console.print(
        f"[bold]{node['node']}[/]{mark} ({node['currency']}): {acq}; PUE {i['pue']} "
        f"({i['pue_source']}); power price {i['price_per_kwh']}/kWh ({i['price_source']})\n"
        f"  hour cost = capital {h['capital']} + energy {h['energy']} + fixed opex "
        f"{h['fixed_opex']} = {h['total']}; busy {i['busy_s']:.1f} s of {i['window_s']:.1f} s\n"
        f"  ROI over the window {node['roi']}; payback: {node['payback_basis']}\n"
        f"  energy: {_energy(node['energy'])}; {node['energy']['basis']}"
    )


def economics(
    hours: Annotated[
        float | None,
        typer.Option(min=0.001, help="Hours back (default: 24, or since the server started)"),
    ] = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Cost per 1M tokens by node, model and tenant, margin against the price book,
    utilisation, unsold capacity, energy per token, payback and ROI, with the inputs used."""
    now = time.time()
    window = {} if hours is None else {"since": now - hours * 3600, "until": now}
    data = AdminClient(url).call("GET", "/admin/economics", params=window)
    if json_out:
        emit(data, True)
    else:
        show(data)


def _print_default(default: dict[str, Any]) -> None:
    """Say plainly that the node's cost is the default estimate, and how to give the real one."""
    console.print(
        f"[bold yellow]The cost of node {escape(default['node'])} is a default estimate:[/] "
        f"{escape(default['basis'])}.\n[bold]To replace it[/], {escape(default['replace'])}, "
        "e.g.:"
    )
    console.print(default["node_file_example"], markup=False, highlight=False, end="")


def show(data: dict[str, Any]) -> None:
    """The report for people: tables that fit the console, then each node's inputs."""
    rows = [
        {
            "node": n["node"] + (" (estimate)" if n.get("cost_estimated") else ""),
            "utilisation": _percent(n["utilisation"]),
            "tokens": n["tokens"],
            "cost": n["cost"],
            "unsold capacity": n["unsold_capacity"],
            "cost/1M tokens": n["cost_per_1m_tokens"],
            "revenue": n["revenue"],
            "margin": n["gross_margin"],
            "payback months": n["payback_months"],
        }
        for n in data["nodes"]
    ]
    w = data["window"]
    console.print(f"window: {w['seconds']:.0f} s ending {time.ctime(w['until'])}")
    emit(rows, False, title="nodes")
    for node in data["nodes"]:
        _print_inputs(node)
    if data.get("default_node"):
        _print_default(data["default_node"])
    cols = ["currency", "input_tokens", "output_tokens", "cost", "cost_per_1m_input",
            "cost_per_1m_output", "revenue", "gross_margin"]  # fmt: skip
    emit(data["by_model"], False, ["model", *cols], "by model", keys=2)
    emit(data["by_tenant"], False, ["tenant", *cols], "by tenant", keys=2)
    emit(data["by_replica"], False, ["replica", *cols[:6]], "by replica", keys=2)
    if data["without_node"]:
        emit(data["without_node"], False, title="deployments with no node cost configured")
    console.print(f"[dim]node costs from {data['node_file']}[/]")


report.command()(economics)
