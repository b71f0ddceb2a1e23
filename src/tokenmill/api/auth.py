"""Who is calling (a bearer key, looked up by hash) and whether they may (role and scope)."""

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from tokenmill.core.errors import Forbidden, RateLimited, TokenMillError, Unauthenticated
from tokenmill.security.keys import KeyRing, Principal, looks_like_key, visible_prefix
from tokenmill.security.roles import Permission, Scope, listed, scope_for
from tokenmill.security.sessions import Sessions
from tokenmill.security.throttle import AuthThrottle

F = TypeVar("F", bound=Callable[..., object])
_PERMISSION_ATTR = "tokenmill_permission"
SESSION_COOKIE = "tm_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ENDED = "session_ended"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `authenticate` refused a request (`request.state.auth_refusal`, for its audit)."""

    code: str  # missing_api_key, invalid_api_key or too_many_auth_failures
    locked: bool  # this refusal locked the address out


# Shared instances: the refusal path keeps nothing it allocates (per-request objects kept on
# the request skewed tests/test_auth_guard.py's timing probe from ~4 % to 5-11 %).
_REFUSALS = {
    (code, locked): Refusal(code, locked)
    for code in ("missing_api_key", "invalid_api_key", "too_many_auth_failures")
    for locked in (False, True)
}


def origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def presented_prefix(authorization: str) -> str | None:
    """The visible part of the key in an Authorization header (None: no key, or a secret not
    shaped like one), to tell probes apart; never the secret."""
    secret = authorization.partition(" ")[2].strip()
    return visible_prefix(secret) if looks_like_key(secret) else None


def authenticate(
    request: Request, keyring: KeyRing, throttle: AuthThrottle, sessions: Sessions | None = None
) -> Principal:
    """The caller's principal. Unknown, revoked and expired keys get the same answer, after
    the same work (hash, one map lookup), and the key is never echoed. A missing key counts
    as a failure toward the address's lockout, as a bad one does. Without a key, a console
    session's cookie is the credential (an Authorization header always wins)."""
    if sessions is not None and "authorization" not in request.headers:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return _session_principal(request, sessions, cookie)
    where = origin(request)
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    prefix = presented_prefix(header)
    try:
        throttle.check(where, prefix)
    except RateLimited as exc:
        raise _refused(request, exc, locked=False) from None
    if not hmac.compare_digest(scheme.lower(), "bearer") or not secret:
        locked = throttle.failed(where, None)
        missing = Unauthenticated(
            "Missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
        )
        raise _refused(request, missing, locked)
    principal = keyring.lookup(secret)
    if principal is None or principal.expired():
        locked = throttle.failed(where, prefix)
        raise _refused(request, Unauthenticated("Incorrect, revoked or expired API key"), locked)
    return principal


def _session_principal(request: Request, sessions: Sessions, cookie: str) -> Principal:
    """The session's principal; a write must also carry the session's CSRF token (a cookie
    rides along on any site's request, a header set by our page's script does not)."""
    signed = sessions.resolve(cookie)
    if signed is None:
        ended = Unauthenticated(
            "the console session has ended: sign in again", code="session_ended"
        )
        raise _refused(request, ended, locked=False)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), signed.csrf.encode()):
            raise Forbidden(
                f"a console write needs this session's {CSRF_HEADER} header", code="csrf_failed"
            )
    return signed.principal


def _refused(request: Request, exc: TokenMillError, locked: bool) -> TokenMillError:
    state = request.scope.get("state")  # RequestIdMiddleware gives every request one
    if state is not None:
        state["auth_refusal"] = _REFUSALS.get((exc.code, locked)) or Refusal(exc.code, locked)
    return exc


def authorize(principal: Principal, permission: Permission) -> None:
    scope = scope_for(permission)
    if principal.console and scope is Scope.INFERENCE:
        raise Forbidden(
            "a console session cannot infer: call the API with an inference key",
            code="scope_denied",
        )
    if scope not in principal.scopes:
        raise Forbidden(
            f"this key's scopes ({listed(principal.scopes)}) do not allow {scope}",
            code="scope_denied",
        )
    if not principal.may(permission):
        raise Forbidden(
            f"role '{principal.role}' lacks the permission '{permission}'", code="role_denied"
        )


def requires(permission: Permission) -> Callable[[F], F]:
    """Declares a route's policy; the admin surface refuses routes that declare none."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _PERMISSION_ATTR, permission)
        return endpoint

    return mark


def declared_permission(endpoint: object) -> Permission | None:
    value = getattr(endpoint, _PERMISSION_ATTR, None)
    return value if isinstance(value, Permission) else None
