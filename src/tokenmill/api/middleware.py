"""Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streams and cost latency)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenmill.core.ids import new_request_id


class RequestIdMiddleware:
    """Every response carries `x-request-id`; the same id keys the request's usage record.

    A client-supplied id is never reused: it is the ledger's idempotency key, and a client
    repeating one could otherwise make a second request vanish from the ledger.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
