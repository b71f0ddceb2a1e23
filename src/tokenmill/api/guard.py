"""The checks every route runs first: who is calling, may they, and the audit record of a
refusal. The admin surface is audited whole by its middleware; here, the OpenAI surface."""

import asyncio

from starlette.requests import Request

from tokenmill.api.auth import authenticate, authorize, origin
from tokenmill.api.state import Services
from tokenmill.core.errors import Forbidden, Unauthenticated
from tokenmill.security.audit import who
from tokenmill.security.keys import Principal, looks_like_key, visible_prefix
from tokenmill.security.roles import Permission


async def caller(request: Request, svc: Services, permission: Permission) -> Principal:
    principal: Principal | None = None
    try:
        principal = authenticate(request, svc.accounts.keyring, svc.auth_throttle)
        authorize(principal, permission)
        return principal
    except (Unauthenticated, Forbidden) as exc:
        actor, behalf = who(principal)
        await asyncio.to_thread(
            svc.audit.append,
            actor,
            f"{request.method} {request.url.path}",
            "denied",
            on_behalf_of=behalf,
            resource=request.url.path,
            origin=origin(request),
            detail={
                "code": exc.code,
                "request_id": request.state.request_id,
                "key_prefix": _presented_prefix(request),
                "locked_out": svc.auth_throttle.locked(origin(request)),  # this one locked it
            },
        )
        raise


def _presented_prefix(request: Request) -> str | None:
    """The visible part of a presented key, to tell probes apart; never the secret."""
    secret = request.headers.get("authorization", "").partition(" ")[2].strip()
    return visible_prefix(secret) if looks_like_key(secret) else None
