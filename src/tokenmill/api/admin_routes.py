"""The admin surface: tenants, keys, agents, deployments, usage, audit.

Every route declares the permission it needs (`@requires`); the router's one dependency
authenticates the caller and checks it, and refuses a route that declares nothing. Tenant
roles reach only their own tenant (`principal.reach`).
"""

import asyncio
import dataclasses
import itertools
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from tokenmill.api.admin_bodies import (
    AgentIn,
    DeploymentIn,
    KeyIn,
    ReplicaRangeIn,
    RolloutIn,
    RotateIn,
    TenantIn,
    TenantPatch,
)
from tokenmill.api.auth import authenticate, authorize, declared_permission, requires
from tokenmill.api.deploy_plan import plan as plan_deployment
from tokenmill.api.state import Services, services
from tokenmill.core.errors import Forbidden, InvalidRequest
from tokenmill.core.money import Money
from tokenmill.metering.history import LAST_TIME_S
from tokenmill.metering.history import horizon as history_horizon
from tokenmill.metering.ledger import GROUP_NAMES, usage_totals
from tokenmill.metering.series import Filters, Window
from tokenmill.metering.series import usage_series as series_of
from tokenmill.runtime.instances import read_instances
from tokenmill.security.accounts import UNSET, IssuedKey
from tokenmill.security.doctor import Facts, examine
from tokenmill.security.grants import within_holder
from tokenmill.security.integrity import Integrity
from tokenmill.security.keys import Principal
from tokenmill.security.pii import PiiMode
from tokenmill.security.profiles import Profile, is_local_endpoint
from tokenmill.security.roles import TENANT_ISSUABLE, Permission, Role, Scope

P = Permission


def admin(request: Request) -> Principal:
    svc = services(request)
    principal = authenticate(request, svc.accounts.keyring, svc.auth_throttle, svc.sessions)
    request.state.principal = principal  # for the audit record, allowed or not
    permission = declared_permission(request.scope.get("endpoint"))
    if permission is None:  # fail closed: a route nobody gave a policy serves nobody
        raise Forbidden("this route declares no access policy", code="no_policy")
    authorize(principal, permission)
    return principal


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin)])
Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(admin)]


def _within_reach(caller: Principal, tenant: str) -> None:
    if caller.reach is not None and tenant != caller.reach:
        raise Forbidden(f"this key acts only for tenant '{caller.reach}'", code="tenant_denied")


def _note(request: Request, resource: str, **detail: object) -> None:
    """What the admin audit record should name beyond the route (the middleware writes it)."""
    request.state.audit = {"resource": resource, **detail}


@router.post("/tenants", status_code=201)
@requires(P.TENANTS_WRITE)
def create_tenant(body: TenantIn, svc: Svc) -> dict[str, Any]:
    mode = PiiMode(body.pii_mode) if body.pii_mode else None
    return svc.accounts.create_tenant(
        body.name, body.display_name, body.weight, mode, body.pii_kinds
    )


@router.get("/tenants")
@requires(P.TENANTS_READ)
def list_tenants(svc: Svc) -> dict[str, Any]:
    return {"data": svc.accounts.list_tenants()}


@router.patch("/tenants/{name}")
@requires(P.TENANTS_WRITE)
def update_tenant(name: str, body: TenantPatch, svc: Svc) -> dict[str, Any]:
    """Change a tenant's weight or PII mode or kinds; the live scheduler and guard apply it at
    once."""
    given = body.model_fields_set
    mode = PiiMode(body.pii_mode) if body.pii_mode else None
    kinds = body.pii_kinds if "pii_kinds" in given else UNSET
    return svc.accounts.update_tenant(
        name, body.weight, mode if "pii_mode" in given else UNSET, kinds
    )


def _issued(issued: IssuedKey) -> dict[str, Any]:
    return {
        "id": issued.id,
        "tenant": issued.tenant,
        "name": issued.name,
        "role": issued.role.value,
        "prefix": issued.prefix,
        "key": issued.secret,  # the only time it is ever shown
    }


@router.post("/keys", status_code=201)
@requires(P.KEYS_WRITE)
def create_key(body: KeyIn, svc: Svc, caller: Caller, request: Request) -> dict[str, Any]:
    _within_reach(caller, body.tenant)
    if caller.reach is not None and Role(body.role) not in TENANT_ISSUABLE:
        raise Forbidden(f"a tenant-admin cannot issue {body.role} keys", code="role_denied")
    spec = within_holder(caller, body.spec().checked(body.tenant))
    can_infer = Scope.INFERENCE in (spec.scopes or ())
    if svc.settings.profile is Profile.FINANCE and can_infer and spec.limits.budget_tokens is None:
        raise InvalidRequest(
            "the finance profile requires a budget (budget_tokens) on every key that can infer",
            param="budget_tokens",
            code="profile_denied",
        )
    issued = svc.accounts.create_key(body.tenant, body.name, spec)
    _note(request, f"key:{issued.id}", event="key.created", role=body.role)
    return _issued(issued)


