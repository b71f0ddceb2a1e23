"""Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streams and cost latency)."""

import asyncio

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenmill.api.auth import presented_prefix
from tokenmill.core.ids import new_request_id
from tokenmill.security.audit import who


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


class AdminAuditMiddleware:
    """Every request to the admin surface, allowed or refused, leaves an audit record: who
    (the key, once authenticated), what (method and route), when, on what, the outcome (its
    status) and from where (the client address). Callers that did not authenticate are
    counted instead, past the first of their kind a window (security/refusals.py).
    Inference requests pass untouched."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self._state = fastapi_app.state  # where the services live once started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/admin"):
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_capturing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_capturing)
        finally:
            if self._one_by_one(scope):
                await asyncio.to_thread(self._record, scope, status)

    def _one_by_one(self, scope: Scope) -> bool:
        """Whether this request gets its own record: every request that authenticated does; of
        those that did not, only what the refusal tally asks for (security/refusals.py)."""
        state = scope.get("state", {})
        refusal = state.get("auth_refusal")
        if refusal is None:
            return True
        client = scope.get("client")
        return bool(
            self._state.services.refusals.note(
                client[0] if client else "unknown",
                refusal.code,
                _action(scope),
                state.get("request_id"),
                presented_prefix(Headers(scope=scope).get("authorization", "")),
                refusal.locked,
            )
        )

    def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state", {})
        client = scope.get("client")
        noted = dict(state.get("audit") or {})  # what the route named: the key, the agent
        refusal = state.get("auth_refusal")
        if refusal is not None:
            noted.update(code=refusal.code, locked_out=refusal.locked)
        actor, behalf = who(state.get("principal"))
        self._state.services.audit.append(
            actor,
            _action(scope),
            _outcome(status),
            on_behalf_of=behalf,
            resource=noted.pop("resource", scope["path"]),
            origin=client[0] if client else None,
            detail={"status": status, "request_id": state.get("request_id"), **noted},
        )


def _action(scope: Scope) -> str:
    return f"{scope['method']} {getattr(scope.get('route'), 'path', scope['path'])}"


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    return "refused" if status < 500 else "error"
