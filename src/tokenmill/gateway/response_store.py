"""Responses kept for `previous_response_id` and `GET /v1/responses/{id}`.

In this process's memory only: never written to disk, gone at restart, not shared between
gateways. A response is kept unless its request said `store: false`, for at most TTL_S, per
tenant (another tenant's id is unknown here). Bytes are capped per tenant and in all: past a
cap the oldest entries go first. An entry's size counts its whole conversation, although
entries of one chain share their earlier turns, so real use stays under the caps.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

TTL_S = 3600.0
TENANT_BYTES = 32 * 2**20
TOTAL_BYTES = 256 * 2**20


@dataclass(frozen=True)
class StoredResponse:
    tenant: str
    response: dict[str, Any]  # the Response object as its client received it
    messages: list[dict[str, Any]]  # its conversation in chat form, instructions left out
    size: int
    expires: float


class ResponseStore:
    def __init__(
        self,
        ttl_s: float = TTL_S,
        tenant_bytes: int = TENANT_BYTES,
        total_bytes: int = TOTAL_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._tenant_cap = tenant_bytes
        self._total_cap = total_bytes
        self._clock = clock
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()  # oldest first
        self._by_tenant: dict[str, OrderedDict[str, None]] = {}
        self._tenant_bytes: dict[str, int] = {}
        self._total = 0

    def put(self, tenant: str, response: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
        """Keeps `response`; False when it alone is over the tenant's cap (then it is not)."""
        size = len(orjson.dumps(response)) + len(orjson.dumps(messages))
        if size > min(self._tenant_cap, self._total_cap):
            return False
        self._expire()
        while self._tenant_bytes.get(tenant, 0) + size > self._tenant_cap:
            self._drop(next(iter(self._by_tenant[tenant])))
        while self._total + size > self._total_cap:
            self._drop(next(iter(self._entries)))
        entry = StoredResponse(tenant, response, messages, size, self._clock() + self._ttl_s)
        self._entries[response["id"]] = entry
        self._by_tenant.setdefault(tenant, OrderedDict())[response["id"]] = None
        self._tenant_bytes[tenant] = self._tenant_bytes.get(tenant, 0) + size
        self._total += size
        return True

    def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        self._expire()
        entry = self._entries.get(response_id)
        return entry if entry is not None and entry.tenant == tenant else None

    def delete(self, tenant: str, response_id: str) -> bool:
        if self.get(tenant, response_id) is None:
            return False
        self._drop(response_id)
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        now = self._clock()
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.expires > now:
                return
            self._drop(oldest.response["id"])

    def _drop(self, response_id: str) -> None:
        entry = self._entries.pop(response_id)
        ids = self._by_tenant[entry.tenant]
        del ids[response_id]
        self._tenant_bytes[entry.tenant] -= entry.size
        if not ids:
            del self._by_tenant[entry.tenant], self._tenant_bytes[entry.tenant]
        self._total -= entry.size