@router.get("/keys")
@requires(P.KEYS_READ)
def list_keys(svc: Svc, caller: Caller, tenant: str | None = None) -> dict[str, Any]:
    if tenant is not None:
        _within_reach(caller, tenant)
    return {"data": svc.accounts.list_keys(tenant or caller.reach)}


@router.delete("/keys/{key_id}")
@requires(P.KEYS_WRITE)
def revoke_key(key_id: str, svc: Svc, caller: Caller, request: Request) -> dict[str, Any]:
    _note(request, f"key:{key_id}", event="key.revoked")
    return svc.accounts.revoke_key(key_id, caller.reach)


@router.post("/keys/{key_id}/rotate", status_code=201)
@requires(P.KEYS_WRITE)
def rotate_key(
    key_id: str, body: RotateIn, svc: Svc, caller: Caller, request: Request
) -> dict[str, Any]:
    """A new secret with the same rights; the old one works `grace_s` longer (0: not at all)."""
    issued, old = svc.accounts.rotate_key(key_id, body.grace_s, caller.reach)
    _note(request, f"key:{key_id}", event="key.rotated", new_key=issued.id, grace_s=body.grace_s)
    return {**_issued(issued), "rotated_from": old}


@router.post("/agents", status_code=201)
@requires(P.AGENTS_WRITE)
def register_agent(body: AgentIn, svc: Svc, caller: Caller, request: Request) -> dict[str, Any]:
    _within_reach(caller, body.tenant)
    overrides = body.model_dump(exclude={"tenant", "name", "owner", "profile"})
    agent, key = svc.agents.register(
        body.tenant, body.name, body.owner, body.profile, overrides, holder=caller
    )
    _note(request, f"agent:{agent['id']}", event="agent.registered", key=key.id)
    return {"agent": agent, "key": _issued(key)}


@router.get("/agents")
@requires(P.AGENTS_READ)
def list_agents(svc: Svc, caller: Caller) -> dict[str, Any]:
    return {"data": svc.agents.list(caller.reach)}


@router.delete("/agents/{agent_id}")
@requires(P.AGENTS_WRITE)
def retire_agent(agent_id: str, svc: Svc, caller: Caller, request: Request) -> dict[str, Any]:
    _note(request, f"agent:{agent_id}", event="agent.retired")
    return svc.agents.retire(agent_id, caller.reach)


@router.post("/deployments", status_code=201, responses={200: {"description": "a dry run"}})
@requires(P.DEPLOYMENTS_WRITE)
async def create_deployment(
    body: DeploymentIn,
    svc: Svc,
    response: Response,
    dry_run: Annotated[bool, Query(description="Only say where it would go, and why")] = False,
) -> dict[str, Any]:
    finance = svc.settings.profile is Profile.FINANCE
    if finance and body.endpoint and not is_local_endpoint(body.endpoint):
        raise Forbidden(
            "the finance profile serves local models only: this endpoint is not "
            "on a loopback or private address",
            param="endpoint",
            code="profile_denied",
        )
    if dry_run:  # placement and its reasons; nothing is created
        response.status_code = 200
        return await asyncio.to_thread(plan_deployment, body, svc.deployments.views())
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


@router.patch("/deployments/{name}")
@requires(P.DEPLOYMENTS_WRITE)
async def set_replica_range(name: str, body: ReplicaRangeIn, svc: Svc) -> dict[str, Any]:
    return await svc.deployments.set_range(name, body.min_replicas, body.max_replicas)


@router.get("/deployments")
@requires(P.DEPLOYMENTS_READ)
def list_deployments(svc: Svc) -> dict[str, Any]:
    return {"data": svc.deployments.views()}


@router.post("/deployments/{name}/rollout", status_code=202)
@requires(P.DEPLOYMENTS_WRITE)
async def start_rollout(name: str, body: RolloutIn, svc: Svc) -> dict[str, Any]:
    """Replace the replicas one at a time with ones of the new spec; `rollout` shows how far."""
    return await svc.deployments.update(
        name, model_path=body.model_path, upstream_model=body.upstream_model, options=body.options
    )


@router.get("/replicas")
@requires(P.DEPLOYMENTS_READ)
def list_replicas(svc: Svc) -> dict[str, Any]:
    """Replica instances as the controllers wrote them, with whether each is still owned."""
    return {"data": read_instances(svc.db)}


