"""The CLI's view of a running server: URL and admin key, and calls that fail readably."""

import json
import os
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

from tokenmill.config import DEFAULT_PORT

err_console = Console(stderr=True)
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def config_dir() -> Path:
    explicit = os.environ.get("TOKENMILL_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tokenmill"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def save_login(url: str, key: str) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: tighten it
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "key": key}, f)
    return path


def _saved() -> dict[str, str]:
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_url(url: str | None) -> str:
    return (url or os.environ.get("TOKENMILL_URL") or _saved().get("url") or DEFAULT_URL).rstrip(
        "/"
    )


def resolve_key() -> str:
    key = os.environ.get("TOKENMILL_ADMIN_KEY") or _saved().get("key")
    if not key:
        err_console.print(
            "[red]No admin key.[/] Set TOKENMILL_ADMIN_KEY or run `tokenmill login --key ...`."
        )
        raise typer.Exit(2)
    return key


class AdminClient:
    def __init__(self, url: str | None) -> None:
        self.url = resolve_url(url)
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {resolve_key()}"},
            timeout=httpx.Timeout(60.0, connect=5.0),
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response, once it is a success; errors are printed and end the command."""
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            err_console.print(
                f"[red]No TokenMill server at {self.url}.[/] Start one with `tokenmill up`, "
                "or pass --url."
            )
            raise typer.Exit(3) from None
        except httpx.HTTPError as exc:
            err_console.print(f"[red]Request to {self.url} failed:[/] {exc}")
            raise typer.Exit(3) from None
        if resp.status_code >= 400:
            refused(resp)
        return resp


def refused(resp: httpx.Response) -> NoReturn:
    """Print the server's error (OpenAI-shaped when it is ours) and end the command."""
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = resp.text[:500]
    err_console.print(f"[red]Error {resp.status_code}:[/] {message}")
    raise typer.Exit(1)
