"""The web console's server side: its static page and the sign-in, session and sign-out calls.

Everything the page shows comes from the same JSON API keys use (/admin, /metrics), with the
session cookie as the credential (api/auth.py): one access policy for both faces.
"""

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import Field

from tokenmill.api.admin_bodies import Body
from tokenmill.api.auth import SESSION_COOKIE, authenticate, origin
from tokenmill.api.state import Services, services
from tokenmill.core.errors import Forbidden, InvalidRequest, RateLimited, Unauthenticated
from tokenmill.security.audit import who
from tokenmill.security.keys import visible_prefix
from tokenmill.security.roles import GRANTS, Scope, scope_for
from tokenmill.security.sessions import Signed

STATIC = Path(__file__).parent / "static"
# The console's own code only: no inline script or style, nothing from another origin.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

router = APIRouter(tags=["console"], include_in_schema=False)


class LoginIn(Body):
    username: str | None = Field(default=None, min_length=1, max_length=64)
    password: str | None = Field(default=None, min_length=1, max_length=256)
    key: str | None = Field(default=None, min_length=1, max_length=200)


def session_view(signed: Signed) -> dict[str, Any]:
    """Who is signed in and what the page may offer them (the API checks again anyway)."""
    p = signed.principal
    allowed = sorted(str(m) for m in GRANTS[p.role] if scope_for(m) in p.scopes - {Scope.INFERENCE})
    return {
        "signed_in": True,
        "name": signed.name,
        "tenant": p.tenant,
        "role": str(p.role),
        "permissions": allowed,
        "csrf": signed.csrf,
    }


@router.post("/console/api/login")
async def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
    svc = services(request)
    where = origin(request)
    svc.auth_throttle.check(where, None)
    try:
        secret, signed = await _sign_in(svc, body)
    except (Unauthenticated, Forbidden, RateLimited) as exc:
        if isinstance(exc, Unauthenticated):
            svc.auth_throttle.failed(where, None)
        claimed = {"username": body.username} if body.username else {"with": "key"}
        await asyncio.to_thread(
            svc.audit.append,
            "unauthenticated",
            "console.login",
            "denied",
            origin=where,
            detail={"code": exc.code, **claimed},
        )
        raise
    actor, behalf = who(signed.principal)
    await asyncio.to_thread(
        svc.audit.append, actor, "console.login", "ok", on_behalf_of=behalf, origin=where
    )
    _set_cookie(request, response, secret, svc.sessions.max_s)
    return session_view(signed)


async def _sign_in(svc: Services, body: LoginIn) -> tuple[str, Signed]:
    if body.key is not None:
        principal = svc.accounts.keyring.lookup(body.key)
        if principal is None or principal.expired():
            raise Unauthenticated("Incorrect, revoked or expired API key")
        if Scope.MANAGEMENT not in principal.scopes:
            raise Forbidden(
                "this key may only infer: sign in with a management key or as a user",
                code="scope_denied",
            )
        return await asyncio.to_thread(
            svc.sessions.open_for_key, principal, visible_prefix(body.key)
        )
    if body.username is None or body.password is None:
        raise InvalidRequest("sign in with a username and password, or with a key")
    user = await asyncio.to_thread(svc.users.sign_in, body.username, body.password)
    return await asyncio.to_thread(svc.sessions.open_for_user, user)


def _set_cookie(request: Request, response: Response, secret: str, max_age_s: float) -> None:
    # HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it; Secure:
    # only over TLS, or to a loopback address (browsers treat those as secure).
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(max_age_s),
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


@router.get("/console/api/session")
async def session(request: Request) -> dict[str, Any]:
    svc = services(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    signed = await asyncio.to_thread(svc.sessions.resolve, cookie) if cookie else None
    if signed is None:  # an answer, not an error: the page asks before anyone signs in
        return {"signed_in": False}
    return session_view(signed)


@router.post("/console/api/logout", status_code=204)
async def logout(request: Request) -> Response:
    """Ends the session (the CSRF check applies: another site cannot sign a user out)."""
    svc = services(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    if not cookie:
        return response
    principal = await asyncio.to_thread(
        authenticate, request, svc.accounts.keyring, svc.auth_throttle, svc.sessions
    )
    await asyncio.to_thread(svc.sessions.end, cookie)
    actor, behalf = who(principal)
    await asyncio.to_thread(
        svc.audit.append, actor, "console.logout", "ok", on_behalf_of=behalf, origin=origin(request)
    )
    return response


@router.get("/console")
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/{page:path}")
async def console_page(page: str) -> FileResponse:
    """The one page; the script draws whichever view the path names."""
    return FileResponse(STATIC / "index.html", headers={"content-security-policy": CONSOLE_CSP})
