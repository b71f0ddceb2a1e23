"""Security headers on every HTTP response, as a pure ASGI middleware (streams pass through).

The API serves JSON and SSE, never pages, so the policy is as strict as it gets: nothing may
load, nothing may frame it, nothing is cached. The one exception is the interactive docs
(Swagger UI, ReDoc): HTML that loads its code from a CDN and starts it with an inline script.
Those pages get a policy that allows exactly that CDN and, instead of 'unsafe-inline' for
scripts, the hashes of the inline scripts actually served (computed from the response body,
so the policy follows FastAPI's HTML rather than a copy of it).
"""

import base64
import hashlib
import re
from collections.abc import Collection, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Header = tuple[bytes, bytes]

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc as FastAPI serves them: bundles and CSS from jsDelivr, ReDoc's Google
# fonts and its web worker (from a blob: URL), inline styles (both set element styles; a style
# cannot run code), data: images in the CSS, the favicon, and fetches of /openapi.json and of
# "try it out" requests to this server only.
DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net {hashes}; "
    "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")  # FastAPI's defaults
HSTS: Header = (b"strict-transport-security", b"max-age=31536000")

_COMMON: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),  # tokens and usage are per tenant: no cache keeps them
)
# Only attribute-less <script> elements are inline code in FastAPI's pages; anything else
# inline stays unhashed, so the browser refuses it (fails closed).
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


class SecureHeadersMiddleware:
    """Adds the headers above to each response that does not set them already; HSTS only on
    requests that arrived over TLS (a browser ignores it over plain HTTP, and it would pin
    HTTPS on a host that may not serve it)."""

    def __init__(self, app: ASGIApp, docs_paths: Collection[str] = DOCS_PATHS) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        api = (*_COMMON, (b"content-security-policy", API_CSP.encode()))
        self._api = {False: api, True: (*api, HSTS)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"
        if scope["path"] in self.docs_paths:
            await self._docs(scope, receive, send, tls)
            return
        defaults = self._api[tls]

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merged(message.get("headers", ()), defaults)
            await send(message)

        await self.app(scope, receive, send_secured)

    async def _docs(self, scope: Scope, receive: Receive, send: Send, tls: bool) -> None:
        """Holds back the (small, static) docs page until its inline scripts are hashed."""
        start: Message | None = None
        body: list[bytes] = []

        async def send_hashed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = b"".join(body)
            csp = DOCS_CSP.format(hashes=_script_hashes(page)).encode()
            defaults = (*_COMMON, (b"content-security-policy", csp), *([HSTS] if tls else []))
            start["headers"] = _merged(start.get("headers", ()), defaults)
            await send(start)
            await send({"type": "http.response.body", "body": page, "more_body": False})

        await self.app(scope, receive, send_hashed)


def _merged(headers: Iterable[Header], defaults: Iterable[Header]) -> list[Header]:
    """The response's own headers win: it knows better (SSE sets its own Cache-Control)."""
    own = list(headers)
    present = {name.lower() for name, _ in own}
    return own + [h for h in defaults if h[0] not in present]


def _script_hashes(page: bytes) -> str:
    digests = (hashlib.sha256(m.group(1)).digest() for m in _INLINE_SCRIPT.finditer(page))
    return " ".join(f"'sha256-{base64.b64encode(d).decode()}'" for d in digests)