@router.delete("/deployments/{name}")
@requires(P.DEPLOYMENTS_WRITE)
async def remove_deployment(name: str, svc: Svc) -> dict[str, Any]:
    await svc.deployments.remove(name)
    return {"name": name, "removed": True}


@router.get("/audit")
@requires(P.AUDIT_READ)
async def audit_records(
    svc: Svc,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a 64-bit sequence number
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Audit records after sequence number `after`, oldest first (this read is audited too)."""
    records = svc.audit.records(after_seq=after, batch=limit)
    page = await asyncio.to_thread(lambda: list(itertools.islice(records, limit)))
    return {"data": page}


@router.get("/audit/verify")
@requires(P.AUDIT_READ)
async def audit_verify(svc: Svc) -> dict[str, Any]:
    """The audit chain, its signed head and checkpoints; invoice seals; immutability triggers."""
    report = await asyncio.to_thread(Integrity(svc.db, svc.audit).check)
    return {
        **dataclasses.asdict(report.audit),
        "ok": report.ok,
        "problems": report.seals + report.triggers,
    }


@router.get("/doctor")
@requires(P.CONFIG_READ)
async def doctor(svc: Svc) -> dict[str, Any]:
    """Where the running configuration breaks its compliance profile."""
    report = await asyncio.to_thread(Integrity(svc.db, svc.audit).check)
    keys = await asyncio.to_thread(svc.accounts.list_keys)
    settings = svc.settings
    facts = Facts(
        profile=settings.profile,
        host=settings.host,
        tls=settings.tls_certfile is not None,
        pii_mode=settings.pii_mode,
        tenant_pii_modes=await asyncio.to_thread(svc.accounts.pii_modes),
        audit_ok=report.audit.ok,
        audit_reason=report.audit.reason,
        seal_problems=report.seals,
        trigger_problems=report.triggers,
        audit_retention_days=settings.audit_retention_days,
        metering=svc.metering.health(),
        deployments=svc.deployments.views(),
        keys=[k for k in keys if k["revoked_at"] is None],
    )
    findings = examine(facts)
    return {
        "profile": settings.profile.value,
        "ok": all(f.status != "fail" for f in findings),
        "findings": [dataclasses.asdict(f) for f in findings],
    }


@router.get("/usage")
@requires(P.USAGE_READ)
async def usage(
    svc: Svc,
    caller: Caller,
    group_by: Annotated[str, Query(max_length=64)] = "tenant,model,day",
    since: Annotated[float | None, Query(ge=0)] = None,
    until: Annotated[float | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    groups = [g for g in (p.strip() for p in group_by.split(",")) if g]
    unknown = [g for g in groups if g not in GROUP_NAMES]
    if unknown:
        raise InvalidRequest(
            f"cannot group by {unknown}; choose from {sorted(GROUP_NAMES)}", param="group_by"
        )
    reach = caller.reach  # a tenant-admin sees its own tenant's usage only
    rows, total = await asyncio.gather(
        asyncio.to_thread(usage_totals, svc.db, groups, since, until, reach),
        asyncio.to_thread(usage_totals, svc.db, [], since, until, reach),
    )
    return {"group_by": groups, "data": rows, "total": total[0] if total else None}


@router.get("/usage/series")
@requires(P.USAGE_READ)
async def usage_series(
    svc: Svc,
    caller: Caller,
    step: Literal["hour", "day"] = "hour",
    since: Annotated[float | None, Query(ge=0, le=LAST_TIME_S)] = None,
    until: Annotated[float | None, Query(ge=0, le=LAST_TIME_S)] = None,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    key_id: Annotated[str | None, Query(max_length=32)] = None,
    agent: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """Usage per hour or day for a chart, every bucket present; from the rollups (see
    `metering/series.py`: exact sums, TTFT percentiles estimated). `history_from`: where the
    kept history starts (None: all of it); buckets before it read zero."""
    if tenant is not None:
        _within_reach(caller, tenant)
    window = Window.of(step, since, until, time.time())
    filters = Filters(tenant or caller.reach, model, key_id, agent)
    points, start = await asyncio.gather(
        asyncio.to_thread(series_of, svc.db, window, filters),
        asyncio.to_thread(history_horizon, svc.db),
    )
    return {
        "step": step,
        "history_from": start,
        "data": [
            {
                "t": p.t,
                **p.counts,
                "ttft_p50_ms": _ms(p.ttft_ms(0.5)),
                "ttft_p90_ms": _ms(p.ttft_ms(0.9)),
                "revenue": {c: _exact(Money(pico, c)) for c, pico in sorted(p.revenue.items())},
            }
            for p in points
        ],
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _exact(money: Money) -> str:
    """Every digit there is, no rounding: a chart's points then add up to the totals."""
    return format(money.decimal(), "f")
