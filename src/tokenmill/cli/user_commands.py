"""Console users: the people who sign in to the web console with a name and password."""

import sys
from typing import Annotated

import typer

from tokenmill.cli.admin_commands import Json, Url
from tokenmill.cli.client import AdminClient
from tokenmill.cli.output import console, emit

users = typer.Typer(
    help="Console users: sign in at /console/ with a name and password.", no_args_is_help=True
)

FromStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin (for scripts)")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password (12+ characters)", hide_input=True, confirmation_prompt=True))


@users.command("create")
def users_create(
    name: str,
    tenant: Annotated[str, typer.Option(help="Tenant the user belongs to")],
    role: Annotated[
        str, typer.Option(help="tenant-admin | operator | auditor | platform-admin")
    ] = "tenant-admin",
    password_stdin: FromStdin = False,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Create a user (the password is asked for, never taken as an argument)."""
    body = {"tenant": tenant, "name": name, "role": role, "password": _password(password_stdin)}
    data = AdminClient(url).call("POST", "/admin/users", json=body)
    emit(data, True) if json_out else console.print(f"user [bold]{name}[/] ({role}) in {tenant}")


@users.command("list")
def users_list(
    tenant: Annotated[str | None, typer.Option()] = None, url: Url = None, json_out: Json = False
) -> None:
    params = {"tenant": tenant} if tenant else {}
    data = AdminClient(url).call("GET", "/admin/users", params=params)["data"]
    cols = ["id", "tenant", "name", "role", "created_at", "disabled_at", "locked_until"]
    emit(data, json_out, cols, "users")


@users.command("disable")
def users_disable(user_id: str, url: Url = None, json_out: Json = False) -> None:
    """Disable a user; its console sessions end at once."""
    data = AdminClient(url).call("DELETE", f"/admin/users/{user_id}")
    emit(data, True) if json_out else console.print(f"disabled [bold]{user_id}[/]")


@users.command("password")
def users_password(
    user_id: str, password_stdin: FromStdin = False, url: Url = None, json_out: Json = False
) -> None:
    """Set a new password: ends the user's sessions and lifts a lockout."""
    body = {"password": _password(password_stdin)}
    data = AdminClient(url).call("POST", f"/admin/users/{user_id}/password", json=body)
    emit(data, True) if json_out else console.print(f"new password for [bold]{user_id}[/]")
