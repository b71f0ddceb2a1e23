"""The HTTP server as the gateway runs it (uvicorn, httptools), with the two connection
deadlines uvicorn lacks, so that idle or slow connections cannot pile up:

- idle: a connection with no request in progress is closed after `http_idle_timeout_s`. uvicorn
  applies its keep-alive timeout only after a response; a connection that never sends a first
  request, or that sent the rest of a body after its response, stayed open forever.
- headers: a request's line and headers must all arrive within `http_header_timeout_s` of their
  first byte (else `408` and close), and within MAX_HEAD_BYTES (else `431` and close): one
  byte a second (slowloris) held a connection forever.
"""

import asyncio
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from tokenmill.config import Settings

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; ours need a few hundred bytes
_CLOSING = b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TIMEOUT = b"HTTP/1.1 408 Request Timeout" + _CLOSING
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large" + _CLOSING


class TimedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0  # set per server by `protocol_with`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # of the head being read

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_idle()  # a connection that sends nothing is idle from its first moment

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_deadline()  # bytes after a finished exchange begin the next head
        super().data_received(data)
        if self._head_deadline is not None:  # the head is still incomplete: all of this was it
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._unset_keepalive_if_required()  # a request has begun: not idle
        if self._head_deadline is None:  # a request pipelined behind one in progress
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_head_deadline()
        if self.cycle is not None and self.cycle.response_complete and not self.pipeline:
            self._arm_idle()  # the rest of a body the app had already answered: idle again

    def _arm_idle(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def _arm_head_deadline(self) -> None:
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        self._refuse(_TIMEOUT)

    def _refuse(self, response: bytes) -> None:
        self._cancel_head_deadline()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # never inside a response
            self.transport.write(response)
        self.transport.close()


def protocol_with(header_timeout_s: float) -> type[asyncio.Protocol]:
    class Protocol(TimedHttpToolsProtocol):
        pass

    Protocol.header_timeout_s = header_timeout_s
    return Protocol


def server_config(asgi: "ASGIApp", settings: "Settings") -> uvicorn.Config:
    return uvicorn.Config(
        asgi,
        host=settings.host,
        port=settings.port,
        loop="none",
        http=protocol_with(settings.http_header_timeout_s),
        timeout_keep_alive=settings.http_idle_timeout_s,
        log_level="warning",
        access_log=False,  # usage records are the access log; never log keys or bodies
        proxy_headers=False,  # don't trust X-Forwarded-* from whoever connects
        server_header=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
    )
