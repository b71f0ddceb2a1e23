"""A deliberately cheap OpenAI-compatible upstream, to isolate the gateway's own cost.

Not a test fake: benchmarks send the same load straight to it and through the gateway, and the
difference is what the gateway costs. A raw asyncio Protocol on uvloop with httptools parsing,
HTTP/1.1 keep-alive (and pipelining), streams sent as chunked SSE. Every response is a pure
function of (method, path, model, stream, include_usage), so each is built once and cached.

    python benchmarks/synthetic_upstream.py --port 9001 [--chunks 16]

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health.
Listens on 127.0.0.1 only.
"""

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, cast

import httptools
import orjson
import uvloop

from tokenmill.testing import free_port

PROMPT_TOKENS = 12
COMPLETION_TOKENS = 8  # non-streaming answers
MODEL_ID = "synthetic"
CHAT, TEXT = b"/v1/chat/completions", b"/v1/completions"

_STATUS = {200: b"200 OK", 400: b"400 Bad Request", 404: b"404 Not Found"}
_Key = tuple[bytes, bytes, str, bool, bool]


def _usage(completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
    }


def _choice(chat: bool, text: str | None, finish: str | None, stream: bool) -> dict[str, Any]:
    if not chat:
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
    if stream:
        delta = {"content": text} if text is not None else {}
        return {"index": 0, "delta": delta, "finish_reason": finish}
    return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}


def _envelope(chat: bool, stream: bool, model: str, **fields: Any) -> bytes:
    kind = "chat.completion" + (".chunk" if stream else "") if chat else "text_completion"
    head = {"id": "cmpl-synthetic", "object": kind, "created": int(time.time()), "model": model}
    return orjson.dumps({**head, **fields})


def completion_body(chat: bool, model: str) -> bytes:
    choice = _choice(chat, "tok " * COMPLETION_TOKENS, "stop", stream=False)
    return _envelope(chat, False, model, choices=[choice], usage=_usage(COMPLETION_TOKENS))


def stream_events(chat: bool, model: str, chunks: int, include_usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer: `chunks` one-token chunks, a finish chunk, an
    optional usage chunk with empty choices, then [DONE]."""
    payloads = [_envelope(chat, True, model, choices=[_choice(chat, "tok ", None, True)])]
    payloads *= chunks
    payloads.append(_envelope(chat, True, model, choices=[_choice(chat, None, "stop", True)]))
    if include_usage:
        payloads.append(_envelope(chat, True, model, choices=[], usage=_usage(chunks)))
    return [b"data: " + p + b"\n\n" for p in payloads] + [b"data: [DONE]\n\n"]


def _response(status: int, content_type: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + _STATUS[status] + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip


def _chunked_sse(events: list[bytes]) -> bytes:
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    chunks = (b"%x\r\n%b\r\n" % (len(e), e) for e in events)
    return head + b"".join(chunks) + b"0\r\n\r\n"


def _json(status: int, obj: object) -> bytes:
    return _response(status, b"application/json", orjson.dumps(obj))


def build(key: _Key, chunks: int) -> bytes:
    method, path, model, stream, include_usage = key
    if method == b"GET" and path == b"/health":
        return _json(200, {"status": "ok"})
    if method == b"GET" and path == b"/v1/models":
        models = [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "benchmarks"}]
        return _json(200, {"object": "list", "data": models})
    if method != b"POST" or path not in (CHAT, TEXT):
        return _json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
    if stream:
        return _chunked_sse(stream_events(path == CHAT, model, chunks, include_usage))
    return _response(200, b"application/json", completion_body(path == CHAT, model))


BAD_JSON = _json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})


class SyntheticUpstream(asyncio.Protocol):
    chunks: ClassVar[int] = 16
    _cache: ClassVar[dict[_Key, bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.transport.write(self._respond())
        if not self.parser.should_keep_alive():
            self.transport.close()

    def _respond(self) -> bytes:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        model, stream, usage = "", False, False
        if method == b"POST":
            try:
                req = orjson.loads(b"".join(self.body) or b"{}")
            except orjson.JSONDecodeError:
                return BAD_JSON
            if not isinstance(req, dict):
                return BAD_JSON
            model = str(req.get("model", MODEL_ID))
            stream = req.get("stream") is True
            usage = stream and bool((req.get("stream_options") or {}).get("include_usage"))
        key = (method, path, model, stream, usage)
        resp = self._cache.get(key)
        if resp is None:
            resp = build(key, self.chunks)
            if len(self._cache) < 1024:  # bounded: the key holds a client-chosen model name
                self._cache[key] = resp
        return resp


async def serve(port: int, chunks: int) -> None:
    SyntheticUpstream.chunks = chunks
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SyntheticUpstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


@contextmanager
def running(chunks: int = 16, port: int | None = None, wait_s: float = 10.0) -> Iterator[str]:
    """Run the upstream in a subprocess; yields its base URL, stops it on exit."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--port", str(port),
                             "--chunks", str(chunks)])  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("synthetic upstream did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--chunks", type=int, default=16, help="one-token chunks per streamed answer")
    args = ap.parse_args()
    uvloop.run(serve(args.port, args.chunks))


if __name__ == "__main__":
    main()
