"""`tokenmill node inspect`: this machine's CPU and accelerators as the fleet sees them;
`tokenmill node join ADDRESS`: this machine joins the fleet's Ray cluster, declaring them.

Runs locally (no server): every vendor's detector, each device matched to the catalog.
"""

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tokenmill.cli.admin_commands import Json
from tokenmill.cli.client import err_console
from tokenmill.cli.output import console
from tokenmill.cli.tables import print_table
from tokenmill.fleet.discovery import Discovery, discover, to_json
from tokenmill.fleet.inventory import Device
from tokenmill.fleet.ray_resources import ray_start_argv

RAY_MISSING = "Ray is not installed here: pip install 'tokenmill[ray]'"

node = typer.Typer(help="This machine as a fleet node.", no_args_is_help=True)

_COLUMNS = [
    "device",
    "vendor",
    "model",
    "catalog",
    "memory_GB",
    "used_GB",
    "util",
    "power_W",
    "temp_C",
    "driver",
    "health",
]


def _figure(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(d: Device) -> list[str]:
    return [
        f"{d.resource}{d.index}",
        d.vendor,
        d.model,
        d.catalog_id or "-",
        _figure(d.memory_gb, ".1f"),
        _figure(d.memory_used_gb, ".1f"),
        "-" if d.utilisation is None else f"{d.utilisation:.0%}",
        _figure(d.power_w, ".0f"),
        _figure(d.temperature_c, ".0f"),
        d.driver or "-",
        d.health,
    ]


def show(found: Discovery) -> None:
    inv = found.inventory
    cpu = inv.cpu
    console.print(
        f"[bold]{escape(inv.name)}[/] ({escape(inv.address)}): {escape(cpu.model)}, "
        f"{cpu.cores} CPUs usable, {cpu.memory_gb:.1f} GB memory, "
        f"{cpu.numa_nodes} NUMA node(s)\n  ISA: {', '.join(sorted(cpu.isa)) or 'none we use'}"
    )
    if inv.devices:
        print_table(console, _COLUMNS, [_row(d) for d in inv.devices], "accelerators", keys=1)
    else:
        console.print("No accelerator found: engines here run on the CPU.")
    for tool, why in sorted(found.problems.items()):
        console.print(f"[yellow]{escape(tool)}[/]: {escape(why)}")


@node.command()
def inspect(json_out: Json = False) -> None:
    """The CPU (cores, ISA, memory, NUMA) and every accelerator found here, with the hardware
    catalog entry each matches."""
    found = discover()
    if json_out:
        print(to_json(found))
    else:
        show(found)


def find_ray() -> str | None:
    """The `ray` command: on PATH, or beside this Python (a virtual environment not activated)."""
    beside = str(Path(sys.executable).parent)
    return shutil.which("ray", path=os.pathsep.join([os.environ.get("PATH", ""), beside]))


@node.command()
def join(
    address: Annotated[str, typer.Argument(help="The Ray head's address, HOST:PORT.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command only.")] = False,
    block: Annotated[
        bool, typer.Option("--block", help="Stay in the foreground (for a service manager).")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="The name the fleet knows it by (default: its hostname).")
    ] = None,
) -> None:
    """Make this machine a fleet node: `ray start --address=ADDRESS`, declaring the accelerators
    found here as Ray resources (GPU, NPU, HPU, MLU, DCU) and their catalog types."""
    found = discover()
    for tool, why in sorted(found.problems.items()):
        err_console.print(f"[yellow]{escape(tool)}[/]: {escape(why)}")
    ray = find_ray()
    if ray is None and not dry_run:
        err_console.print(f"[red]{escape(RAY_MISSING)}[/]")
        raise typer.Exit(1)
    inventory = replace(found.inventory, name=name) if name else found.inventory
    try:
        argv = ray_start_argv(address, inventory, ray or "ray")
    except ValueError as exc:
        err_console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    if block:
        argv.append("--block")
    print(shlex.join(argv), flush=True)
    if not dry_run:
        raise typer.Exit(subprocess.run(argv).returncode)
