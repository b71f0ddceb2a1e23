"""The billing surface: price rules, invoices (close, list, show as JSON, CSV or PDF), KPIs.

Same rules as admin_routes: each route declares its permission; a tenant-admin sees only its
own tenant's invoices.
"""

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import Field

from tokenmill.api.admin_bodies import Body
from tokenmill.api.admin_routes import Caller, P, Svc, _note, _within_reach, admin
from tokenmill.api.auth import requires
from tokenmill.billing.invoice_drift import invoice_drift
from tokenmill.billing.invoice_pdf import invoice_pdf
from tokenmill.billing.invoice_render import invoice_csv, invoice_json
from tokenmill.billing.invoices import Period, parse_tax_rate
from tokenmill.billing.kpis import kpis
from tokenmill.billing.rating import rate_pending
from tokenmill.core.errors import InvalidRequest
from tokenmill.core.money import MICRO, parse_amount
from tokenmill.metering.reconcile import replica_drift
from tokenmill.runtime.replica import ReplicaState

router = APIRouter(prefix="/admin", tags=["billing"], dependencies=[Depends(admin)])
_PRICE = r"^\d{1,9}(\.\d{1,6})?$"
LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z: the last moment a date can show
# How far before now a price may say it starts: a client's clock a little behind ours.
BACKDATE_SKEW_S = 300.0


class PricesIn(Body):
    model: str = Field(min_length=1, max_length=128)  # or "*": any model without its own
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    input: str | None = Field(default=None, pattern=_PRICE)  # per 1M tokens, as a decimal
    cached_input: str | None = Field(default=None, pattern=_PRICE)
    output: str | None = Field(default=None, pattern=_PRICE)
    # A contract price for one tenant (an existing one; named as tenants are), or every tenant's.
    tenant: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    effective_from: datetime | None = None  # default: now; never in the past (BACKDATE_SKEW_S)
    source: str = Field(min_length=1, max_length=300)  # where the figure comes from


class CloseIn(Body):
    tenant: str = Field(min_length=1, max_length=64)
    period: str = Field(pattern=r"^\d{4}-\d{2}$")  # a month, YYYY-MM
    tax_rate: str | None = Field(default=None, pattern=r"^0(\.\d{1,6})?$")


class BudgetIn(Body):
    holder: str = Field(pattern=r"^(tenant|key|agent):[A-Za-z0-9_-]{1,64}$")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    limit: str = Field(pattern=r"^\d{1,12}(\.\d{1,6})?$")  # an amount, as a decimal
    period: Literal["day", "month", "total"] = "month"
    soft_pct: int = Field(default=80, ge=1, le=100)  # an alert once spend passes this share


class CreditIn(Body):
    tenant: str = Field(min_length=1, max_length=64)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    amount: str = Field(pattern=r"^\d{1,12}(\.\d{1,6})?$")
    note: str = Field(default="", max_length=300)


@router.post("/budgets", status_code=201)
@requires(P.BUDGETS_WRITE)
def create_budget(body: BudgetIn, svc: Svc, request: Request) -> dict[str, Any]:
    """A hard spending limit; reservations keep concurrent requests inside it."""
    budget = svc.budgets.create(
        body.holder, body.currency, parse_amount(body.limit, MICRO), body.period, body.soft_pct
    )
    _note(request, f"budget:{budget.id}", event="budget.created", holder=body.holder)
    return budget.view()


@router.get("/budgets")
@requires(P.BUDGETS_READ)
def list_budgets(svc: Svc) -> dict[str, Any]:
    return {"data": svc.budgets.views()}


@router.delete("/budgets/{budget_id}")
@requires(P.BUDGETS_WRITE)
def retire_budget(budget_id: str, svc: Svc, request: Request) -> dict[str, Any]:
    svc.budgets.retire(budget_id)
    _note(request, f"budget:{budget_id}", event="budget.retired")
    return {"id": budget_id, "retired": True}


@router.post("/credits", status_code=201)
@requires(P.BUDGETS_WRITE)
def grant_credit(body: CreditIn, svc: Svc, request: Request) -> dict[str, Any]:
    """Prepaid money: a tenant with credits spends at most what it was granted, in total."""
    svc.budgets.grant(body.tenant, body.currency, parse_amount(body.amount, MICRO), body.note)
    _note(request, f"tenant:{body.tenant}", event="credit.granted", amount=body.amount)
    return {"tenant": body.tenant, "currency": body.currency, "granted": body.amount}


class TierIn(Body):
    tenant: str | None = Field(default=None, max_length=64)  # None: every tenant without its own
    min_tokens: int = Field(ge=0, le=10**15)  # billed tokens in the month
    percent: str = Field(pattern=r"^\d{1,2}(\.\d{1,4})?$")  # off the month's usage


@router.post("/discounts", status_code=201)
@requires(P.PRICES_WRITE)
def add_discount(body: TierIn, svc: Svc, request: Request) -> dict[str, Any]:
    """A volume discount tier, applied when a month is invoiced."""
    tier = svc.invoices.add_tier(body.tenant, body.min_tokens, Decimal(body.percent))
    _note(request, f"discount:{tier['id']}", event="discount.added")
    return tier


