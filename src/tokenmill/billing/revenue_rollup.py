"""The revenue rollup: charges summed per hour and per day (the usage rollup's buckets), tenant,
key, model, agent and currency, in exact pico-units. Rating adds the charges it inserts in the
same transaction, and only those, so it equals `usage_charges` exactly."""

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import Connection

from tokenmill.metering.rollup import GRAINS, bucket_start
from tokenmill.store.tables import RevenueRollup
from tokenmill.store.upserts import add_sums


class Requester(Protocol):
    """Who made the request a charge is for (a usage record or ledger row has it)."""

    @property
    def key_id(self) -> str: ...
    @property
    def agent(self) -> str | None: ...


def revenue_rows(
    charges: Iterable[Mapping[str, Any]], who: Mapping[str, Requester]
) -> list[tuple[Any, ...]]:
    """Charges (usage_charges rows) summed into rollup rows (tuples in the table's column
    order), both grains; `who` by request id."""
    sums: dict[tuple[object, ...], int] = {}
    for c in charges:
        by = who[c["request_id"]]
        for grain in GRAINS:
            key = (grain, bucket_start(c["created_at"], grain), c["tenant"], by.key_id,
                   c["model"], by.agent or "", c["currency"])  # fmt: skip
            sums[key] = sums.get(key, 0) + c["pico"]
    return [(*key, pico) for key, pico in sums.items()]


def add_revenue(
    conn: Connection, charges: Iterable[Mapping[str, Any]], who: Mapping[str, Requester]
) -> None:
    """Add charges just inserted, in the caller's transaction."""
    add_sums(conn, RevenueRollup, revenue_rows(charges, who))
