"""Bearer-key authentication against the in-memory KeyRing."""

import hmac

from starlette.requests import Request

from tokenmill.core.errors import Forbidden, Unauthenticated
from tokenmill.security.keys import KeyRing, Principal, Role


def authenticate(request: Request, keyring: KeyRing) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not hmac.compare_digest(scheme.lower(), "bearer") or not secret:
        raise Unauthenticated(
            "Missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    principal = keyring.lookup(secret.strip())
    if principal is None:
        # Same answer for unknown and revoked keys, and the key itself is never echoed.
        raise Unauthenticated("Incorrect or revoked API key")
    return principal


def require_role(principal: Principal, role: Role) -> None:
    if principal.role is not role:
        hint = "use a tenant (inference) key" if role is Role.INFERENCE else "use an admin key"
        raise Forbidden(f"This key's role '{principal.role}' cannot do this: {hint}")