@router.get("/discounts")
@requires(P.PRICES_READ)
def list_discounts(svc: Svc, caller: Caller) -> dict[str, Any]:
    tiers = svc.invoices.tiers()
    return {
        "data": [t for t in tiers if caller.reach is None or t["tenant"] in (None, caller.reach)]
    }


@router.get("/prices")
@requires(P.PRICES_READ)
def list_prices(svc: Svc, caller: Caller) -> dict[str, Any]:
    """The rules in force or to come; a tenant-admin sees the general ones and its own."""
    rules = [r for r in svc.prices.rules() if r.tenant in (None, caller.reach) or not caller.reach]
    return {"data": [r.view() for r in rules]}


@router.post("/prices", status_code=201)
@requires(P.PRICES_WRITE)
def add_prices(body: PricesIn, svc: Svc, request: Request) -> dict[str, Any]:
    """New rules that supersede from `effective_from`; existing rules never change."""
    prices = {c: v for c in ("input", "cached_input", "output") if (v := getattr(body, c))}
    if not prices:
        raise InvalidRequest("give at least one of input, cached_input, output")
    now = time.time()
    when = body.effective_from
    start = now if when is None else (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    rules = svc.prices.add(
        body.model,
        prices,
        body.currency,
        tenant=body.tenant,
        effective_from=start,
        source=body.source,
        not_before=now - BACKDATE_SKEW_S,
    )
    _note(request, f"prices:{body.model}", event="prices.added", rules=[r.id for r in rules])
    return {"data": [r.view() for r in rules]}


@router.post("/invoices/close", status_code=201)
@requires(P.INVOICES_WRITE)
async def close_invoices(body: CloseIn, svc: Svc, request: Request) -> dict[str, Any]:
    """Issue the tenant's invoices for a month, once its late-usage grace is over."""
    tax = parse_tax_rate(body.tax_rate or svc.settings.invoice_tax_rate)
    await asyncio.to_thread(rate_pending, svc.db, svc.prices)  # bill what the ledger holds
    issued = await asyncio.to_thread(
        svc.invoices.close,
        body.tenant,
        Period.month(body.period),
        now=time.time(),
        grace_s=svc.settings.invoice_grace_s,
        tax_rate=tax,
    )
    _note(
        request,
        f"tenant:{body.tenant}",
        event="invoice.closed",
        invoices=[i["id"] for i in issued],
        period=body.period,
    )
    return {"data": issued}


@router.get("/invoices")
@requires(P.INVOICES_READ)
def list_invoices(svc: Svc, caller: Caller, tenant: str | None = None) -> dict[str, Any]:
    if tenant is not None:
        _within_reach(caller, tenant)
    return {"data": svc.invoices.list(tenant or caller.reach)}


_FORMATS = {
    "json": ("application/json", invoice_json),
    "csv": ("text/csv", lambda inv: invoice_csv(inv).encode()),
    "pdf": ("application/pdf", invoice_pdf),
}


@router.get(
    "/invoices/{invoice_id}",
    responses={200: {"content": {media: {} for media, _ in _FORMATS.values()}}},
)
@requires(P.INVOICES_READ)
async def show_invoice(
    invoice_id: str,
    svc: Svc,
    caller: Caller,
    format: Literal["json", "csv", "pdf"] = "json",
) -> Response:
    invoice = svc.invoices.get(invoice_id, caller.reach)
    media, render = _FORMATS[format]
    content = await asyncio.to_thread(render, invoice)
    name = f"{invoice['number']}.{format}"
    return Response(
        content, media_type=media, headers={"Content-Disposition": f'inline; filename="{name}"'}
    )


@router.get("/kpis")
@requires(P.KPIS_READ)
async def business_kpis(
    svc: Svc,
    since: Annotated[float | None, Query(ge=0, le=LAST_SECOND)] = None,
    until: Annotated[float | None, Query(ge=0, le=LAST_SECOND)] = None,
    top: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> dict[str, Any]:
    """Token revenue and tokens per day, ARPU, top tenants and models (default: 30 days)."""
    end = until if until is not None else time.time()
    start = since if since is not None else end - 30 * 86400
    await asyncio.to_thread(rate_pending, svc.db, svc.prices)
    return await asyncio.to_thread(kpis, svc.db, svc.prices, start, end, top)


@router.get("/reconcile")
@requires(P.KPIS_READ)
async def reconcile(svc: Svc) -> dict[str, Any]:
    """Ledger against each running replica's own counters, and invoices against the ledger."""
    replicas = [r for r in svc.deployments.all_replicas() if r.state is ReplicaState.READY]
    per_replica = await asyncio.gather(*(replica_drift(svc.http, svc.db, r) for r in replicas))
    invoices = await asyncio.to_thread(invoice_drift, svc.db)
    ok = all(x["status"] != "drift" for x in [*per_replica, *invoices])
    return {"ok": ok, "replicas": list(per_replica), "invoices": invoices}
