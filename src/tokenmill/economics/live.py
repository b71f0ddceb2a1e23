"""The economics report from the live system: the ledger's requests and charges, the node
file's costs, and each node's power, measured where it can be and estimated where not."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tokenmill.core import power as core_power
from tokenmill.core.power import Power
from tokenmill.economics.accounting import PowerOf, account
from tokenmill.economics.measured import Measured, RevenueKey, Served, measure
from tokenmill.economics.nodes import Node
from tokenmill.economics.time_share import Span
from tokenmill.observe.power import PowerLog
from tokenmill.store.tables import UsageCharge, UsageRow

# A request that started this long before the window may still be running inside it: the
# gateway gives up on an upstream after `upstream_timeout_s` (600 s by default).
LOOKBACK_S = 3600.0


def served_in(db: Engine, since: float, until: float) -> list[Served]:
    q = select(
        UsageRow.request_id, UsageRow.tenant, UsageRow.model, UsageRow.deployment,
        UsageRow.replica, UsageRow.created_at, UsageRow.ttft_ms, UsageRow.duration_ms,
        UsageRow.prompt_tokens, UsageRow.completion_tokens, UsageRow.queued_ms,
    ).where(UsageRow.created_at >= since - LOOKBACK_S, UsageRow.created_at < until)  # fmt: skip
    out = []
    with Session(db) as s:
        for rid, tenant, model, dep, replica, at, ttft_ms, dur_ms, p, c, queued in s.execute(q):
            end = at + dur_ms / 1000
            if end < since:
                continue
            # A replica serves a request from when it took it, not from the gateway's arrival.
            start = min(end, at + (queued or 0.0) / 1000)
            first = None if ttft_ms is None else at + ttft_ms / 1000
            out.append(Served(rid, tenant, model, dep, replica, Span(start, first, end), p, c,
                              counted=at >= since))  # fmt: skip
    return out


def revenue_in(db: Engine, since: float, until: float) -> dict[RevenueKey, int]:
    """Rated usage in the window, pico-units per (tenant, model, deployment, currency)."""
    q = (
        select(
            UsageCharge.tenant,
            UsageCharge.model,
            UsageRow.deployment,
            UsageCharge.currency,
            func.sum(UsageCharge.pico),
        )
        .join(UsageRow, UsageRow.request_id == UsageCharge.request_id)
        .where(UsageCharge.created_at >= since, UsageCharge.created_at < until)
        .group_by(UsageCharge.tenant, UsageCharge.model, UsageRow.deployment, UsageCharge.currency)
    )
    out: dict[RevenueKey, int] = defaultdict(int)
    with Session(db) as s:
        for tenant, model, dep, currency, pico in s.execute(q):
            out[(tenant, model, dep, currency)] += int(pico)
    return out


def estimated_power(
    node: Node, utilisation: float, since: float = 0.0, until: float = 0.0
) -> Power | None:
    """Idle + (full load - idle) x busy share, labelled as an estimate; the window plays no
    part beyond the utilisation measured over it."""
    if node.power_w is None or node.power_w <= 0:
        return None
    power = core_power.estimated_power(node.power_w, min(1.0, utilisation), node.idle_w)
    return Power(power.watts, True, f"{power.basis}; full load from {node.power_basis}")


def logged_or_estimated(log: PowerLog) -> PowerOf:
    """The node's logged samples where there are any (recorded under its name: this machine's,
    and under the Ray runtime each Ray node's agent's), else the estimate from the node file."""

    def power_of(node: Node, utilisation: float, since: float, until: float) -> Power | None:
        logged = log.average_watts(node.name, since, until)
        if logged is None:
            return estimated_power(node, utilisation)
        watts, estimated, basis = logged
        return Power(watts, estimated, basis)

    return power_of


def measured_in(db: Engine, nodes: Sequence[Node], since: float, until: float) -> Measured:
    return measure(served_in(db, since, until), revenue_in(db, since, until), nodes, since, until)


def economics(
    db: Engine,
    nodes: Sequence[Node],
    since: float,
    until: float,
    power_of: PowerOf = estimated_power,
) -> dict[str, Any]:
    """The report from the ledger alone (economics/hourly.py keeps closed hours' measures)."""
    return account(
        served_in(db, since, until), revenue_in(db, since, until), nodes, since, until, power_of
    )
