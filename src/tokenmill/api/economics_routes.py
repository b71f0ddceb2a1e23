"""The economics view: cost per token, margin, utilisation and energy of the running fleet."""

import asyncio
import time
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from tokenmill.api.admin_routes import P, Svc, admin
from tokenmill.api.auth import requires
from tokenmill.api.billing_routes import LAST_SECOND
from tokenmill.billing.rating import rate_pending
from tokenmill.core.errors import InvalidRequest, Unavailable
from tokenmill.economics import planner
from tokenmill.economics.default_node import nodes_or_default
from tokenmill.economics.models import ModelError, find_model
from tokenmill.economics.nodes import NodeConfigError
from tokenmill.economics.planner import Demand, PlanError, PlanOptions, Slo
from tokenmill.economics.planner_view import view

router = APIRouter(prefix="/admin", tags=["economics"], dependencies=[Depends(admin)])
DEFAULT_WINDOW_S = 86400.0
RECENT_S = 2 * 3600.0  # the window's not yet final hours (economics/hourly.py SETTLE_S)


@router.get("/economics")
@requires(P.KPIS_READ)
async def fleet_economics(
    svc: Svc,
    since: Annotated[float | None, Query(ge=0, le=LAST_SECOND)] = None,
    until: Annotated[float | None, Query(ge=0, le=LAST_SECOND)] = None,
) -> dict[str, Any]:
    """Cost per 1M tokens by node, model, replica and tenant; margin against the price book;
    utilisation and unsold capacity; energy per token; payback and ROI per node. Default
    window: the last 24 hours, or since this gateway started if that is later."""
    end = until if until is not None else time.time()
    start = since if since is not None else max(end - DEFAULT_WINDOW_S, svc.started_at)
    if end <= start:
        raise InvalidRequest(f"the window must end after it starts (since {start}, until {end})")
    path, name = svc.settings.economics_path, svc.settings.node_name
    try:
        # No node file: this machine, costed by a labelled default estimate (default_node.py).
        nodes, origin = await asyncio.to_thread(nodes_or_default, path, name)
    except NodeConfigError as exc:
        raise Unavailable(f"the node cost file is invalid: {exc}", code="misconfigured") from None
    # Usage is priced as it arrives, and the sweep retries what failed within a minute; the
    # recent part of the window is priced now so the report has it all (rating is idempotent).
    await asyncio.to_thread(rate_pending, svc.db, svc.prices, max(start, end - RECENT_S))
    hours = svc.economics_hours
    report = await asyncio.to_thread(hours.report, nodes, start, end, svc.power_of)
    return report | origin


@router.get("/plan")
@requires(P.KPIS_READ)
async def capacity_plan(
    model: Annotated[str, Query(min_length=1, max_length=64)],
    rate: Annotated[float | None, Query(gt=0, le=1e6)] = None,
    tokens_per_day: Annotated[float | None, Query(gt=0, le=1e15)] = None,
    input_tokens: Annotated[int, Query(ge=1, le=10_000_000)] = 1000,
    output_tokens: Annotated[int, Query(ge=1, le=10_000_000)] = 200,
    ttft_ms: Annotated[float, Query(gt=0, le=600_000)] = 2000.0,
    tpot_ms: Annotated[float, Query(gt=0, le=60_000)] = 100.0,
    price: Annotated[Decimal | None, Query(ge=0, le=1_000_000)] = None,
    acquire: Literal["rented", "owned"] = "rented",
    facility: Annotated[str, Query(max_length=64)] = "us-industrial",
) -> dict[str, Any]:
    """`tokenmill plan --json` for a reference model: which accelerators in the catalog serve
    the demand within the latency targets, how many, at what cost per 1M tokens."""
    if (rate is None) == (tokens_per_day is None):
        raise InvalidRequest("give the demand as rate (requests/s) or tokens_per_day, not both")
    try:
        ref = find_model(model)
        demand = Demand(input_tokens, output_tokens, rate, tokens_per_day)
        opts = PlanOptions(price_per_million=price, facility=facility, acquire=acquire)
        slo = Slo(ttft_ms / 1000, tpot_ms / 1000)
        result = await asyncio.to_thread(planner.plan, ref, demand, slo, opts)
    except (PlanError, ModelError) as exc:
        raise InvalidRequest(str(exc)) from None
    return view(result)
