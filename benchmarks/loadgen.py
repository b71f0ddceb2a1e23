"""Load generation for the benchmarks, as a module and a CLI.

Two clients. aiohttp (one shared ClientSession, no connection limit, on uvloop) measures what a
client sees: latency percentiles, TTFT, chunks and completion tokens read from `usage` (streams
ask for `stream_options.include_usage` and read the final usage chunk). wrk (Debian package
`wrk`, a C client) measures saturation throughput, since on 2 cores a Python client can be the
bottleneck; it sees status codes and latency but not bodies, so no tokens or chunks.

    python benchmarks/loadgen.py --url http://127.0.0.1:9001 --mode closed -c 32 -d 10
    python benchmarks/loadgen.py --url http://127.0.0.1:9001 --stream --mode open --rate 200
    python benchmarks/loadgen.py --url http://127.0.0.1:9001 --client wrk -c 32 -d 10

Only loopback URLs are accepted.
"""

import argparse
import asyncio
import json
import math
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import uvloop

CHAT_PATH = "/v1/chat/completions"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PCTS = (50.0, 90.0, 99.0)


@dataclass
class LoadResult:
    """What one run against one URL measured. Percentiles come from the samples (aiohttp) or
    from wrk's own histogram."""

    url: str
    client: str
    mode: str
    stream: bool
    seconds: float = 0.0
    requests: int = 0  # successful (2xx, fully read) requests
    errors: int = 0
    chunks: int = 0  # SSE data events other than [DONE]
    completion_tokens: int = 0  # from usage
    samples_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)  # "status 429", "ClientPayloadError"
    wrk_pcts_ms: dict[float, float] | None = None

    def record(self, sample: "Sample") -> None:
        if sample.error is not None:
            self.errors += 1
            self.error_kinds[sample.error] = self.error_kinds.get(sample.error, 0) + 1
            return
        self.requests += 1
        self.samples_ms.append(sample.latency_ms)
        if sample.ttft_ms is not None:
            self.ttft_ms.append(sample.ttft_ms)
        self.chunks += sample.chunks
        self.completion_tokens += sample.completion_tokens

    def pct(self, p: float) -> float:
        if self.wrk_pcts_ms is not None:
            return self.wrk_pcts_ms.get(p, math.nan)
        return _pct(self.samples_ms, p)

    def _rate(self, n: int) -> float:
        return n / self.seconds if self.seconds else 0.0

    @property
    def rps(self) -> float:
        return self._rate(self.requests)

    @property
    def chunks_per_s(self) -> float:
        return self._rate(self.chunks)

    @property
    def tokens_per_s(self) -> float:
        return self._rate(self.completion_tokens)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "url": self.url, "client": self.client, "mode": self.mode, "stream": self.stream,
            "seconds": round(self.seconds, 3), "requests": self.requests, "errors": self.errors,
            "rps": round(self.rps, 1),
            **{f"p{p:g}_ms": round(self.pct(p), 3) for p in PCTS},
        }  # fmt: skip
        if self.client != "wrk":
            out |= {"chunks_per_s": round(self.chunks_per_s, 1),
                    "tokens_per_s": round(self.tokens_per_s, 1)}  # fmt: skip
        if self.error_kinds:
            out["error_kinds"] = self.error_kinds
        if self.ttft_ms:
            out |= {f"ttft_p{p:g}_ms": round(_pct(self.ttft_ms, p), 3) for p in PCTS}
        return out


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else math.nan


@dataclass(slots=True)
class Sample:
    error: str | None  # None: a 2xx answer, read to the end
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    chunks: int = 0
    completion_tokens: int = 0


def _check_loopback(url: str) -> str:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"benchmarks only send traffic to loopback, not {host!r}")
    return url


def chat_body(model: str, stream: bool, max_tokens: int = 16) -> dict[str, Any]:
    """A small chat request; streamed ones ask for the final usage chunk."""
    body: dict[str, Any] = {
        "model": model, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Say hello."}],
    }  # fmt: skip
    return with_stream_usage(body) if stream else body


