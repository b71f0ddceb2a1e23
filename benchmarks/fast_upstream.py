"""A deliberately cheap OpenAI-compatible upstream, to isolate the gateway's own cost.

Not a test fake: benchmarks send the same load straight to it and through the gateway, and the
difference is what the gateway costs. Raw asyncio + httptools, HTTP/1.1 keep-alive, chunked SSE.

    python benchmarks/fast_upstream.py --port 9001 --chunks 16
"""

import argparse
import asyncio
import time
from typing import ClassVar, cast

import httptools
import orjson
import uvloop


def _completion(model: str) -> bytes:
    return orjson.dumps({
        "id": "cmpl-bench", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "hello " * 8}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    })  # fmt: skip


def _chunk(model: str, content: str | None, finish: str | None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return orjson.dumps({
        "id": "cmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })  # fmt: skip


def _stream(model: str, chunks: int, include_usage: bool) -> bytes:
    events = [_chunk(model, "tok ", None) for _ in range(chunks)]
    events.append(_chunk(model, None, "stop"))
    if include_usage:
        usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
        events.append(orjson.dumps({"id": "cmpl-bench", "object": "chat.completion.chunk",
                                    "created": 0, "model": model, "choices": [],
                                    "usage": usage}))  # fmt: skip
    body = b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    return body


def _http(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip


class Upstream(asyncio.Protocol):
    chunks = 16
    _cache: ClassVar[dict[tuple[str, bool, bool], bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_method() == b"GET":
            self.transport.write(_http(b"200 OK", b"application/json", b'{"data":[]}'))
            return
        req = orjson.loads(b"".join(self.body) or b"{}")
        stream = bool(req.get("stream"))
        usage = bool((req.get("stream_options") or {}).get("include_usage"))
        key = (str(req.get("model", "m")), stream, usage)
        resp = self._cache.get(key)
        if resp is None:  # responses are pure functions of the key: build each once
            if stream:
                resp = _http(b"200 OK", b"text/event-stream", _stream(key[0], self.chunks, usage))
            else:
                resp = _http(b"200 OK", b"application/json", _completion(key[0]))
            self._cache[key] = resp
        self.transport.write(resp)


async def serve(port: int, chunks: int) -> None:
    Upstream.chunks = chunks
    server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--chunks", type=int, default=16, help="content chunks per streamed answer")
    args = ap.parse_args()
    uvloop.run(serve(args.port, args.chunks))


if __name__ == "__main__":
    main()
