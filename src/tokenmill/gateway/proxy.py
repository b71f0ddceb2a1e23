"""The inference hot path: pick a replica, relay the request, meter the answer exactly once.

Framework-free: it returns bytes or an async iterator of SSE bytes; `api/` wraps them in HTTP.
A response's last bytes leave only after its usage record is durable in the journal.
"""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tokenmill.core.errors import TokenMillError, Unavailable, UpstreamError
from tokenmill.core.usage import UsageRecord
from tokenmill.gateway.sse import sse_events
from tokenmill.gateway.tracker import UsageTracker
from tokenmill.metering.service import Metering
from tokenmill.observe.metrics import GatewayMetrics
from tokenmill.runtime.deployments import Deployments
from tokenmill.runtime.replica import Replica
from tokenmill.security.keys import Principal

log = logging.getLogger(__name__)

PATHS = {"chat": "/chat/completions", "completions": "/completions"}
CLIENT_CLOSED = 499  # nginx's convention for "the client went away first"


@dataclass(frozen=True)
class ProxyResult:
    status: int
    body: bytes


class InferenceProxy:
    def __init__(
        self,
        deployments: Deployments,
        metering: Metering,
        metrics: GatewayMetrics,
        http: aiohttp.ClientSession,
        replica_wait_s: float,
    ) -> None:
        self._deployments = deployments
        self._metering = metering
        self._metrics = metrics
        self._http = http
        self._wait_s = replica_wait_s

    async def handle(
        self, principal: Principal, request_id: str, endpoint: str, body: dict[str, Any]
    ) -> ProxyResult | AsyncIterator[bytes]:
        model = body["model"]
        runtime, replica = await self._deployments.pick(model, self._wait_s)
        upstream = runtime.adapter.upstream_model(replica.spec)
        tracker = UsageTracker(
            request_id=request_id,
            tenant=principal.tenant,
            key_id=principal.key_id,
            model=model,
            deployment=runtime.row.name,
            replica=replica.id,
            endpoint=endpoint,
            stream=bool(body.get("stream")),
        )
        payload = {**body, "model": upstream}
        url = replica.base_url + PATHS[endpoint]
        if not tracker.stream:
            return await self._complete(replica, url, payload, tracker)
        client_opts = body.get("stream_options") or {}
        runtime.adapter.prepare_stream(payload)
        relay = _StreamRelay(
            want_usage=bool(client_opts.get("include_usage")),
            strip_timings="timings_per_token" not in body and "timings_per_token" in payload,
            public_model=model if upstream != model else None,
        )
        return await self._open_stream(replica, url, payload, tracker, relay)

    async def _complete(
        self, replica: Replica, url: str, payload: dict[str, Any], tracker: UsageTracker
    ) -> ProxyResult:
        self._begin(replica, tracker)
        try:
            async with self._http.post(url, data=orjson.dumps(payload), headers=_JSON) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._finish(replica, tracker.record(503, "error"))
            raise Unavailable(
                f"replica {replica.id} did not answer: {type(exc).__name__}"
            ) from None
        if status != 200:
            await self._finish(replica, tracker.record(status, "error"))
            raise _upstream_failure(status, raw)
        data = orjson.loads(raw)
        tracker.take_usage(data.get("usage"))
        tracker.mark_first_token()
        choices = data.get("choices") or [{}]
        tracker.finish_reason = choices[0].get("finish_reason")
        data["model"] = tracker.model
        await self._finish(replica, tracker.record(200, "ok"))
        return ProxyResult(200, orjson.dumps(data))

    async def _open_stream(
        self,
        replica: Replica,
        url: str,
        payload: dict[str, Any],
        tracker: UsageTracker,
        relay: "_StreamRelay",
    ) -> ProxyResult | AsyncIterator[bytes]:
        self._begin(replica, tracker)
        try:
            resp = await self._http.post(url, data=orjson.dumps(payload), headers=_JSON)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._finish(replica, tracker.record(503, "error"))
            raise Unavailable(
                f"replica {replica.id} did not answer: {type(exc).__name__}"
            ) from None
        if resp.status != 200:
            raw = await resp.read()
            resp.release()
            await self._finish(replica, tracker.record(resp.status, "error"))
            raise _upstream_failure(resp.status, raw)
        return self._relay(replica, resp, tracker, relay)

    async def _relay(
        self,
        replica: Replica,
        resp: aiohttp.ClientResponse,
        tracker: UsageTracker,
        relay: "_StreamRelay",
    ) -> AsyncIterator[bytes]:
        recorded = False
        try:
            ended = False
            async for line in sse_events(resp.content):
                data = line[5:].strip()
                if data == b"[DONE]":
                    ended = True
                    break
                out = relay.rewrite(data, tracker)
                if out is not None:
                    yield out
                    relay.delivered(tracker)  # the yield returned: the client took it
            if not ended:
                raise aiohttp.ClientPayloadError("stream ended without [DONE]")
            recorded = True
            await self._finish(replica, tracker.record(200, "ok"))
            if relay.held_usage is not None:
                yield b"data: " + relay.held_usage + b"\n\n"
            yield b"data: [DONE]\n\n"
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not recorded:
                recorded = True
                await self._finish(replica, tracker.record(502, "partial"))
            err = UpstreamError(f"the engine stream broke: {type(exc).__name__}")
            yield b"data: " + orjson.dumps(err.body()) + b"\n\n"
        finally:
            resp.close()  # aborts generation on the engine if the client left early
            if not recorded:  # the client went away: meter what it was delivered
                self._finish_nowait(replica, tracker.record(CLIENT_CLOSED, "partial"))

    def _begin(self, replica: Replica, tracker: UsageTracker) -> None:
        replica.in_flight += 1
        self._metrics.in_flight_of(tracker.model).inc()

    async def _finish(self, replica: Replica, record: UsageRecord) -> None:
        self._end(replica, record)
        await self._metering.record(record)

    def _finish_nowait(self, replica: Replica, record: UsageRecord) -> None:
        self._end(replica, record)
        try:
            self._metering.record_nowait(record)
        except (OSError, RuntimeError):
            log.exception("could not journal usage of %s", record.request_id)

    def _end(self, replica: Replica, record: UsageRecord) -> None:
        replica.in_flight -= 1
        replica.served += 1
        self._metrics.in_flight_of(record.model).dec()
        self._metrics.observe(record)


