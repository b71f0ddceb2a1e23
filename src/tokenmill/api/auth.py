"""Who is calling (a bearer key, looked up by hash) and whether they may (role and scope)."""

import hmac
from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request

from tokenmill.core.errors import Forbidden, Unauthenticated
from tokenmill.security.keys import KeyRing, Principal
from tokenmill.security.roles import Permission, listed, scope_for
from tokenmill.security.throttle import AuthThrottle

F = TypeVar("F", bound=Callable[..., object])
_PERMISSION_ATTR = "tokenmill_permission"


def origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authenticate(request: Request, keyring: KeyRing, throttle: AuthThrottle) -> Principal:
    """The caller's principal. Unknown, revoked and expired keys get the same answer, after
    the same work (hash, one map lookup), and the key is never echoed."""
    where = origin(request)
    throttle.check(where)
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not hmac.compare_digest(scheme.lower(), "bearer") or not secret:
        raise Unauthenticated(
            "Missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    principal = keyring.lookup(secret.strip())
    if principal is None or principal.expired():
        throttle.failed(where)
        raise Unauthenticated("Incorrect, revoked or expired API key")
    return principal


def authorize(principal: Principal, permission: Permission) -> None:
    scope = scope_for(permission)
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
