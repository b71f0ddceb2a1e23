"""Console users: create, list, disable, set a password. Same rules as the keys: a
tenant-admin manages its own tenant's users and may make only tenant-admins."""

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from tokenmill.api.admin_bodies import Body
from tokenmill.api.admin_routes import Caller, P, Svc, _note, _within_reach, admin
from tokenmill.api.auth import requires
from tokenmill.core.errors import Forbidden
from tokenmill.security.passwords import MAX_LENGTH
from tokenmill.security.roles import TENANT_ISSUABLE, Role

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin)])


class UserIn(Body):
    tenant: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    role: Role
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class PasswordIn(Body):
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


@router.post("/users", status_code=201)
@requires(P.USERS_WRITE)
def create_user(body: UserIn, svc: Svc, caller: Caller, request: Request) -> dict[str, Any]:
    _within_reach(caller, body.tenant)
    if caller.reach is not None and body.role not in TENANT_ISSUABLE:
        raise Forbidden(f"a tenant-admin cannot make {body.role} users", code="role_denied")
    user = svc.users.create(body.tenant, body.name, body.role, body.password)
    _note(request, f"user:{user['id']}", event="user.created", role=str(body.role))
    return user


@router.get("/users")
@requires(P.USERS_READ)
def list_users(svc: Svc, caller: Caller, tenant: str | None = None) -> dict[str, Any]:
    if tenant is not None:
        _within_reach(caller, tenant)
    return {"data": svc.users.list(tenant or caller.reach)}


@router.delete("/users/{user_id}")
@requires(P.USERS_WRITE)
def disable_user(user_id: str, svc: Svc, caller: Caller, request: Request) -> dict[str, Any]:
    _note(request, f"user:{user_id}", event="user.disabled")
    return svc.users.disable(user_id, caller.reach)


@router.post("/users/{user_id}/password")
@requires(P.USERS_WRITE)
def set_password(
    user_id: str, body: PasswordIn, svc: Svc, caller: Caller, request: Request
) -> dict[str, Any]:
    _note(request, f"user:{user_id}", event="user.password_set")
    return svc.users.set_password(user_id, body.password, caller.reach)
