"""Where a replica's engine process runs, behind one small interface (ARCHITECTURE.md: runtime).

The supervisor asks an `EngineHost` for a place (the address and a free port *where the engine
will run*), builds the engine's command line for it, starts it, waits for it to exit and stops
it. `LocalHost` runs it as a child process of this one; `RayHost` (runtime/ray_host.py) runs it
on a Ray node, inside an actor holding the devices it asked for.
"""

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tokenmill.engines.base import LaunchCommand
from tokenmill.runtime.crash import crash_report

STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class Placement:
    """Where an engine will run: the address and port it is reached at, the node's name
    (None: this controller's own node), the devices it holds there (e.g. "NPU:0"); and where
    the engine binds when that is not the same (behind a TLS relay, runtime/engine_tls.py),
    with the relay's certificate for the gateway to pin."""

    host: str
    port: int
    node: str | None = None
    devices: tuple[str, ...] = ()
    engine_host: str | None = None
    engine_port: int | None = None
    cert: bytes | None = None


class EngineHost(Protocol):
    async def place(self, host: str) -> Placement:
        """Pick the address and a free port on the node the engine will run on; `host` is
        the address the spec asks for (the node's own one wins where it runs elsewhere)."""
        ...

    async def start(self, cmd: LaunchCommand, log_path: Path) -> int:
        """Start the engine; its output goes to `log_path` on its node. Returns its pid."""
        ...

    async def wait(self) -> int:
        """Until the engine exits: its exit code (negative: the signal that ended it)."""
        ...

    async def stop(self) -> None:
        """Terminate it (TERM, then KILL after a grace); nothing is left running."""
        ...

    async def crash_report(self, code: int, lines: int) -> str:
        """Why it died before ready, with the last lines of its log from this start."""
        ...


def free_port_on(host: str) -> int:
    """A port nothing listens on now at `host` (the kernel's pick); the engine binds it soon."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # If TokenMill (or the Ray actor running the engine) is killed, even -9, the kernel kills
    # the engine too: no orphans.
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class LocalHost:
    """The engine as a child process of this one, on this machine."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._log_path: Path | None = None
        self._log_start = 0

    async def place(self, host: str) -> Placement:
        return Placement(host=host, port=free_port_on(host))

    async def start(self, cmd: LaunchCommand, log_path: Path) -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = await asyncio.to_thread(open, log_path, "ab")
        with logf:
            self._log_path, self._log_start = log_path, logf.tell()
            self._proc = await asyncio.create_subprocess_exec(
                *cmd.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logf,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **cmd.env},
                start_new_session=True,  # Ctrl-C reaches us, not the engine: we stop it in order
                preexec_fn=_die_with_parent,
            )
        return self._proc.pid

    async def wait(self) -> int:
        if self._proc is None:
            raise RuntimeError("no engine started")
        return await self._proc.wait()

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def crash_report(self, code: int, lines: int) -> str:
        if self._log_path is None:
            return f"engine exited with code {code} before it started"
        return crash_report(code, self._log_path, self._log_start, lines=lines)
