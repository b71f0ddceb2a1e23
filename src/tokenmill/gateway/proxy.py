"""The inference hot path: pick a replica, relay the request, meter the answer exactly once.

Framework-free: it returns bytes or an async iterator of SSE bytes; `api/` wraps them in HTTP.
A response's last bytes leave only after its usage record is durable in the journal.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tokenmill.core.errors import (
    ClientClosed,
    InvalidRequest,
    NotFound,
    RateLimited,
    TokenMillError,
    Unavailable,
    UpstreamError,
)
from tokenmill.core.usage import Outcome, UsageRecord
from tokenmill.gateway import choices
from tokenmill.gateway.choice_streams import ChoiceStreams
from tokenmill.gateway.content_check import check_content
from tokenmill.gateway.content_guard import ContentGuard
from tokenmill.gateway.jobs import CHARS_PER_TOKEN, job_for, output_limit, prompt_bytes
from tokenmill.gateway.logprobs import CompletionLogprobs
from tokenmill.gateway.sse import sse_events
from tokenmill.gateway.stream_relay import StreamRelay
from tokenmill.gateway.tool_emulation import ToolEmulation, prompt_bytes_change
from tokenmill.gateway.tracker import UsageTracker
from tokenmill.metering.journal import NotJournaled
from tokenmill.metering.service import Metering
from tokenmill.observe.genai_spans import GenAiSpans
from tokenmill.observe.metrics import GatewayMetrics
from tokenmill.observe.tracing import TraceContext
from tokenmill.runtime.directory import ReplicaDirectory, ServedModel
from tokenmill.runtime.replica import Replica, ReplicaState
from tokenmill.scheduling.core import Rejected
from tokenmill.scheduling.dispatcher import Abandoned, Dispatcher
from tokenmill.scheduling.job import Band, Job
from tokenmill.scheduling.prefix import BLOCK_CHARS
from tokenmill.scheduling.router import ReplicaSlot
from tokenmill.security.keys import Principal
from tokenmill.security.pii import PiiMode
from tokenmill.security.policy import Admission, Ask, RequestPolicy, ToolCallFilter

log = logging.getLogger(__name__)

PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
CLIENT_CLOSED = 499  # nginx's convention for "the client went away first"
TOKENS_PER_BLOCK = BLOCK_CHARS // CHARS_PER_TOKEN


@dataclass(frozen=True)
class ProxyResult:
    status: int
    body: bytes


class _Settlement:
    """One admission shared by a request's choices: settled once, with what they all spent,
    when the last of them is done."""

    def __init__(self, policy: RequestPolicy, admission: Admission, parts: int) -> None:
        self._policy = policy
        self.admission = admission
        self._left = parts
        self._spent = [0, 0, 0]  # prompt, cached, completion

    def shares(self) -> list["_Share"]:
        return [_Share(self) for _ in range(self._left)]

    def add(self, prompt: int, cached: int, completion: int) -> None:
        for i, n in enumerate((prompt, cached, completion)):
            self._spent[i] += n
        self._left -= 1
        if self._left == 0:
            self._policy.settle(self.admission, *self._spent)


class _Share:
    """One choice's part of a settlement; settles once, whatever happened to it."""

    def __init__(self, settlement: _Settlement) -> None:
        self._settlement = settlement
        self.admission = settlement.admission
        self._done = False

    def settle(self, prompt: int, cached: int, completion: int) -> None:
        if not self._done:
            self._done = True
            self._settlement.add(prompt, cached, completion)


@dataclass
class _Call:
    """One request on its way through a replica."""

    replica: Replica
    job: Job
    tracker: UsageTracker
    url: str
    share: _Share

    @property
    def admission(self) -> Admission:
        return self.share.admission


@dataclass
class _Stream:
    """An engine stream whose response has begun, not yet relayed."""

    call: _Call
    resp: aiohttp.ClientResponse
    relay: StreamRelay


