"""The fleet at a glance: the nodes (what discovery last found on each: this one, and under the
Ray runtime every Ray node's agent), the replicas the controllers wrote, with whether their
controller still owns them, and the nodes drained."""

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from tokenmill.api.admin_bodies import DrainIn
from tokenmill.api.admin_routes import P, Svc, _note, admin
from tokenmill.api.auth import requires
from tokenmill.fleet.discovery import to_json
from tokenmill.fleet.watch import NodeWatch, fleet_nodes
from tokenmill.runtime.instances import read_instances

router = APIRouter(prefix="/admin", tags=["fleet"], dependencies=[Depends(admin)])


@router.get("/fleet")
@requires(P.DEPLOYMENTS_READ)
async def fleet(request: Request, svc: Svc) -> dict[str, Any]:
    watch: NodeWatch = request.app.state.node_watch
    if watch.latest is None:
        await watch.refresh()
    ray_nodes = request.app.state.ray_nodes  # under --runtime ray: each Ray node's own report
    remote = ray_nodes.reports() if ray_nodes is not None else []
    replicas = await asyncio.to_thread(read_instances, svc.db)
    return {
        "nodes": [json.loads(to_json(found)) for found in fleet_nodes(watch.latest, remote)],
        "replicas": replicas,
        "drained": svc.deployments.cordons.views(),
    }


NodeName = Annotated[str, Path(min_length=1, max_length=255)]


@router.post("/nodes/{node}/drain", status_code=202)
@requires(P.DEPLOYMENTS_WRITE)
async def drain_node(
    node: NodeName, svc: Svc, request: Request, body: DrainIn | None = None
) -> dict[str, Any]:
    """Place nothing more on the node and move its replicas elsewhere; `moving` shows how far."""
    reason = (body or DrainIn()).reason
    _note(request, f"node:{node}", event="node.drained", reason=reason)
    return await svc.deployments.drain_node(node, reason)


@router.delete("/nodes/{node}/drain")
@requires(P.DEPLOYMENTS_WRITE)
async def undrain_node(node: NodeName, svc: Svc, request: Request) -> dict[str, Any]:
    _note(request, f"node:{node}", event="node.undrained")
    return await svc.deployments.undrain_node(node)


@router.get("/nodes/{node}")
@requires(P.DEPLOYMENTS_READ)
async def node_state(node: NodeName, svc: Svc) -> dict[str, Any]:
    """Whether the node is drained, the replicas still on it, and the moves off it."""
    return svc.deployments.node_view(node)
