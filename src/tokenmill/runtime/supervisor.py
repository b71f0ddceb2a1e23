"""Keeps one replica alive: spawns its engine (if it spawns), waits for readiness, health-checks
it, restarts it with exponential backoff when it dies, and stops it without leaving orphans."""

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tokenmill.runtime.crash import exit_reason
from tokenmill.runtime.engine_tls import pinned
from tokenmill.runtime.hosts import EngineHost, LocalHost
from tokenmill.runtime.replica import Replica, ReplicaState
from tokenmill.runtime.smoke import decoded_tokens

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
SMOKE_TIMEOUT_S = 60.0
EXIT_GRACE_S = 5.0
# Starts that fail in a row, each before ready, after which a replica is FAILED and left down:
# a binary that crashes at its first decode would otherwise be restarted forever.
CRASH_LOOP_LIMIT = 3
HEALTH_INTERVAL_S = 5.0
BACKOFF_MAX_S = 30.0


class ReplicaSupervisor:
    def __init__(
        self,
        replica: Replica,
        http: aiohttp.ClientSession,
        log_dir: Path,
        on_state: Callable[[Replica], None] | None = None,
        host: EngineHost | None = None,
    ) -> None:
        self.replica = replica
        self._on_state = on_state
        self._http = http
        self._log_dir = log_dir
        self._host: EngineHost = host if host is not None else LocalHost()
        self._started = False  # an engine was started and not yet stopped
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._reached_ready = False
        self.ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = 1.0
        failed_starts = 0  # in a row, each before the replica was ever ready
        while not self._stopping:
            started = time.monotonic()
            self._reached_ready = False
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
            failed_starts = 0 if self._reached_ready else failed_starts + 1
            if failed_starts >= CRASH_LOOP_LIMIT:
                self._give_up(failed_starts)
                return
            self._set_state(ReplicaState.RESTARTING)
            self.replica.restarts += 1
            if time.monotonic() - started > 60:
                backoff = 1.0  # it ran a good while: not a crash loop
            log.warning("replica %s down; restarting in %.0fs", self.replica.id, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _give_up(self, attempts: int) -> None:
        """A replica that never gets ready will not by retrying: say why, loudly, and stop."""
        replica = self.replica
        replica.failure = f"failed to start {attempts} times in a row: {replica.last_error}"
        log.error("replica %s FAILED, not restarting: %s", replica.id, replica.failure)
        self._set_state(ReplicaState.FAILED)

    async def _run_process(self) -> None:
        replica = self.replica
        # The address and port are chosen where the engine runs (this machine, or a Ray node).
        self._started = True  # from here a stop must reach the host: a Ray actor holds devices
        where = await self._host.place(replica.spec.host)
        # Known at once, so a drain of its node sees it even before its engine starts.
        replica.node, replica.devices = where.node, list(where.devices)
        if where.host != replica.spec.host:
            replica.spec = dataclasses.replace(replica.spec, host=where.host)
        port, secret = where.port, secrets.token_urlsafe(32)
        bound = replica.spec  # where the engine binds: its own address, or loopback behind TLS
        if where.engine_host is not None:
            bound = dataclasses.replace(bound, host=where.engine_host)
        cmd = replica.adapter.launch(bound, where.engine_port or port, secret)
        if cmd is None:
            raise RuntimeError(f"engine {replica.adapter.name} cannot be launched")
        log_path = self._log_dir / f"{replica.id}.log"
        pid = await self._host.start(cmd, log_path)
        replica.port, replica.pid, replica.secret = port, pid, secret
        replica.tls = pinned(where.cert) if where.cert is not None else None
        replica.started_at = time.time()
        replica.own_prompt_tokens = replica.own_completion_tokens = 0
        self._set_state(ReplicaState.STARTING)
        exited = asyncio.ensure_future(self._host.wait())
        try:
            if not await self._wait_ready(exited):
                if exited.done() and not exited.cancelled() and exited.exception() is None:
                    replica.last_error = await self._host.crash_report(exited.result(), 6)
                return
            await self._health_loop(exited)
        finally:
            await self._terminate()
            exited.cancel()

    async def _wait_ready(self, exited: "asyncio.Future[int]") -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not exited.done():
            if await self._healthy():
                if not await self._smoke_decode(exited):
                    return False
                await self._probe_capabilities()
                self._reached_ready = True
                self._set_state(ReplicaState.READY)
                return True
            await asyncio.sleep(0.2)
        self.replica.last_error = (
            f"engine {exit_reason(exited.result())} before ready"
            if exited.done()
            else f"not ready after {READY_TIMEOUT_S:.0f}s"
        )
        return False

    async def _probe_capabilities(self) -> None:
        """Ask the engine what it can do (tools, vision, context); a failed probe leaves the
        adapter's cautious defaults."""
        replica = self.replica
        path = replica.adapter.capabilities_path
        if path is None:
            return
        try:
            timeout = aiohttp.ClientTimeout(total=5)
            url, headers = replica.root_url + path, replica.auth_headers()
            async with self._http.get(url, timeout=timeout, headers=headers, ssl=replica.ssl) as r:
                answer = await r.json(content_type=None) if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("replica %s: capabilities probe failed: %r", replica.id, exc)
            return
        if isinstance(answer, dict):  # read once here, not on every request that asks
            replica.found = replica.adapter.capabilities(replica.spec, answer)

    async def _smoke_decode(self, exited: "asyncio.Future[int]") -> bool:
        """Healthy is not enough: the engine must decode a few tokens before it takes traffic."""
        replica = self.replica
        smoke = replica.adapter.smoke_request(replica.spec)
        if smoke is None:
            return True
        path, body = smoke
        try:
            async with self._http.post(
                replica.base_url + path,
                json=body,
                headers=replica.auth_headers(),
                timeout=aiohttp.ClientTimeout(total=SMOKE_TIMEOUT_S),
                ssl=replica.ssl,
            ) as resp:
                answer = await resp.json(content_type=None) if resp.status == 200 else None
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # A crash closes the socket a moment before the process is reaped (longer on a
            # loaded machine): give it that moment, so the report names the signal.
            await asyncio.wait({exited}, timeout=EXIT_GRACE_S)
            if not exited.done():
                replica.last_error = f"smoke decode failed: {exc!r}"
            return False
        if answer is None or decoded_tokens(answer) <= 0:
            replica.last_error = f"smoke decode answered {status} without tokens"
            return False
        usage = answer["usage"]
        replica.own_prompt_tokens += int(usage.get("prompt_tokens") or 0)
        replica.own_completion_tokens += int(usage["completion_tokens"])
        return True

    async def _health_loop(self, exited: "asyncio.Future[int] | None") -> None:
        failures = 0
        while not self._stopping:
            if exited is not None:
                done, _ = await asyncio.wait({exited}, timeout=HEALTH_INTERVAL_S)
                if done:
                    self.replica.last_error = f"engine {exit_reason(exited.result())}"
                    return
            else:
                await asyncio.sleep(HEALTH_INTERVAL_S)
            if await self._healthy():
                failures = 0
                self._reached_ready = True
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
        # An endpoint that wants a key gets the one its deployment was given.
        self.replica.secret = self.replica.spec.options.get("api_key")
        self._set_state(ReplicaState.STARTING)
        while not self._stopping and not await self._healthy():
            self.replica.last_error = f"endpoint not healthy: {self.replica.health_url}"
            await asyncio.sleep(1.0)
        self._reached_ready = True
        self._set_state(ReplicaState.READY)
        await self._health_loop(None)

    async def _healthy(self) -> bool:
        try:
            timeout = aiohttp.ClientTimeout(total=2.0)
            async with self._http.get(
                self.replica.health_url,
                timeout=timeout,
                headers=self.replica.auth_headers(),
                ssl=self.replica.ssl,
            ) as resp:
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
        if self._started:
            self._started = False
            await self._host.stop()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._terminate()
        self._set_state(ReplicaState.STOPPED)
