"""Security headers: on every response of a real (plain HTTP) server, errors included; the
app's own headers win; streams pass through unbuffered; the docs pages still work."""

import asyncio
import base64
import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from tokenmill.api.secure_headers import SecureHeadersMiddleware
from tokenmill.testing import ServerProcess

SECURE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("headers-server"))
    srv.start(timeout=60, default_model=False)
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/openapi.json", 200),
        ("POST", "/v1/chat/completions", 401),  # the hot path, outside FastAPI
        ("POST", "/v1/completions", 401),
        ("GET", "/v1/models", 401),
        ("GET", "/admin/tenants", 401),
        ("GET", "/nowhere", 404),
    ],
)
def test_every_plain_http_response_has_the_headers_but_no_hsts(plain, method, path, status):
    resp = httpx.request(method, plain.url + path)
    assert resp.status_code == status
    assert {name: resp.headers.get(name) for name in SECURE} == SECURE
    assert "strict-transport-security" not in resp.headers
    assert resp.headers["x-request-id"]


def test_the_docs_page_may_load_swagger_and_run_its_own_inline_script(plain):
    resp = httpx.get(plain.url + "/docs")
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    [inline] = re.findall(r"<script>(.*?)</script>", resp.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    script_src = _directive(csp, "script-src")
    assert script_src == f"https://cdn.jsdelivr.net 'sha256-{digest}'"  # no 'unsafe-inline'
    assert "frame-ancestors 'none'" in csp and _directive(csp, "default-src") == "'none'"
    assert resp.headers["x-frame-options"] == "DENY"
    assert "https://cdn.jsdelivr.net" in _directive(csp, "style-src")


def test_the_redoc_page_may_load_redoc_its_fonts_and_its_worker(plain):
    resp = httpx.get(plain.url + "/redoc")
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    assert _directive(csp, "script-src") == "https://cdn.jsdelivr.net"  # nothing inline
    assert _directive(csp, "worker-src") == "blob:"
    assert _directive(csp, "font-src") == "https://fonts.gstatic.com"


def _directive(csp: str, name: str) -> str:
    [value] = [d.strip()[len(name) :].strip() for d in csp.split(";") if d.strip().startswith(name)]
    return value


# The middleware alone, on small ASGI apps.


async def _run(app: SecureHeadersMiddleware, scheme: str = "http") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/x", "scheme": scheme, "headers": []}
    await app(scope, receive, send)
    return sent


def _headers(message: Message) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in message["headers"]}


async def test_headers_the_app_sets_are_kept_and_not_duplicated():
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"Cache-Control", b"no-cache"), (b"X-Frame-Options", b"SAMEORIGIN")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    start, _ = await _run(SecureHeadersMiddleware(app))
    names = [k.lower() for k, _ in start["headers"]]
    assert len(names) == len(set(names))
    headers = {k.lower(): v for k, v in _headers(start).items()}
    assert headers["cache-control"] == "no-cache"  # as SSE responses set it
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("scheme", "hsts"), [("https", "max-age=31536000"), ("http", None)])
async def test_hsts_only_over_tls(scheme, hsts):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    start, _ = await _run(SecureHeadersMiddleware(app), scheme)
    assert _headers(start).get("strict-transport-security") == hsts


async def test_a_stream_passes_through_chunk_by_chunk():
    """The app sends its second chunk only once the client has the first: a middleware that
    buffered the response would wait forever."""
    first_delivered = asyncio.Event()
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await asyncio.wait_for(first_delivered.wait(), timeout=2)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body") == b"data: 1\n\n":
            first_delivered.set()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/v1/x", "scheme": "http", "headers": []}
    await SecureHeadersMiddleware(app)(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", *["http.response.body"] * 2]
    assert _headers(sent[0])["x-content-type-options"] == "nosniff"


async def test_the_docs_csp_hashes_each_inline_script_of_a_fastapi_app():
    app = FastAPI()
    transport = httpx.ASGITransport(app=SecureHeadersMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/docs/oauth2-redirect")
    inline = re.findall(r"<script>(.*?)</script>", resp.text, re.DOTALL)
    assert inline  # the OAuth2 redirect page is all inline script
    hashes = [base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in inline]
    script_src = _directive(resp.headers["content-security-policy"], "script-src")
    assert script_src.split()[1:] == [f"'sha256-{h}'" for h in hashes]
