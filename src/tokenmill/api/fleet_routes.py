"""The fleet at a glance: the nodes (what discovery last found on each) and the replicas the
controllers wrote, with whether their controller still owns them."""

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Request

from tokenmill.api.admin_routes import P, Svc, admin
from tokenmill.api.auth import requires
from tokenmill.fleet.discovery import to_json
from tokenmill.fleet.watch import NodeWatch
from tokenmill.runtime.instances import read_instances

router = APIRouter(prefix="/admin", tags=["fleet"], dependencies=[Depends(admin)])


@router.get("/fleet")
@requires(P.DEPLOYMENTS_READ)
async def fleet(request: Request, svc: Svc) -> dict[str, Any]:
    watch: NodeWatch = request.app.state.node_watch
    if watch.latest is None:
        await watch.refresh()
    found = watch.latest
    assert found is not None  # refreshed just above
    replicas = await asyncio.to_thread(read_instances, svc.db)
    node = json.loads(to_json(found))
    return {"nodes": [node], "replicas": replicas}
