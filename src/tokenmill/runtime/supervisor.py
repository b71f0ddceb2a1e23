"""Keeps one replica alive: spawns its engine (if it spawns), waits for readiness, health-checks
it, restarts it with exponential backoff when it dies, and stops it without leaving orphans."""

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tokenmill.runtime.replica import Replica, ReplicaState

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
HEALTH_INTERVAL_S = 5.0
BACKOFF_MAX_S = 30.0
STOP_GRACE_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # If TokenMill is killed (even -9), the kernel kills the engine too: no orphans.
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class ReplicaSupervisor:
    def __init__(
        self,
        replica: Replica,
        http: aiohttp.ClientSession,
        log_dir: Path,
        on_state: Callable[[Replica], None] | None = None,
    ) -> None:
        self.replica = replica
        self._on_state = on_state
        self._http = http
        self._log_dir = log_dir
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = 1.0
        while not self._stopping:
            started = time.monotonic()
            try:
                if self.replica.adapter.spawns:
                    await self._run_process()
                else:
                    await self._watch_attached()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("replica %s failed", self.replica.id)
                self.replica.last_error = str(exc)
            if self._stopping:
                break
            self._set_state(ReplicaState.RESTARTING)
            self.replica.restarts += 1
            if time.monotonic() - started > 60:
                backoff = 1.0  # it ran a good while: not a crash loop
            log.warning("replica %s down; restarting in %.0fs", self.replica.id, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _run_process(self) -> None:
        replica = self.replica
        port = free_port()
        cmd = replica.adapter.launch(replica.spec, port)
        if cmd is None:
            raise RuntimeError(f"engine {replica.adapter.name} cannot be launched")
        self._log_dir.mkdir(parents=True, exist_ok=True)
        logf = await asyncio.to_thread(open, self._log_dir / f"{replica.id}.log", "ab")
        with logf:
            self._proc = await asyncio.create_subprocess_exec(
                *cmd.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logf,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **cmd.env},
                start_new_session=True,  # Ctrl-C reaches us, not the engine: we stop it in order
                preexec_fn=_die_with_parent,
            )
        replica.port, replica.pid = port, self._proc.pid
        replica.started_at = time.time()
        self._set_state(ReplicaState.STARTING)
        exited = asyncio.ensure_future(self._proc.wait())
        try:
            if not await self._wait_ready(exited):
                return
            await self._health_loop(exited)
        finally:
            await self._terminate()
            exited.cancel()

    async def _wait_ready(self, exited: "asyncio.Future[int]") -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not exited.done():
            if await self._healthy():
                self._set_state(ReplicaState.READY)
                return True
            await asyncio.sleep(0.2)
        self.replica.last_error = (
            f"engine exited with code {exited.result()} before ready"
            if exited.done()
            else f"not ready after {READY_TIMEOUT_S:.0f}s"
        )
        return False

    async def _health_loop(self, exited: "asyncio.Future[int] | None") -> None:
        failures = 0
        while not self._stopping:
            if exited is not None:
                done, _ = await asyncio.wait({exited}, timeout=HEALTH_INTERVAL_S)
                if done:
                    self.replica.last_error = f"engine exited with code {exited.result()}"
                    return
            else:
                await asyncio.sleep(HEALTH_INTERVAL_S)
            if await self._healthy():
                failures = 0
                self._set_state(ReplicaState.READY)
            else:
                failures += 1
                # One slow answer from a busy engine is not an outage; refused connections
                # take a replica out at once anyway (passive health, in the gateway).
                if failures >= 2:
                    self._set_state(ReplicaState.UNHEALTHY)
                if failures >= 3 and exited is not None:
                    self.replica.last_error = "failed 3 health checks"
                    return  # restart it

    async def _watch_attached(self) -> None:
        self._set_state(ReplicaState.STARTING)
        while not self._stopping and not await self._healthy():
            self.replica.last_error = f"endpoint not healthy: {self.replica.health_url}"
            await asyncio.sleep(1.0)
        self._set_state(ReplicaState.READY)
        await self._health_loop(None)

    async def _healthy(self) -> bool:
        try:
            timeout = aiohttp.ClientTimeout(total=2.0)
            async with self._http.get(self.replica.health_url, timeout=timeout) as resp:
                if resp.status < 300:
                    return True
                self.replica.last_error = f"health check answered {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.replica.last_error = f"health check failed: {exc!r}"
        return False

    def _set_state(self, state: ReplicaState) -> None:
        if state is not self.replica.state and ReplicaState.READY in (state, self.replica.state):
            log.info("replica %s: %s -> %s (%s)", self.replica.id, self.replica.state.value,
                     state.value, self.replica.last_error or "ok")  # fmt: skip
        self.replica.state = state
        if self._on_state is not None:  # every observation, so passive marks get cleared too
            self._on_state(self.replica)
        if state is ReplicaState.READY:
            self.replica.last_error = None
            self.ready.set()
        else:
            self.ready.clear()

    async def _terminate(self) -> None:
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

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._terminate()
        self._set_state(ReplicaState.STOPPED)
