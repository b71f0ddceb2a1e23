"""The economics view: cost per token, margin, utilisation and energy of the running fleet."""

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from tokenmill.api.admin_routes import P, Svc, admin
from tokenmill.api.auth import requires
from tokenmill.api.billing_routes import LAST_SECOND
from tokenmill.billing.rating import rate_pending
from tokenmill.core.errors import InvalidRequest, Unavailable
from tokenmill.economics.default_node import nodes_or_default
from tokenmill.economics.live import economics
from tokenmill.economics.nodes import NodeConfigError

router = APIRouter(prefix="/admin", tags=["economics"], dependencies=[Depends(admin)])
DEFAULT_WINDOW_S = 86400.0


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
    await asyncio.to_thread(rate_pending, svc.db, svc.prices)
    report = await asyncio.to_thread(economics, svc.db, nodes, start, end, svc.power_of)
    return report | origin