def with_stream_usage(body: dict[str, Any]) -> dict[str, Any]:
    """`body` as a stream that ends with a usage chunk."""
    return {**body, "stream": True, "stream_options": {"include_usage": True}}


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _usage_tokens(event: bytes) -> int:
    if b'"usage"' not in event:  # cheap test first: only the last chunk carries usage
        return 0
    usage = orjson.loads(event[6:]).get("usage") or {}
    return int(usage.get("completion_tokens") or 0)


async def sse_data_events(blocks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """JSON data events (`data: {...}`, so not [DONE]) from a stream of read blocks: split on
    the blank line between events, which is much cheaper than iterating lines."""
    tail = b""
    async for block in blocks:
        *events, tail = (tail + block).split(b"\n\n")
        for event in events:
            if event.startswith(b"data: {"):
                yield event


async def request_once(
    session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str]
) -> Sample:
    """One POST, read fully. A streamed answer (text/event-stream) is read in blocks and split
    into events; TTFT is the arrival of the first data event."""
    t0 = time.perf_counter()
    ttft: float | None = None
    chunks = tokens = 0
    try:
        async with session.post(url, data=payload, headers=headers) as resp:
            if resp.status != 200:
                await resp.read()
                return Sample(f"status {resp.status}")
            if resp.content_type != "text/event-stream":
                body = await resp.read()
                tokens = int((orjson.loads(body).get("usage") or {}).get("completion_tokens", 0))
            else:
                async for event in sse_data_events(resp.content.iter_any()):
                    if ttft is None:
                        ttft = (time.perf_counter() - t0) * 1e3
                    chunks += 1
                    tokens += _usage_tokens(event)
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as e:
        return Sample(type(e).__name__)
    return Sample(None, (time.perf_counter() - t0) * 1e3, ttft, chunks, tokens)


def _session(force_close: bool = False) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, force_close=force_close)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))


def _is_stream(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


async def closed_loop(
    url: str, bodies: list[dict[str, Any]], key: str, concurrency: int,
    seconds: float | None = None, max_requests: int | None = None, force_close: bool = False,
) -> LoadResult:  # fmt: skip
    """`concurrency` workers, each sending its next request as soon as the last one is done,
    cycling over `bodies`, until `seconds` pass or `max_requests` were sent (at least one of
    the two bounds is required)."""
    if seconds is None and max_requests is None:
        raise ValueError("closed_loop needs seconds or max_requests")
    limit = max_requests if max_requests is not None else 2**62
    payloads = [orjson.dumps(b) for b in bodies]
    result = LoadResult(_check_loopback(url), "aiohttp", "closed", _is_stream(bodies[0]))
    headers = _headers(key)
    sent = 0
    async with _session(force_close) as session:
        t0 = time.perf_counter()
        deadline = t0 + seconds if seconds is not None else math.inf

        async def worker() -> None:
            nonlocal sent
            while sent < limit and time.perf_counter() < deadline:
                payload = payloads[sent % len(payloads)]
                sent += 1
                result.record(await request_once(session, url, payload, headers))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - t0
    return result


def _arrivals(rate: float, seconds: float, limit: int, seed: int) -> Iterator[float]:
    """Poisson arrival offsets (s) within `seconds`, at most `limit` of them."""
    rng = random.Random(seed)
    at = 0.0
    for _ in range(limit):
        at += rng.expovariate(rate)
        if at >= seconds:
            return
        yield at


async def open_loop(
    urls: list[str], body: dict[str, Any], key: str, rate: float, seconds: float,
    seed: int = 7, max_requests: int | None = None,
) -> list[LoadResult]:  # fmt: skip
    """Poisson arrivals at `rate`/s for `seconds` (at most `max_requests`, default twice the
    expected count), taking turns over `urls` so each target sees the same machine noise; one
    result per url. Requests that arrive while others are in flight do not wait for them."""
    limit = max_requests if max_requests is not None else int(rate * seconds * 2) + 10
    payload = orjson.dumps(body)
    headers = _headers(key)
    results = [LoadResult(_check_loopback(u), "aiohttp", "open", _is_stream(body)) for u in urls]
    async with _session() as session:

        async def one(i: int) -> None:
            results[i].record(await request_once(session, urls[i], payload, headers))

        tasks: list[asyncio.Task[None]] = []
        t0 = time.perf_counter()
        for n, at in enumerate(_arrivals(rate, seconds, limit, seed)):
            await asyncio.sleep(max(0.0, t0 + at - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n % len(urls))))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    for r in results:
        r.seconds = elapsed
    return results


