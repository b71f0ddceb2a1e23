"""Sends a workload to an OpenAI-compatible endpoint and times every answer.

Every request streams (with `stream_options.include_usage`), so time to first token and the
gaps between tokens are seen as a client sees them; token counts come from the final `usage`.
"""

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson

from tokenmill.bench.workload import BenchRequest
from tokenmill.gateway.sse import sse_events


@dataclass
class Outcome:
    tenant: str
    sent_s: float  # since the run started
    status: int | None = None  # None: no HTTP answer at all
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float = 0.0
    gaps_s: list[float] = field(default_factory=list)  # between content chunks
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


async def run(
    base_url: str,
    keys: Mapping[str, str],
    model: str,
    requests: Sequence[BenchRequest],
    concurrency: int | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    timeout_s: float = 600.0,
) -> tuple[list[Outcome], float]:
    """Open loop (each request at its `at`) or, with `concurrency`, closed loop (that many in
    flight, ignoring `at`). Returns the outcomes and the run's wall time."""
    url = base_url.rstrip("/") + "/chat/completions"
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=timeout_s)
    )
    outcomes: list[Outcome] = []
    start = time.perf_counter()

    async def one(req: BenchRequest) -> None:
        key = keys.get(req.tenant) or keys["*"]
        outcome = await _send(session, url, key, model, req, start)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)

    async with session:
        if concurrency is None:
            tasks = []
            for req in requests:
                await asyncio.sleep(max(0.0, start + req.at - time.perf_counter()))
                tasks.append(asyncio.create_task(one(req)))
            await asyncio.gather(*tasks)
        else:
            queue = iter(requests)

            async def worker() -> None:
                for req in queue:  # shared iterator: each request is taken once
                    await one(req)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - start


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    model: str,
    req: BenchRequest,
    start: float,
) -> Outcome:
    body = {"model": model, "messages": list(req.messages), "max_tokens": req.max_tokens,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    if req.service_tier is not None:
        body["service_tier"] = req.service_tier
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    sent = time.perf_counter()
    out = Outcome(req.tenant, sent - start)
    try:
        try:
            await _attempt(session, url, orjson.dumps(body), headers, out, sent)
        except aiohttp.ClientConnectionError:
            if out.status is not None:
                raise
            # Nothing came back: a pooled connection the server had closed (llama-server
            # answers a stream with Keep-Alive, then closes). Sending once more is safe.
            await _attempt(session, url, orjson.dumps(body), headers, out, sent)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        out.error = type(exc).__name__
    out.e2e_s = time.perf_counter() - sent
    return out


async def _attempt(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    out: Outcome,
    sent: float,
) -> None:
    last: float | None = None
    async with session.post(url, data=body, headers=headers) as resp:
        out.status = resp.status
        if resp.status != 200:
            out.error = (await resp.text())[:200]
            return  # how fast a refusal came matters too: e2e_s is set by the caller
        async for line in sse_events(resp.content):
            data = line[5:].strip()
            if not data.startswith(b"{"):
                continue  # [DONE]
            chunk = orjson.loads(data)
            if chunk.get("error"):
                out.error = str(chunk["error"].get("message"))
            usage = chunk.get("usage")
            if usage:
                out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                out.completion_tokens = int(usage.get("completion_tokens") or 0)
            choices = chunk.get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                now = time.perf_counter()
                if last is None:
                    out.ttft_s = now - sent
                else:
                    out.gaps_s.append(now - last)
                last = now
