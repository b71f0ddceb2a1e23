"""Load generation for the benchmarks: wrk for saturation (a C client, so the client is not the
bottleneck on 2 cores), aiohttp for open-loop latency and for token-level measurements."""

import asyncio
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson


def wrk_rps(url: str, body: dict[str, object], key: str, connections: int, seconds: int) -> float:
    """Saturation requests/s from wrk; fails loudly if any response was not 2xx."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for saturation runs: apt-get install -y wrk")
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = [[{orjson.dumps(body).decode()}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    finally:
        Path(f.name).unlink()
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


@dataclass
class Latencies:
    samples_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def pct(self, p: float) -> float:
        s = sorted(self.samples_ms)
        return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


async def open_loop(
    urls: list[str], body: dict[str, object], key: str, rate: float, seconds: float, seed: int = 7
) -> list[Latencies]:
    """Poisson arrivals at `rate`/s for `seconds`, taking turns over `urls` (interleaved, so
    each target sees the same machine noise); one latency list per url."""
    rng = random.Random(seed)
    results = [Latencies() for _ in urls]
    payload = orjson.dumps(body)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str, result: Latencies) -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=payload, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                result.samples_ms.append((time.perf_counter() - t0) * 1e3)
            else:
                result.errors += 1

        tasks = []
        start = time.perf_counter()
        next_at = start
        turn = 0
        while next_at - start < seconds:
            next_at += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            i = turn % len(urls)
            tasks.append(asyncio.ensure_future(one(urls[i], results[i])))
            turn += 1
        await asyncio.gather(*tasks)
    return results


@dataclass
class StreamStats:
    requests: int = 0
    completion_tokens: int = 0
    chunks: int = 0
    seconds: float = 0.0
    ttft_ms: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


async def closed_loop_streams(
    url: str, bodies: list[dict[str, object]], key: str, concurrency: int
) -> StreamStats:
    """Stream every body (with usage) at a fixed concurrency; count tokens from usage."""
    stats = StreamStats()
    queue = list(reversed(bodies))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    # llama-server closes a connection after a streamed answer despite its Keep-Alive header;
    # a fresh connection per stream (both sides alike) avoids racing that close.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                body = {**queue.pop(), "stream": True, "stream_options": {"include_usage": True}}
                t0 = time.perf_counter()
                first = None
                async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
                    resp.raise_for_status()
                    async for line in resp.content:
                        if not line.startswith(b"data: {"):
                            continue
                        chunk = orjson.loads(line[6:])
                        if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                            stats.chunks += 1
                            first = first or time.perf_counter()
                        if chunk.get("usage"):
                            stats.completion_tokens += chunk["usage"]["completion_tokens"]
                stats.requests += 1
                if first is not None:
                    stats.ttft_ms.append((first - t0) * 1e3)

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        stats.seconds = time.perf_counter() - t
    return stats
