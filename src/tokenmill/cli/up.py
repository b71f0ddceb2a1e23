"""`tokenmill up`: control plane, gateway and the default model on this machine.

The server (FastAPI, SQLAlchemy, uvicorn...) is imported only when `up` runs: every
`tokenmill` command loads this module, and `tokenmill plan` should not wait a second for a
server it never starts.
"""

import asyncio
import logging
import os
import socket
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.panel import Panel

from tokenmill.cli.client import save_login
from tokenmill.cli.output import console
from tokenmill.config import Settings

if TYPE_CHECKING:
    from tokenmill.runtime.deployments import Deployments


def up(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8400)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="State directory")] = None,
    default_model: Annotated[bool, typer.Option(help="Deploy smollm2-135m on first start")] = True,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate chain (PEM)")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The certificate's private key (PEM)")
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="Where replicas run: local (default) or ray (pip install tokenmill[ray])"
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="The Ray cluster to join (HOST:PORT); default: start a local head"),
    ] = None,
) -> None:
    """Start TokenMill: gateway, control plane and model replicas. Ctrl-C stops everything."""
    overrides: dict[str, Any] = {"deploy_default_model": default_model}
    for name, value in (("host", host), ("port", port), ("data_dir", data_dir),
                        ("tls_certfile", tls_cert), ("tls_keyfile", tls_key),
                        ("runtime", runtime), ("ray_address", ray_address)):  # fmt: skip
        if value is not None:
            overrides[name] = value
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"])
            message = escape(str(err["msg"]).removeprefix("Value error, "))
            console.print(f"[red]{escape(where) + ': ' if where else ''}{message}[/]")
        raise typer.Exit(2) from None
    _check_tls(settings)
    _check_runtime(settings)
    _check_port_free(settings.host, settings.port)
    _keep_private(settings)
    _configure_logging(settings)
    from tokenmill.bootstrap import bootstrap, open_database

    try:
        engine = open_database(settings)
        result = bootstrap(settings, engine)
        engine.dispose()
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    scheme = "https" if settings.tls_certfile else "http"
    url = f"{scheme}://{_display_host(settings.host)}:{settings.port}"
    if result.admin_key is not None:
        saved = save_login(url, result.admin_key.secret)
        console.print(
            Panel(
                f"[bold]{result.admin_key.secret}[/]\n\nShown once. Saved for the CLI in {saved}.",
                title="Admin key",
            )
        )
    console.print(f"data directory: {settings.data_dir}")
    import uvloop

    uvloop.run(_serve(settings, url))


async def _serve(settings: Settings, url: str) -> None:
    import uvicorn

    from tokenmill.api.connections import server_config
    from tokenmill.app import create_asgi

    asgi, app = create_asgi(settings)
    config = server_config(asgi, settings)  # with connection idle and header deadlines
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.05)
    if serving.done():
        await serving  # startup failed: uvicorn has said why
        raise typer.Exit(1)
    deployments = app.state.services.deployments
    await _show_replica_progress(deployments, serving)
    if not serving.done():
        _print_failures(deployments)
        runtimes = deployments.runtimes()
        served = [rt.row.name for rt in runtimes if not rt.failure()]
        _print_banner(url, served, failed=len(served) < len(runtimes))
    await serving


async def _show_replica_progress(deployments: "Deployments", serving: "asyncio.Task[None]") -> None:
    from tokenmill.runtime.supervisor import READY_TIMEOUT_S

    started = time.monotonic()
    settled = ("ready", "failed")
    with console.status("starting replicas") as status:
        while not serving.done() and time.monotonic() - started < READY_TIMEOUT_S:
            replicas = deployments.all_replicas()
            if all(r.state.value in settled for r in replicas):
                break
            detail = ", ".join(f"{r.id}: {r.state.value}" for r in replicas)
            status.update(f"starting replicas ({time.monotonic() - started:.0f}s) {detail}")
            await asyncio.sleep(0.2)
    for r in deployments.all_replicas():
        if r.state.value == "failed":
            continue  # said below, at length
        mark = "[green]ready[/]" if r.state.value == "ready" else f"[yellow]{r.state.value}[/]"
        extra = f" ({escape(r.last_error)})" if r.last_error else ""
        console.print(f"replica {r.id} on {r.adapter.name}: {mark}{extra}")


def _print_failures(deployments: "Deployments") -> None:
    for runtime in deployments.runtimes():
        failure = runtime.failure()
        if failure is not None:
            console.print(
                f"[bold red]model {runtime.row.name} FAILED and is not served:[/] {escape(failure)}"
            )


def _print_banner(url: str, models: list[str], failed: bool) -> None:
    model = models[0] if models else "MODEL"
    hello = '[{"role": "user", "content": "Hello!"}]'
    # Never "serving" when what was deployed is not: the failures are printed just above.
    headline = (
        "[bold yellow]TokenMill is up, but serves no model: its deployments failed[/]"
        if failed and not models
        else "[bold green]TokenMill is serving[/]"
    )
    # Plain text, not a panel: these lines are meant to be copied and pasted.
    console.print(
        f"""
{headline} at {url}/v1   (metrics: {url}/metrics, with an operator key)
Console: {url}/console/   (sign in with the admin key, or as a user: tokenmill users create)

Create a tenant and a key (uses TOKENMILL_ADMIN_KEY or the saved login):
  tokenmill tenants create acme
  export KEY=$(tokenmill keys create --tenant acme --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

curl:
  curl {url}/v1/chat/completions -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{{"model": "{model}", "messages": {hello}}}'

OpenAI SDK (Python):
  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key=KEY)
  print(client.chat.completions.create(model="{model}", messages={hello}).choices[0].message.content)

Ctrl-C stops TokenMill and its replicas.""",
        soft_wrap=True,
        markup=True,
        highlight=False,
    )


def _check_tls(settings: Settings) -> None:
    """Load the certificate and key once before anything starts: uvicorn would only fail on
    them after bootstrap, with a traceback."""
    cert, key = settings.tls_certfile, settings.tls_keyfile
    if cert is None or key is None:
        return  # Settings has made sure it is both or neither
    for what, path in (("certificate", cert), ("key", key)):
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            console.print(
                f"[red]Cannot read the TLS {what} {escape(str(path))}: {exc.strerror}.[/]"
            )
            raise typer.Exit(2) from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # An encrypted key would make OpenSSL prompt on the terminal: answer with no password.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        console.print(
            f"[red]The TLS certificate and key do not load ({escape(str(exc.reason or exc))}).[/]"
            " They must be PEM files: the certificate (chain first), and its unencrypted key."
        )
        raise typer.Exit(2) from None


def _check_runtime(settings: Settings) -> None:
    """`--runtime ray` needs Ray installed: say so before anything starts."""
    if settings.runtime == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            console.print(
                "[red]--runtime ray needs Ray:[/] pip install 'tokenmill[ray]' (or 'ray>=2.60')"
            )
            raise typer.Exit(2)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError as exc:
            console.print(
                f"[red]Cannot listen on {host}:{port}: {exc.strerror}.[/] Is TokenMill already "
                "running there? Pick another port with --port."
            )
            raise typer.Exit(2) from None


def _keep_private(settings: Settings) -> None:
    """Everything this process creates (database, WAL, journal, logs, engine logs) is its
    user's alone; a data directory made earlier, by hand or by an older version, is tightened."""
    os.umask(0o077)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _configure_logging(settings: Settings) -> None:
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(settings.log_dir / "tokenmill.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
