"""Keys and agents: who may call, with which rights and limits."""

from datetime import datetime
from typing import Annotated, Any

import typer

from tokenmill.cli.admin_commands import Json, Url
from tokenmill.cli.client import AdminClient
from tokenmill.cli.output import console, emit
from tokenmill.security.keys import ToolPolicy

keys = typer.Typer(
    help="API keys: scoped, limited, rotated, revoked instantly.", no_args_is_help=True
)
agents = typer.Typer(
    help="Agents: principals with their own key, allow-lists and budget.", no_args_is_help=True
)

Csv = Annotated[str | None, typer.Option(help="Comma-separated allow-list ('' allows none)")]
Count = Annotated[int | None, typer.Option(min=1)]
Period = Annotated[str | None, typer.Option(help="day | month | total")]
Expires = Annotated[datetime | None, typer.Option(help="When the key stops working (UTC)")]
Policy = Annotated[
    ToolPolicy | None,
    typer.Option(
        help="A request offering a tool off --tools: 'refuse' it (403 tool_not_allowed) or "
        "'drop' the tool and serve the rest (audited)",
        show_default=False,
    ),
]


def _limits(
    models: str | None,
    tools: str | None,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    budget_tokens: int | None,
    budget_period: str | None,
    expires_at: datetime | None,
) -> dict[str, Any]:
    def split(csv: str | None) -> list[str] | None:
        return None if csv is None else [x.strip() for x in csv.split(",") if x.strip()]

    body = {
        "models": split(models),
        "tools": split(tools),
        "rpm": rpm,
        "tpm": tpm,
        "concurrency": concurrency,
        "budget_tokens": budget_tokens,
        "budget_period": budget_period,
        "expires_at": expires_at.isoformat() if expires_at else None,
    }
    return {k: v for k, v in body.items() if v is not None}


def _show_secret(data: dict[str, Any], what: str) -> None:
    console.print(f"{what}: key [bold]{data['id']}[/] ({data['role']}). Shown once; store it now:")
    print(data["key"])


@keys.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to")],
    name: Annotated[str, typer.Option()] = "default",
    role: Annotated[
        str, typer.Option(help="member | tenant-admin | operator | auditor | platform-admin")
    ] = "member",
    scopes: Annotated[
        str | None, typer.Option(help="inference,management (default: all the role allows)")
    ] = None,
    models: Csv = None,
    tools: Csv = None,
    tool_policy: Policy = None,
    rpm: Count = None,
    tpm: Count = None,
    concurrency: Count = None,
    budget_tokens: Count = None,
    budget_period: Period = None,
    expires_at: Expires = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Create a key (tool policy: 'refuse' unless given)."""
    body = {
        "tenant": tenant,
        "name": name,
        "role": role,
        **_limits(models, tools, rpm, tpm, concurrency, budget_tokens, budget_period, expires_at),
    }
    if tool_policy is not None:
        body["tool_policy"] = tool_policy.value
    if scopes:
        body["scopes"] = [s.strip() for s in scopes.split(",")]
    data = AdminClient(url).call("POST", "/admin/keys", json=body)
    emit(data, True) if json_out else _show_secret(data, f"tenant {tenant}")


@keys.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option()] = None, url: Url = None, json_out: Json = False
) -> None:
    params = {"tenant": tenant} if tenant else {}
    data = AdminClient(url).call("GET", "/admin/keys", params=params)["data"]
    cols = ["id", "tenant", "name", "role", "prefix", "agent", "tool_policy", "expires_at",
            "revoked_at"]  # fmt: skip
    emit(data, json_out, cols, "keys")


@keys.command("revoke")
def keys_revoke(key_id: str, url: Url = None, json_out: Json = False) -> None:
    """Revoke now: the next request with it is refused."""
    data = AdminClient(url).call("DELETE", f"/admin/keys/{key_id}")
    emit(data, True) if json_out else console.print(f"revoked [bold]{key_id}[/]")


@keys.command("rotate")
def keys_rotate(
    key_id: str,
    grace: Annotated[int, typer.Option(min=0, help="Seconds the old secret keeps working")] = 0,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Issue a new secret with the same rights; the old one stops after --grace seconds."""
    data = AdminClient(url).call("POST", f"/admin/keys/{key_id}/rotate", json={"grace_s": grace})
    emit(data, True) if json_out else _show_secret(data, f"rotated {key_id}")


@agents.command("register")
def agents_register(
    name: str,
    tenant: Annotated[str, typer.Option(help="Tenant the agent works for")],
    owner: Annotated[str, typer.Option(help="The user the agent acts for")],
    profile: Annotated[str, typer.Option(help="restricted | standard | batch")] = "standard",
    models: Csv = None,
    tools: Csv = None,
    tool_policy: Policy = None,
    rpm: Count = None,
    tpm: Count = None,
    concurrency: Count = None,
    budget_tokens: Count = None,
    budget_period: Period = None,
    expires_at: Expires = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Create an agent identity with its own key; the profile sets its limits and tool
    policy (restricted: refuse; standard, batch: drop)."""
    body = {
        "tenant": tenant,
        "name": name,
        "owner": owner,
        "profile": profile,
        **_limits(models, tools, rpm, tpm, concurrency, budget_tokens, budget_period, expires_at),
    }
    if tool_policy is not None:
        body["tool_policy"] = tool_policy.value
    data = AdminClient(url).call("POST", "/admin/agents", json=body)
    if json_out:
        emit(data, True)
        return
    console.print(f"agent [bold]{data['agent']['id']}[/] ({name}, owner {owner})")
    _show_secret(data["key"], "its key")


@agents.command("list")
def agents_list(url: Url = None, json_out: Json = False) -> None:
    data = AdminClient(url).call("GET", "/admin/agents")["data"]
    emit(data, json_out, ["id", "tenant", "name", "owner", "profile", "retired_at"], "agents")


@agents.command("retire")
def agents_retire(agent_id: str, url: Url = None, json_out: Json = False) -> None:
    """Retire an agent: every key it holds stops working at once."""
    data = AdminClient(url).call("DELETE", f"/admin/agents/{agent_id}")
    emit(data, True) if json_out else console.print(f"retired [bold]{agent_id}[/]")
