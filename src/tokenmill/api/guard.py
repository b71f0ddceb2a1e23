"""The checks every route runs first: who is calling, may they, and the audit record of a
refusal. The admin surface is audited whole by its middleware; here, the OpenAI surface.

A caller that did not authenticate (no key, a bad key, a locked-out address) is audited in
aggregate (security/refusals.py): one by one only the first of its kind a window and the one
that locked its address out. A key refused for its scope or role is audited every time."""

import asyncio

from starlette.requests import Request

from tokenmill.api.auth import Refusal, authenticate, authorize, origin, presented_prefix
from tokenmill.api.state import Services
from tokenmill.core.errors import Forbidden, RateLimited, Unauthenticated
from tokenmill.security.audit import who
from tokenmill.security.keys import Principal
from tokenmill.security.roles import Permission


async def caller(request: Request, svc: Services, permission: Permission) -> Principal:
    principal: Principal | None = None
    try:
        # The inference surface takes keys only: a console session never infers, and a cookie
        # there would cost a database read on the hot path for nothing.
        sessions = None if permission is Permission.INFER else svc.sessions
        principal = authenticate(request, svc.accounts.keyring, svc.auth_throttle, sessions)
        authorize(principal, permission)
        return principal
    except (Unauthenticated, Forbidden, RateLimited) as exc:
        refusal: Refusal | None = getattr(request.state, "auth_refusal", None)
        action = f"{request.method} {request.url.path}"
        where = origin(request)
        request_id = request.state.request_id
        prefix = presented_prefix(request.headers.get("authorization", ""))
        if refusal is not None:
            one_by_one = svc.refusals.note(
                where, refusal.code, action, request_id, prefix, refusal.locked
            )
            if not one_by_one:
                raise
        actor, behalf = who(principal)
        await asyncio.to_thread(
            svc.audit.append,
            actor,
            action,
            "refused" if isinstance(exc, RateLimited) else "denied",
            on_behalf_of=behalf,
            resource=request.url.path,
            origin=where,
            detail={
                "code": exc.code,
                "request_id": request_id,
                "key_prefix": prefix,
                "locked_out": refusal.locked if refusal else False,  # this one locked it
            },
        )
        raise