class _StreamRelay:
    """Per-stream rewriting: hides what TokenMill asked the engine for that the client did not."""

    def __init__(self, want_usage: bool, strip_timings: bool, public_model: str | None) -> None:
        self.want_usage = want_usage
        self.strip_timings = strip_timings
        self.public_model = public_model
        self.held_usage: bytes | None = None
        self._timings: dict[str, Any] | None = None
        self._content = False

    def rewrite(self, data: bytes, tracker: UsageTracker) -> bytes | None:
        chunk = orjson.loads(data)
        changed = False
        self._timings = chunk.get("timings")
        if self._timings is not None and self.strip_timings:
            del chunk["timings"]
            changed = True
        if self.public_model is not None and chunk.get("model") != self.public_model:
            chunk["model"] = self.public_model
            changed = True
        usage = chunk.get("usage")
        if usage:
            tracker.take_usage(usage)
        choices = chunk.get("choices")
        if not choices:
            if usage:  # the final usage chunk: sent after the record is durable, if asked for
                self.held_usage = orjson.dumps(chunk) if self.want_usage else None
                return None
        else:
            first = choices[0]
            delta = first.get("delta") or {}
            self._content = bool(
                delta.get("content") or delta.get("tool_calls") or first.get("text")
            )
            if first.get("finish_reason"):
                tracker.finish_reason = first["finish_reason"]
            if self._content:
                tracker.mark_first_token()
        return b"data: " + (orjson.dumps(chunk) if changed else data) + b"\n\n"

    def delivered(self, tracker: UsageTracker) -> None:
        if self._timings is not None:
            tracker.take_timings(self._timings)
        if self._content:
            tracker.chunks_delivered += 1


_JSON = {"Content-Type": "application/json"}


def _upstream_failure(status: int, raw: bytes) -> TokenMillError:
    message = _upstream_message(raw)
    if 400 <= status < 500:
        err = TokenMillError(message, code="upstream_rejected")
        err.status = 429 if status == 429 else 400
        err.type = "invalid_request_error"
        return err
    return UpstreamError(f"the engine failed ({status}): {message}")


def _upstream_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    except orjson.JSONDecodeError:
        pass
    return raw[:200].decode(errors="replace") or "no details"
