"""Management commands: they talk to a running server over its admin API."""

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tokenmill.cli.client import AdminClient, resolve_url, save_login
from tokenmill.cli.output import console, emit
from tokenmill.cli.placement_output import print_placement
from tokenmill.security.accounts import MAX_WEIGHT, MIN_WEIGHT
from tokenmill.security.pii import Kind, NerKind

Url = Annotated[str | None, typer.Option("--url", help="Server URL (default: saved or local)")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output")]

models = typer.Typer(help="Deploy and manage models.", no_args_is_help=True)
tenants = typer.Typer(help="Tenants: who is served and billed.", no_args_is_help=True)
audit = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
_WEIGHT_HELP = (
    f"Share of a busy model relative to other tenants ({MIN_WEIGHT}-{MAX_WEIGHT}; "
    "weight 3 gets 3x the tokens of weight 1)"
)


_KINDS_HELP = (
    f"Comma-separated PII kinds to look for: {', '.join(Kind)}; "
    f"{', '.join(NerKind)} need the `pii` extra"
)


def _kinds(text: str) -> list[str]:
    """A comma-separated list; the server checks the names."""
    return [k.strip() for k in text.split(",") if k.strip()]


_OPTION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$")


def option_value(text: str) -> int | float | bool | str:
    """An engine option's value as typed: an integer, a decimal, true/false, else text."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_options(given: list[str] | None) -> dict[str, int | float | bool | str]:
    """`--option KEY=VALUE`, repeatable, into the deployment's engine options."""
    options: dict[str, int | float | bool | str] = {}
    for item in given or ():
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not _OPTION_KEY.match(key) or not value.strip():
            raise typer.BadParameter(
                f"'{item}' is not KEY=VALUE (e.g. ctx_per_slot=8192): KEY is letters, digits "
                "and '_', VALUE is not empty",
                param_hint="'--option'",
            )
        if key in options:
            raise typer.BadParameter(f"'{key}' is given twice", param_hint="'--option'")
        options[key] = option_value(value.strip())
    return options


@models.command("deploy")
def models_deploy(
    name: str,
    engine: Annotated[str, typer.Option(help="llamacpp | openai")] = "llamacpp",
    path: Annotated[Path | None, typer.Option(help="Model file (.gguf) for llamacpp")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Base URL for openai engine")] = None,
    upstream_model: Annotated[str | None, typer.Option(help="Model name upstream")] = None,
    replicas: Annotated[int, typer.Option(min=0, max=64)] = 1,
    min_replicas: Annotated[
        int | None, typer.Option(min=0, max=64, help="Autoscale from (0: scale to zero)")
    ] = None,
    max_replicas: Annotated[int | None, typer.Option(min=1, max=64, help="Autoscale to")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            metavar="KEY=VALUE",
            help="Engine option, repeatable (llamacpp: ctx_per_slot, parallel, threads, ...); "
            "numbers and true/false are typed, the rest is text",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show where it would go, and why not elsewhere")
    ] = False,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Deploy a model: its replicas start in the background."""
    options = parse_options(option)
    body = {
        "name": name,
        "engine": engine,
        "model_path": str(path.expanduser().resolve()) if path else None,
        "endpoint": endpoint,
        "upstream_model": upstream_model,
        "replicas": replicas,
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "options": options,
    }
    params = {"dry_run": "true"} if dry_run else None
    data = AdminClient(url).call("POST", "/admin/deployments", json=body, params=params)
    if json_out:
        emit(data, True)
    elif dry_run:
        print_placement(data)
    else:
        console.print(f"deployed [bold]{name}[/] on {engine}: {replicas} replica(s) starting")


@models.command("list")
def models_list(url: Url = None, json_out: Json = False) -> None:
    data = AdminClient(url).call("GET", "/admin/deployments")["data"]
    if json_out:
        emit(data, True)
        return
    rows = [
        {
            **d,
            "ready": f"{d['ready_replicas']}/{d['replicas']}",
            "replica_states": ", ".join(f"{r['id']}={r['state']}" for r in d["replica_status"]),
            "source": d["model_path"] or d["endpoint"],
        }
        for d in data
    ]
    emit(rows, False, ["name", "engine", "state", "ready", "replica_states", "source"],
         "deployments")  # fmt: skip
    for d in data:
        if d.get("failure"):
            console.print(f"[red]{escape(d['name'])} FAILED:[/] {escape(d['failure'])}")


@models.command("scale")
def models_scale(
    name: str,
    min_replicas: Annotated[int | None, typer.Option("--min", min=0, max=64)] = None,
    max_replicas: Annotated[int | None, typer.Option("--max", min=1, max=64)] = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Set the autoscaling range (--min 0 allows scale-to-zero; --min N --max N: fixed)."""
    body = {"min_replicas": min_replicas, "max_replicas": max_replicas}
    data = AdminClient(url).call("PATCH", f"/admin/deployments/{name}", json=body)
    if json_out:
        emit(data, True)
    else:
        console.print(f"[bold]{name}[/]: {data['min_replicas']}..{data['max_replicas']} "
                      f"replicas, {data['replicas']} now")  # fmt: skip


@models.command("remove")
def models_remove(name: str, url: Url = None, json_out: Json = False) -> None:
    data = AdminClient(url).call("DELETE", f"/admin/deployments/{name}")
    emit(data, True) if json_out else console.print(f"removed [bold]{name}[/]")


@tenants.command("create")
def tenants_create(
    name: str,
    display_name: Annotated[str | None, typer.Option()] = None,
    weight: Annotated[int, typer.Option(help=_WEIGHT_HELP)] = 1,
    pii_mode: Annotated[
        str | None, typer.Option(help="off | log | mask | block (default: the server's)")
    ] = None,
    pii_kinds: Annotated[str | None, typer.Option(help=_KINDS_HELP)] = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    body = {"name": name, "display_name": display_name, "weight": weight, "pii_mode": pii_mode,
            "pii_kinds": _kinds(pii_kinds) if pii_kinds else None}  # fmt: skip
    data = AdminClient(url).call("POST", "/admin/tenants", json=body)
    emit(data, True) if json_out else console.print(f"created tenant [bold]{name}[/]")


@tenants.command("set-weight")
def tenants_set_weight(
    name: str,
    weight: Annotated[int, typer.Argument(help=_WEIGHT_HELP)],
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Change a tenant's share of the scheduler; running servers apply it at once."""
    data = AdminClient(url).call("PATCH", f"/admin/tenants/{name}", json={"weight": weight})
    msg = f"tenant [bold]{name}[/] now has weight {data['weight']}"
    emit(data, True) if json_out else console.print(msg)


@tenants.command("set-pii")
def tenants_set_pii(
    name: str,
    mode: Annotated[str, typer.Argument(help="off | log | mask | block | default")],
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Set how the PII guard treats a tenant's traffic ('default': the server's setting)."""
    body = {"pii_mode": None if mode == "default" else mode}
    data = AdminClient(url).call("PATCH", f"/admin/tenants/{name}", json=body)
    msg = f"tenant [bold]{name}[/]: PII mode {data['pii_mode'] or 'default'}"
    emit(data, True) if json_out else console.print(msg)


@tenants.command("set-pii-kinds")
def tenants_set_pii_kinds(
    name: str,
    kinds: Annotated[str, typer.Argument(help=_KINDS_HELP + "; 'default': the server's")],
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Set which kinds of personal data the PII guard looks for in a tenant's traffic."""
    body = {"pii_kinds": None if kinds == "default" else _kinds(kinds)}
    data = AdminClient(url).call("PATCH", f"/admin/tenants/{name}", json=body)
    shown = ", ".join(data["pii_kinds"]) if data["pii_kinds"] else "default"
    emit(data, True) if json_out else console.print(f"tenant [bold]{name}[/]: PII kinds {shown}")


@tenants.command("list")
def tenants_list(url: Url = None, json_out: Json = False) -> None:
    emit(AdminClient(url).call("GET", "/admin/tenants")["data"], json_out, title="tenants")


def usage(
    by: Annotated[
        str, typer.Option(help="tenant, model, replica, key, agent, owner; day, week, month")
    ] = "tenant,model,day",
    since: Annotated[float | None, typer.Option(help="Unix time, inclusive")] = None,
    until: Annotated[float | None, typer.Option(help="Unix time, exclusive")] = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Token totals from the ledger."""
    params: dict[str, str | float] = {"group_by": by}
    if since is not None:
        params["since"] = since
    if until is not None:
        params["until"] = until
    data = AdminClient(url).call("GET", "/admin/usage", params=params)
    if json_out:
        emit(data, True)
        return
    cols = [
        *data["group_by"],
        "requests",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "total_tokens",
    ]
    emit(data["data"], False, cols, "usage", keys=len(data["group_by"]))
    if data["total"]:
        t = data["total"]
        console.print(
            f"total: {t['requests']} requests, {t['prompt_tokens']} prompt + "
            f"{t['completion_tokens']} completion = {t['total_tokens']} tokens"
        )


def login(
    key: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Admin key")],
    url: Url = None,
) -> None:
    """Save a server URL and admin key for later commands (file mode 0600)."""
    path = save_login(resolve_url(url), key)
    console.print(f"saved to {path}")


@audit.command("verify")
def audit_verify(url: Url = None, json_out: Json = False) -> None:
    """Check the hash chain, its signed head and checkpoints, the invoice seals and the
    immutability triggers; exit 1 naming the first bad record and every other problem."""
    data = AdminClient(url).call("GET", "/admin/audit/verify")
    problems = data.get("problems", [])
    if json_out:
        emit(data, True)
    elif data["ok"]:
        console.print(f"audit log intact: {data['checked']} records verified, checkpoints "
                      "agree; invoice seals and immutability triggers hold")  # fmt: skip
    else:
        if data["reason"] is not None:
            bad, checked = data["first_bad_seq"], data["checked"]
            where = f" at record {bad}" if bad is not None else ""
            console.print(f"[red]audit log tampered with{where}:[/] {data['reason']} "
                          f"({checked} records verified before it)")  # fmt: skip
        for problem in problems:
            console.print(f"[red]tampered with:[/] {problem}")
    if not data["ok"]:
        raise typer.Exit(1)


@audit.command("export")
def audit_export(url: Url = None) -> None:
    """Every record as JSON lines on stdout, oldest first."""
    client = AdminClient(url)
    params = {"after": 0, "limit": 1000}
    while True:  # each read is audited too: a short page is the end, not an empty one
        page = client.call("GET", "/admin/audit", params=params)["data"]
        for record in page:
            print(json.dumps(record, ensure_ascii=False))
        if len(page) < params["limit"]:
            return
        params["after"] = page[-1]["seq"]


def doctor(url: Url = None, json_out: Json = False) -> None:
    """Check the running server against its compliance profile; exit 1 on any failure."""
    data = AdminClient(url).call("GET", "/admin/doctor")
    if json_out:
        emit(data, True)
    else:
        marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
        for f in data["findings"]:
            fix = f"\n        fix: {f['fix']}" if f["fix"] and f["status"] != "ok" else ""
            console.print(f"{marks[f['status']]:>20}  {f['check']}: {f['detail']}{fix}")
    if not data["ok"]:
        raise typer.Exit(1)
