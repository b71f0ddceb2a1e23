"""Idle and slow connections are closed: the gateway's uvicorn protocol with its idle and
header deadlines (api/connections.py), served for real on 127.0.0.1 and probed with raw
sockets. uvicorn alone closed neither a connection that never sent a request nor one sending
its headers a byte at a time."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from tokenmill.api.connections import MAX_HEAD_BYTES, server_config
from tokenmill.config import Settings
from tokenmill.core.net import free_port

IDLE_S, HEADER_S = 1, 2


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":  # a request in progress longer than both deadlines
        await asyncio.sleep(IDLE_S + HEADER_S + 0.5)
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    settings = Settings(
        port=free_port(),
        data_dir=Path(tmp_path_factory.mktemp("conn")),
        http_idle_timeout_s=IDLE_S,
        http_header_timeout_s=HEADER_S,
    )
    server = uvicorn.Server(server_config(_app, settings))
    thread = threading.Thread(target=uvloop.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield settings.port
    server.should_exit = True
    thread.join(timeout=15)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)  # longer than any deadline here: a test that waits this long fails
    return sock


def _response(sock: socket.socket) -> bytes:
    got = b""
    while not got.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {got!r}"
        got += chunk
    return got


def _until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when that was."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got, time.monotonic()


def test_a_connection_that_never_sends_a_request_is_closed_when_idle(port: int):
    started = time.monotonic()
    with _connect(port) as sock:
        got, closed = _until_closed(sock)
    assert got == b""
    assert IDLE_S - 0.2 <= closed - started <= IDLE_S + 1.5


def test_a_keep_alive_connection_is_closed_when_idle_after_its_response(port: int):
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = _response(sock)
        answered = time.monotonic()
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok")
        rest, closed = _until_closed(sock)
    assert rest == b""
    assert IDLE_S - 0.2 <= closed - answered <= IDLE_S + 1.5


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_deadline(port: int):
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(0.3)
        got = b""
        for _ in range(40):  # 12 s of a byte every 0.3 s, far past the deadline
            try:
                got = sock.recv(65536)  # until the server answers or closes
                break
            except TimeoutError:
                sock.sendall(b"X")
        sock.settimeout(10)
        rest, closed = _until_closed(sock)
    assert (got + rest).startswith(b"HTTP/1.1 408")
    assert HEADER_S - 0.2 <= closed - started <= HEADER_S + 1.5


def test_slow_headers_that_finish_in_time_are_served(port: int):
    head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with _connect(port) as sock:
        for i in range(0, len(head), 8):  # ~1.2 s in all: slow, but inside the deadline
            sock.sendall(head[i : i + 8])
            time.sleep(0.2)
        got, _ = _until_closed(sock)
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok")


def test_a_request_in_progress_outlives_both_deadlines(port: int):
    with _connect(port) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got, _ = _until_closed(sock)
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok")


def test_a_second_request_on_a_connection_gets_its_own_deadline(port: int):
    with _connect(port) as sock:
        for _ in range(3):  # each waits most of the idle time, never all of it
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(IDLE_S * 0.6)


def test_an_endless_head_is_refused_at_its_size_cap(port: int):
    with _connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        try:
            for _ in range(4 * MAX_HEAD_BYTES // 1009):
                sock.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
            got, _ = _until_closed(sock)
        except ConnectionError:
            # closed with our bytes still unread: the kernel resets the connection (or our
            # next send finds it closed), and the 431 sent before may be lost with it
            got = b"HTTP/1.1 431 (lost to the reset)"
        closed = time.monotonic()
    assert got.startswith(b"HTTP/1.1 431")
    assert closed - started < HEADER_S  # at the size cap, not at the header deadline
