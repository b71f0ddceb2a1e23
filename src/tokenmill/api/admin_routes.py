"""The admin surface: tenants, keys, deployments, usage. Every route requires an admin key."""

import asyncio
import dataclasses
import itertools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tokenmill.api.auth import authenticate, require_role
from tokenmill.api.state import Services, services
from tokenmill.core.errors import InvalidRequest
from tokenmill.metering.ledger import GROUPS, usage_totals
from tokenmill.security.accounts import MAX_WEIGHT, MIN_WEIGHT
from tokenmill.security.keys import Principal, Role


def admin(request: Request) -> Principal:
    principal = authenticate(request, services(request).accounts.keyring)
    request.state.principal = principal  # for the audit record, allowed or not
    require_role(principal, Role.ADMIN)
    return principal


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin)])
Svc = Annotated[Services, Depends(services)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantIn(_Body):
    name: str = Field(min_length=1, max_length=64)
    display_name: str | None = Field(default=None, max_length=200)
    weight: int = Field(default=1, ge=MIN_WEIGHT, le=MAX_WEIGHT)


class TenantPatch(_Body):
    weight: int = Field(ge=MIN_WEIGHT, le=MAX_WEIGHT)


class KeyIn(_Body):
    tenant: str = Field(min_length=1, max_length=64)
    name: str = Field(default="default", min_length=1, max_length=200)
    role: Literal["inference", "admin"] = "inference"


class DeploymentIn(_Body):
    name: str = Field(min_length=1, max_length=128)
    engine: Literal["llamacpp", "openai"]
    model_path: str | None = Field(default=None, max_length=1024)
    endpoint: str | None = Field(default=None, max_length=1024)
    upstream_model: str | None = Field(default=None, max_length=256)
    replicas: int = Field(default=1, ge=0, le=64)
    # The autoscaler's range (default: fixed at `replicas`); min 0 allows scale-to-zero.
    min_replicas: int | None = Field(default=None, ge=0, le=64)
    max_replicas: int | None = Field(default=None, ge=1, le=64)
    options: dict[str, int | float | str | bool] = Field(default_factory=dict)


@router.post("/tenants", status_code=201)
def create_tenant(body: TenantIn, svc: Svc) -> dict[str, Any]:
    return svc.accounts.create_tenant(body.name, body.display_name, body.weight)


@router.get("/tenants")
def list_tenants(svc: Svc) -> dict[str, Any]:
    return {"data": svc.accounts.list_tenants()}


@router.patch("/tenants/{name}")
def update_tenant(name: str, body: TenantPatch, svc: Svc) -> dict[str, Any]:
    """Persist a tenant's new weight; the live scheduler applies it at once."""
    return svc.accounts.set_weight(name, body.weight)


@router.post("/keys", status_code=201)
def create_key(body: KeyIn, svc: Svc) -> dict[str, Any]:
    issued = svc.accounts.create_key(body.tenant, body.name, Role(body.role))
    return {
        "id": issued.id,
        "tenant": issued.tenant,
        "name": issued.name,
        "role": issued.role.value,
        "prefix": issued.prefix,
        "key": issued.secret,  # the only time it is ever shown
    }


@router.get("/keys")
def list_keys(svc: Svc, tenant: str | None = None) -> dict[str, Any]:
    return {"data": svc.accounts.list_keys(tenant)}


@router.delete("/keys/{key_id}")
def revoke_key(key_id: str, svc: Svc) -> dict[str, Any]:
    return svc.accounts.revoke_key(key_id)


@router.post("/deployments", status_code=201)
async def create_deployment(body: DeploymentIn, svc: Svc) -> dict[str, Any]:
    return await svc.deployments.create(
        body.name,
        body.engine,
        model_path=body.model_path,
        endpoint=body.endpoint,
        upstream_model=body.upstream_model,
        replicas=body.replicas,
        min_replicas=body.min_replicas,
        max_replicas=body.max_replicas,
        options=dict(body.options),
    )


class ReplicaRangeIn(_Body):
    min_replicas: int | None = Field(default=None, ge=0, le=64)
    max_replicas: int | None = Field(default=None, ge=1, le=64)


@router.patch("/deployments/{name}")
async def set_replica_range(name: str, body: ReplicaRangeIn, svc: Svc) -> dict[str, Any]:
    return await svc.deployments.set_range(name, body.min_replicas, body.max_replicas)


@router.get("/deployments")
def list_deployments(svc: Svc) -> dict[str, Any]:
    return {"data": svc.deployments.views()}


@router.delete("/deployments/{name}")
async def remove_deployment(name: str, svc: Svc) -> dict[str, Any]:
    await svc.deployments.remove(name)
    return {"name": name, "removed": True}


@router.get("/audit")
async def audit_records(
    svc: Svc,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Audit records after sequence number `after`, oldest first (this read is audited too)."""
    records = svc.audit.records(after_seq=after, batch=limit)
    page = await asyncio.to_thread(lambda: list(itertools.islice(records, limit)))
    return {"data": page}


@router.get("/audit/verify")
async def audit_verify(svc: Svc) -> dict[str, Any]:
    verdict = await asyncio.to_thread(svc.audit.verify)
    return dataclasses.asdict(verdict)


@router.get("/usage")
async def usage(
    svc: Svc,
    group_by: Annotated[str, Query(max_length=64)] = "tenant,model,day",
    since: Annotated[float | None, Query(ge=0)] = None,
    until: Annotated[float | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    groups = [g for g in (p.strip() for p in group_by.split(",")) if g]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise InvalidRequest(
            f"cannot group by {unknown}; choose from {sorted(GROUPS)}", param="group_by"
        )
    rows, total = await asyncio.gather(
        asyncio.to_thread(usage_totals, svc.db, groups, since, until),
        asyncio.to_thread(usage_totals, svc.db, [], since, until),
    )
    return {"group_by": groups, "data": rows, "total": total[0] if total else None}
