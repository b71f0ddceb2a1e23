"""`POST /admin/deployments?dry_run=true`: where a deployment's replicas would go on the
fleet's nodes, and why every other node and device cannot take one; nothing is created.

The fleet today is the node TokenMill runs on (`fleet.discovery.local_inventory`). What the
deployments already running hold there counts against it, sized the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tokenmill.api.admin_bodies import DeploymentIn
from tokenmill.core.errors import InvalidRequest
from tokenmill.economics.demand import GB, gguf_demand
from tokenmill.engines.base import EngineAdapter, ReplicaSpec
from tokenmill.engines.registry import get_adapter
from tokenmill.fleet.inventory import NodeInventory
from tokenmill.fleet.placement import Demand, Held, Option, Placement, place

# llama-server keeps evicted prompts in host RAM up to --cache-ram, 8192 MiB unless set (its
# startup log: "prompt cache is enabled, size limit: 8192 MiB"); the option cache_ram_mib sets
# it. Counted as the engine's overhead: it is a limit the replica may grow to.
LLAMACPP_CACHE_RAM_MIB = 8192
# llama.cpp's compute and output buffers: 21.7 MiB for SmolLM2-135M at 8192 tokens (its log,
# on this project's machine, 2026-12); larger models need more. A floor, not a fit.
LLAMACPP_BUFFERS_GB = 0.1


def plan(body: DeploymentIn, views: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The dry run's answer; `views` are the running deployments (`Deployments.views()`).
    Blocking: it reads the model file and runs the accelerator detectors."""
    from tokenmill.fleet.discovery import local_inventory

    if body.engine == "openai":
        return {
            "dry_run": True,
            "name": body.name,
            "ok": True,
            "placement": None,
            "note": f"engine {body.engine} serves from an endpoint elsewhere: nothing to place",
        }
    if body.engine != "llamacpp":  # vLLM & co.: model_demand() from the catalog, to come
        raise InvalidRequest(f"a dry run sizes llamacpp deployments only, not {body.engine}")
    adapter = get_adapter(body.engine)
    spec = ReplicaSpec(
        body.name, 0, model_path=_resolved(body.model_path), options=dict(body.options)
    )
    try:
        adapter.validate(spec)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="engine") from None
    try:
        demand = _demand(adapter, spec)
    except ValueError as exc:  # an option that is no number, or out of range
        raise InvalidRequest(f"cannot size a replica: {exc}", param="options") from None
    demand = replace(demand, replicas=max(body.replicas, body.max_replicas or 0, 1))
    node = local_inventory()
    # validate() found the file here: this node holds it.
    node = replace(node, models_cached=node.models_cached | {demand.model_file or ""})
    placement = place(demand, [node], _held(node, views))
    return {"dry_run": True, "name": body.name, **view(placement, [node])}


def _resolved(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def _demand(adapter: EngineAdapter, spec: ReplicaSpec) -> Demand:
    """A llama.cpp replica: its GGUF file, KV for every slot's context (llama-server allocates
    --ctx-size = parallel x ctx_per_slot up front, which is its `cache_tokens`), in RAM: the
    local launcher starts CPU builds."""
    assert spec.model_path is not None  # validate() refused it otherwise
    cache_ram_gb = int(spec.options.get("cache_ram_mib", LLAMACPP_CACHE_RAM_MIB)) * 2**20 / GB
    demand = gguf_demand(
        Path(spec.model_path),
        context_tokens=adapter.cache_tokens(spec),
        overhead_gb=LLAMACPP_BUFFERS_GB + cache_ram_gb,
        names=(spec.deployment,),
    )
    note = (
        f"overhead: {LLAMACPP_BUFFERS_GB} GB of compute buffers + prompt cache up to "
        f"{cache_ram_gb:.1f} GB (option cache_ram_mib)"
    )
    return replace(demand, model=spec.deployment, resource="CPU", notes=(*demand.notes, note))


def _held(node: NodeInventory, views: Iterable[dict[str, Any]]) -> list[Held]:
    """The RAM each running llama.cpp replica holds, sized as a new one would be."""
    held = []
    adapter = get_adapter("llamacpp")
    for d in views:
        if d["engine"] != "llamacpp" or not d["model_path"] or not Path(d["model_path"]).is_file():
            continue
        spec = ReplicaSpec(d["name"], 0, model_path=d["model_path"], options=dict(d["options"]))
        try:
            running = _demand(adapter, spec)
        except ValueError:  # options it started with anyway; nothing to count by
            continue
        gb = running.total_gb + running.overhead_gb
        held += [Held(node.name, "CPU", gb, model=d["name"])] * int(d["replicas"])
    return held


def view(placement: Placement, nodes: list[NodeInventory]) -> dict[str, Any]:
    """The placement as JSON: per replica where it goes (or why nowhere), every rejection."""
    demand = placement.demand
    seen: dict[tuple[str, str | None, str], None] = {}
    for r in placement.rounds:
        seen.update({(j.node, j.device, j.reason): None for j in r.rejections})
    return {
        "ok": placement.ok,
        "reason": placement.reason,
        "demand": {k: v for k, v in asdict(demand).items() if k != "accelerators"}
        | {"accelerators": sorted(demand.accelerators), "notes": list(demand.notes)},
        "nodes": [
            {
                "name": n.name,
                "address": n.address,
                "cpu": n.cpu.model,
                "memory_gb": n.cpu.memory_gb,
                "devices": [d.model for d in n.devices],
            }
            for n in nodes
        ],
        "replicas": [
            {
                "replica": r.replica + 1,
                **_option(r.chosen),
                "also_fit": [_option(o) for o in r.also_fit],
            }
            if r.chosen is not None
            else {"replica": r.replica + 1, "reason": r.reason}
            for r in placement.rounds
        ],
        "rejections": [{"node": n, "device": d, "reason": why} for n, d, why in seen],
    }


def _option(o: Option) -> dict[str, Any]:
    return {
        "node": o.node,
        "target": o.target,
        "devices": list(o.devices),
        "tensor_parallel": o.tensor_parallel,
        "gb_per_device": round(o.gb_per_device, 3),
        "hardware": o.hardware,
        "score": o.score,
        "cached": o.cached,
    }