class InferenceProxy:
    def __init__(
        self,
        deployments: ReplicaDirectory,
        dispatcher: Dispatcher,
        metering: Metering,
        metrics: GatewayMetrics,
        http: aiohttp.ClientSession,
        queue_wait_s: Mapping[Band, float],
        policy: RequestPolicy,
        content: ContentGuard,
        refuse_unbilled: bool = False,
        spans: GenAiSpans | None = None,
    ) -> None:
        self._refuse_unbilled = refuse_unbilled  # finance: never serve what cannot be billed
        self._spans = spans  # OpenTelemetry export; None (the default): off, nothing built
        self._policy = policy
        self._guard = content
        self._deployments = deployments
        self._dispatcher = dispatcher
        self._metering = metering
        self._metrics = metrics
        self._http = http
        self._wait_s = queue_wait_s
        deployments.subscribe(self._sync_replicas)

    def _sync_replicas(self, model: str, replicas: list[Replica]) -> None:
        slots = [
            ReplicaSlot(
                r.id,
                capacity=r.adapter.parallel(r.spec),
                cache_blocks=max(1, r.adapter.cache_tokens(r.spec) // TOKENS_PER_BLOCK),
                healthy=r.state is ReplicaState.READY and not r.draining,
            )
            for r in replicas
        ]
        self._dispatcher.update_replicas(model, slots)

    async def handle(
        self,
        principal: Principal,
        request_id: str,
        endpoint: str,
        body: dict[str, Any],
        client_gone: Callable[[], Awaitable[None]] | None = None,
        trace: TraceContext | None = None,
    ) -> ProxyResult | AsyncIterator[bytes]:
        model = body["model"]
        await self._policy.check(principal, body, request_id)
        runtime = self._deployments.get(model)
        if runtime is None:
            raise NotFound(
                f"The model '{model}' does not exist", param="model", code="model_not_found"
            )
        if runtime.failure() is not None:  # don't queue for a replica that will not come
            raise _down(runtime)
        if self._refuse_unbilled and not self._metering.writable:
            raise _unbillable(self._metering)
        capabilities = runtime.capabilities()
        if endpoint == "embeddings" and not capabilities.embeddings:
            raise _not_served(model, endpoint)
        check_content(model, endpoint, body, capabilities)
        size = prompt_bytes(endpoint, body)
        pii = await self._guard.check_prompt(principal.tenant, endpoint, body, size)  # may mask
        parts = choices.split(endpoint, body)
        size = sum(prompt_bytes(endpoint, part) for part in parts)
        if endpoint == "chat" and not capabilities.tool_calls:
            size += prompt_bytes_change(body) * len(parts)  # what the emulation writes in
        ids = [request_id] if len(parts) == 1 else [f"{request_id}.{i}" for i in range(len(parts))]
        jobs = [
            job_for(rid, principal.tenant, endpoint, part, self._wait_s)
            for rid, part in zip(ids, parts, strict=True)
        ]
        estimate = sum(job.input_tokens for job in jobs)
        ask = Ask(request_id, model, estimate, size, output_limit(endpoint, body), len(parts))
        try:
            admission = await self._policy.admit(principal, ask)
        except RateLimited:
            self._metrics.refused.labels(model, principal.tenant, 429).inc()
            raise
        shares = _Settlement(self._policy, admission, len(parts)).shares()
        try:
            if len(parts) == 1:
                answer = await self._handle(
                    runtime, jobs[0], shares[0], endpoint, body, client_gone, trace, pii
                )
                return self._stream(answer) if isinstance(answer, _Stream) else answer
            return await self._handle_choices(
                runtime, jobs, shares, endpoint, parts, client_gone, trace, pii
            )
        except BaseException:
            for share in shares:  # what never reached an engine spent nothing
                share.settle(0, 0, 0)
            raise

    async def _handle_choices(
        self,
        runtime: ServedModel,
        jobs: list[Job],
        shares: list["_Share"],
        endpoint: str,
        parts: list[dict[str, Any]],
        client_gone: Callable[[], Awaitable[None]] | None,
        trace: TraceContext | None,
        pii: PiiMode,
    ) -> ProxyResult | AsyncIterator[bytes]:
        """Each choice its own engine request, all at once; one merged answer."""
        starts = [  # each choice its own span, beside the others
            self._handle(runtime, job, share, endpoint, part, client_gone,
                         trace.sibling() if trace else None, pii)
            for job, share, part in zip(jobs, shares, parts, strict=True)
        ]  # fmt: skip
        if parts[0].get("stream"):
            streams = ChoiceStreams(
                [asyncio.create_task(_begun(start)) for start in starts],
                self._stream,
                self._discard,
            )
            return await streams.begin()
        answers = await asyncio.gather(*starts, return_exceptions=True)
        failure = next((a for a in answers if isinstance(a, BaseException)), None)
        if failure is not None:  # the choices that ran are metered; the client gets the error
            raise failure
        bodies = [orjson.loads(a.body) for a in answers if isinstance(a, ProxyResult)]
        return ProxyResult(200, orjson.dumps(choices.merge(bodies)))

    async def _handle(
        self,
        runtime: ServedModel,
        job: Job,
        share: "_Share",
        endpoint: str,
        body: dict[str, Any],
        client_gone: Callable[[], Awaitable[None]] | None,
        trace: TraceContext | None,
        pii: PiiMode,
    ) -> "ProxyResult | _Stream":
        admission = share.admission
        principal, model = admission.principal, job.model
        tools = ToolCallFilter(principal.tools) if principal.tools is not None else None
        stream = bool(body.get("stream"))
        payload = {**body, "model": runtime.upstream_model}
        payload.pop("service_tier", None)  # ours: the engine has no tiers
        if admission.max_tokens_cap is not None:
            payload["max_tokens"] = admission.max_tokens_cap
        emulation = None
        if endpoint == "chat" and not runtime.capabilities().tool_calls:
            emulation = ToolEmulation.plan(payload)
        relay: StreamRelay | None = None
        if stream:
            runtime.adapter.prepare_stream(payload)
            relay = StreamRelay(
                want_usage=bool((body.get("stream_options") or {}).get("include_usage")),
                strip_timings="timings_per_token" not in body and "timings_per_token" in payload,
                public_model=model if payload["model"] != model else None,
                tools=tools,
                pii=self._guard.stream(principal.tenant, pii),
                logprobs=CompletionLogprobs() if endpoint == "completions" else None,
                emulation=emulation,
            )
        tracker = UsageTracker(  # from arrival: queueing counts in TTFT and duration
            request_id=job.id,
            tenant=principal.tenant,
            key_id=principal.key_id,
            model=model,
            deployment=runtime.name,
            replica="",  # known once placed
            endpoint=endpoint,
            stream=stream,
            agent=principal.agent,
            owner=principal.owner,
            trace=trace,
        )
        headers = {**_JSON, "traceparent": trace.traceparent} if trace else _JSON
        call, resp = await self._send(
            runtime, tracker, job, share, orjson.dumps(payload), headers, client_gone
        )
        if resp.status != 200:
            try:
                async with resp:
                    raw = await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                raw = b""
            await self._finish(call, resp.status, "error")
            raise _upstream_failure(resp.status, raw)
        if relay is not None:
            return _Stream(call, resp, relay)
        return await self._complete(call, resp, tools, pii, emulation)

    async def _send(
        self,
        runtime: ServedModel,
        tracker: UsageTracker,
        job: Job,
        share: "_Share",
        data: bytes,
        headers: Mapping[str, str],
        client_gone: Callable[[], Awaitable[None]] | None,
    ) -> tuple[_Call, aiohttp.ClientResponse]:
        """Place the job and send it. A replica that gives no answer at all (refused, reset,
        closed before any response) costs nothing, and the request is tried once more,
        elsewhere if there is an elsewhere: the client has not seen a byte yet."""
        for attempt in (1, 2):
            replica = await self._acquire(runtime, tracker.tenant, job, client_gone, attempt > 1)
            tracker.replica = replica.id
            tracker.mark_dispatched()
            url = replica.base_url + PATHS[tracker.endpoint]
            call = _Call(replica, job, tracker, url, share)
            self._begin(call)
            try:
                sent = {**headers, **replica.auth_headers()}
                return call, await self._http.post(
                    call.url, data=data, headers=sent, ssl=replica.ssl
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "replica %s gave no answer to %s (attempt %d): %r",
                    replica.id,
                    job.id,
                    attempt,
                    exc,
                )
                if attempt == 2:
                    await self._finish(call, 503, "error")
                    raise _unreachable(call, exc) from None
                self._abort(call)
                job.avoid = frozenset({replica.id})
            except asyncio.CancelledError:  # our caller gave up: slot and record still count
                self._finish_nowait(call, CLIENT_CLOSED, "partial")
                raise
        raise AssertionError("unreachable")

    async def _acquire(
        self,
        runtime: ServedModel,
        tenant: str,
        job: Job,
        client_gone: Callable[[], Awaitable[None]] | None,
        readmit: bool,
    ) -> Replica:
        try:
            choice = await self._dispatcher.acquire(job, client_gone, readmit)
        except Abandoned:
            raise ClientClosed("the client left while its request was queued") from None
        except Rejected as exc:
            down = not runtime.ready()  # not busy but down: say so, not "slow down"
            self._metrics.refused.labels(job.model, tenant, 503 if down else 429).inc()
            if down:
                raise _down(runtime) from None
            raise RateLimited(exc.reason, retry_after_s=exc.retry_after_s) from None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("route %s: %s", job.id, choice.explain())
        return runtime.replica(choice.replica.id)

    async def _complete(
        self,
        call: _Call,
        resp: aiohttp.ClientResponse,
        tools: ToolCallFilter | None,
        pii: PiiMode,
        emulation: ToolEmulation | None = None,
    ) -> ProxyResult:
        tracker = call.tracker
        try:
            async with resp:
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._finish(call, 502, "error")
            raise UpstreamError(f"the engine's answer broke off: {type(exc).__name__}") from None
        except asyncio.CancelledError:
            self._finish_nowait(call, CLIENT_CLOSED, "partial")
            raise
        data = orjson.loads(raw)
        if tracker.endpoint == "completions":  # llama.cpp answers these in the chat shape
            CompletionLogprobs().convert(data)
        tracker.take_usage(data.get("usage"))
        tracker.mark_first_token((data.get("timings") or {}).get("predicted_ms"))
        await self._guard.check_answer(tracker.tenant, pii, data)
        choices = data.get("choices") or [{}]
        if tracker.endpoint == "chat":
            _openai_nulls(choices)
        if emulation is not None:
            emulation.message(choices[0])
        if tools is not None:
            for choice in choices:
                tools.message(choice.get("message") or {})
                choice["finish_reason"] = tools.finish_reason(choice.get("finish_reason"))
            await self._report_blocked(call, tools)
        tracker.finish_reason = choices[0].get("finish_reason")
        data["model"] = tracker.model
        await self._finish(call, 200, "ok")
        return ProxyResult(200, orjson.dumps(data))

    async def _report_blocked(self, call: _Call, tools: ToolCallFilter) -> None:
        """Audit every tool call withheld from the client since the last report."""
        while tools.blocked:
            tool = tools.blocked.pop(0)
            await self._policy.tool_call_blocked(call.admission.principal, tool, call.job.id)

    async def _relay(
        self, call: _Call, resp: aiohttp.ClientResponse, relay: "StreamRelay"
    ) -> AsyncGenerator[bytes, None]:
        tracker = call.tracker
        recorded = False
        first = True
        try:
            ended = False
            async for line in sse_events(resp.content):
                data = line[5:].strip()
                if data == b"[DONE]":
                    ended = True
                    break
                out = relay.rewrite(data, tracker)
                if relay.tools is not None and relay.tools.blocked:
                    await self._report_blocked(call, relay.tools)
                if first and tracker.first_token_at is not None:
                    first = False
                    self._dispatcher.first_token(call.job)  # how long prefills take
                if out is not None:
                    yield out
                    relay.delivered(tracker)  # the yield returned: the client took it
                    self._dispatcher.core.on_output(call.job, tracker.chunks_delivered)
            if not ended:
                raise aiohttp.ClientPayloadError("stream ended without [DONE]")
            recorded = True
            try:
                await self._finish(call, 200, "ok")
            except Unavailable as exc:  # finance: a stream without its record does not end
                yield b"data: " + orjson.dumps(exc.body()) + b"\n\n"
                return
            if relay.held_usage is not None:
                yield b"data: " + relay.held_usage + b"\n\n"
            yield b"data: [DONE]\n\n"
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not recorded:
                recorded = True
                await self._finish(call, 502, "partial")
            err = UpstreamError(f"the engine stream broke: {type(exc).__name__}")
            yield b"data: " + orjson.dumps(err.body()) + b"\n\n"
        finally:
            resp.close()  # aborts generation on the engine if the client left early
            if relay.pii is not None:
                relay.pii.close()
            if not recorded:  # the client went away: meter what it was delivered
                self._finish_nowait(call, CLIENT_CLOSED, "partial")

    def _stream(self, stream: _Stream) -> AsyncGenerator[bytes, None]:
        return self._relay(stream.call, stream.resp, stream.relay)

    def _discard(self, stream: _Stream) -> None:
        """A stream no client will read: stop the engine, meter what it did."""
        stream.resp.close()
        if stream.relay.pii is not None:
            stream.relay.pii.close()
        self._finish_nowait(stream.call, CLIENT_CLOSED, "partial")

    def _begin(self, call: _Call) -> None:
        self._metrics.in_flight_of(call.tracker.model).inc()

    async def _finish(self, call: _Call, status: int, outcome: Outcome) -> None:
        """Meter the request. The journal holds a record the disk refused and writes it when
        it can; the finance profile then withholds the answer (503) rather than serve it
        before its record is durable; the others serve it, and the journal alerts."""
        record = self._end(call, status, outcome)
        try:
            await self._metering.record(record)
        except NotJournaled:
            if self._refuse_unbilled:
                raise _unbillable(self._metering) from None

    def _finish_nowait(self, call: _Call, status: int, outcome: Outcome) -> None:
        record = self._end(call, status, outcome)
        try:
            self._metering.record_nowait(record)
        except NotJournaled:
            pass  # held and retried; the journal has said so
        except RuntimeError:
            log.exception("could not journal usage of %s", record.request_id)

    def _abort(self, call: _Call) -> None:
        """An attempt that reached no engine: the replica is marked down, then its slot goes
        back; nothing is metered."""
        self._dispatcher.fail(call.job, call.replica.id)
        self._metrics.in_flight_of(call.job.model).dec()

    def _end(self, call: _Call, status: int, outcome: Outcome) -> UsageRecord:
        record = call.tracker.record(status, outcome)
        core = self._dispatcher.core
        if record.usage_source != "none":  # the tenant pays fairness for what the engine did
            core.on_prompt_counted(call.job, record.prompt_tokens, record.cached_tokens)
            core.on_output(call.job, record.completion_tokens)
        self._dispatcher.release(call.job)
        call.share.settle(record.prompt_tokens, record.cached_tokens, record.completion_tokens)
        call.replica.served += 1
        self._metrics.in_flight_of(record.model).dec()
        self._metrics.observe(record, decode_timed=call.tracker.decode_timed)
        if self._spans is not None and call.tracker.trace is not None:
            replica = call.replica
            upstream = replica.adapter.upstream_model(replica.spec)
            self._spans.finished(record, call.tracker.trace, replica.adapter.name, upstream)
        return record


_JSON = {"Content-Type": "application/json"}


def _openai_nulls(choices: list[dict[str, Any]]) -> None:
    """Fields OpenAI's schema requires, present as null when empty: strict clients check."""
    for choice in choices:
        choice.setdefault("logprobs", None)
        message = choice.get("message")
        if isinstance(message, dict):
            message.setdefault("refusal", None)


def _down(runtime: ServedModel) -> Unavailable:
    failure = runtime.failure()
    if failure is not None:  # it will not come back by itself: say why, not "try again"
        return Unavailable(f"'{runtime.name}' failed to start and is down: {failure}")
    return Unavailable(f"no replica of '{runtime.name}' is ready; try again shortly")


async def _begun(start: Awaitable["ProxyResult | _Stream"]) -> _Stream:
    answer = await start
    assert isinstance(answer, _Stream)  # a streamed request's answer is a stream
    return answer


def _unbillable(metering: Metering) -> Unavailable:
    return Unavailable(
        f"usage cannot be recorded durably ({metering.health().journal_error}); the finance "
        "profile serves nothing it cannot bill: retry when the disk has room",
        code="metering_unavailable",
    )


def _not_served(model: str, endpoint: str) -> InvalidRequest:
    return InvalidRequest(
        f"The model '{model}' does not serve {endpoint}: its deployment was not started for "
        'them (llama.cpp deployments: options {"embeddings": true})',
        param="model",
        code="model_not_supported",
    )


def _unreachable(call: _Call, exc: BaseException) -> Unavailable:
    return Unavailable(f"replica {call.replica.id} did not answer: {type(exc).__name__}")


def _upstream_failure(status: int, raw: bytes) -> TokenMillError:
    message = _upstream_message(raw)
    if 400 <= status < 500:
        # OpenAI's code for it, which clients (LangChain, agent frameworks) act on.
        code = "context_length_exceeded" if "context size" in message else "upstream_rejected"
        err = TokenMillError(message, code=code)
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
