"""One llama-server started exactly as a replica would be, outside any gateway.

For what must talk to an engine directly: the build's smoke test, benchmarks that compare the
gateway with the bare engine, and tests of attached endpoints. It carries its own secret, so
it is as closed to other local processes as a supervised replica.
"""

import contextlib
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tokenmill.core.net import free_port
from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.runtime.crash import crash_report

START_TIMEOUT_S = 120.0


class EngineDied(Exception):
    """The engine exited before it was healthy; the message says how and what it last wrote."""


@dataclass(frozen=True)
class StandaloneEngine:
    base_url: str  # ends in /v1
    secret: str
    log: Path
    proc: "subprocess.Popen[bytes]"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def cpu_variant(self) -> str | None:
        """The CPU backend library a portable build picked for this machine (Linux)."""
        try:
            maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        except OSError:
            return None
        found = {Path(line.split()[-1]).name for line in maps.splitlines() if "libggml-cpu" in line}
        return ", ".join(sorted(found)) or None


@contextlib.contextmanager
def standalone_llama_server(
    spec: ReplicaSpec, extra_args: tuple[str, ...] = (), binary: str | None = None
) -> Iterator[StandaloneEngine]:
    """Start it, wait until healthy (or raise EngineDied), yield it, kill it."""
    adapter = LlamaCppAdapter()
    port, secret = free_port(), secrets.token_urlsafe(32)
    cmd = adapter.launch(spec, port, secret, binary=binary)
    log = Path(tempfile.mkstemp(prefix=f"llama-server-{spec.deployment}-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd.argv, *extra_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **cmd.env},
        )
    engine = StandaloneEngine(adapter.base_url(spec, port), secret, log, proc)
    try:
        _wait_healthy(engine, adapter.health_url(spec, port))
        yield engine
        log.unlink(missing_ok=True)  # after a failure it stays, for the message naming it
    finally:
        proc.kill()
        proc.wait()


def _wait_healthy(engine: StandaloneEngine, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = engine.exit_code()
        if code is not None:
            raise EngineDied(crash_report(code, engine.log))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise EngineDied(f"not healthy after {START_TIMEOUT_S:.0f}s; log: {engine.log}")