async def closed_loop_streams(
    url: str, bodies: list[dict[str, Any]], key: str, concurrency: int
) -> LoadResult:
    """Stream every body once (with usage) at a fixed concurrency; tokens come from usage.
    A fresh connection per stream: llama-server closes a connection after a streamed answer
    despite its Keep-Alive header, and this avoids racing that close (both sides alike)."""
    streamed = [with_stream_usage(b) for b in bodies]
    result = await closed_loop(url, streamed, key, concurrency, max_requests=len(bodies),
                               force_close=True)  # fmt: skip
    if result.errors:
        raise RuntimeError(f"{result.errors} of {len(bodies)} streams failed against {url}: "
                           f"{result.error_kinds}")  # fmt: skip
    return result


_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"seconds":%f,"status_errors":%d,"errors":%d,'
    .. '"p50":%f,"p90":%f,"p99":%f}\\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3))
end
"""


def run_wrk(
    url: str, body: dict[str, Any], key: str, connections: int, seconds: int, threads: int = 1
) -> LoadResult:
    """Closed-loop saturation with wrk: `connections` keep-alive connections for `seconds`."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for saturation runs: apt-get install -y wrk")
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in _headers(key).items())
    script = f'wrk.method = "POST"\nwrk.body = [[{orjson.dumps(body).decode()}]]\n{headers}'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + _WRK_DONE)
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", f.name,
             _check_loopback(url)],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    finally:
        Path(f.name).unlink()
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    return LoadResult(
        url, "wrk", "closed", _is_stream(body), seconds=raw["seconds"],
        requests=raw["requests"] - raw["status_errors"], errors=raw["errors"],
        wrk_pcts_ms={p: raw[f"p{p:g}"] for p in PCTS},
    )  # fmt: skip


def wrk_rps(url: str, body: dict[str, Any], key: str, connections: int, seconds: int) -> float:
    """Saturation requests/s from wrk; fails loudly if any request failed."""
    result = run_wrk(url, body, key, connections, seconds)
    if result.errors:
        raise RuntimeError(f"wrk saw {result.errors} errors against {url}: {result.summary()}")
    return result.rps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:9001")
    ap.add_argument("--path", default=CHAT_PATH)
    ap.add_argument("--key", default="bench")
    ap.add_argument("--model", default="synthetic")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--client", choices=["aiohttp", "wrk"], default="aiohttp")
    ap.add_argument("--mode", choices=["closed", "open"], default="closed")
    ap.add_argument("-c", "--concurrency", type=int, default=32, help="closed loop / wrk")
    ap.add_argument("--rate", type=float, default=100.0, help="open loop arrivals per second")
    ap.add_argument("-d", "--duration", type=float, default=10.0, help="seconds")
    ap.add_argument("--max-requests", type=int, default=None, help="upper bound on requests")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--out", type=Path, default=None, help="write the summary as JSON")
    args = ap.parse_args()
    url = args.url.rstrip("/") + args.path
    body = chat_body(args.model, args.stream)
    if args.client == "wrk":
        result = run_wrk(url, body, args.key, args.concurrency, math.ceil(args.duration),
                         args.threads)  # fmt: skip
    elif args.mode == "closed":
        result = uvloop.run(closed_loop(url, [body], args.key, args.concurrency, args.duration,
                                        args.max_requests))  # fmt: skip
    else:
        [result] = uvloop.run(open_loop([url], body, args.key, args.rate, args.duration,
                                        max_requests=args.max_requests))  # fmt: skip
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
