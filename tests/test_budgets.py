"""Money budgets against the real engine: concurrent requests cannot spend past a budget,
the one that would cross it gets 429, the soft limit alerts once; prepaid credits hold too."""

import asyncio
import subprocess
import sys
from decimal import Decimal

import httpx
import pytest

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"


def _spent(server: ServerProcess, tenant: str, requests: int) -> Decimal:
    """What the ledger says the tenant's usage cost at its prices, exactly."""
    (row,) = server.tenant_usage(tenant, requests)
    rules = {
        r["token_class"]: Decimal(r["price_per_1m"])
        for r in server.admin("GET", "/admin/prices")["data"]
        if r["model"] == MODEL and r["tenant"] == tenant
    }
    return (
        Decimal(row["prompt_tokens"] - row["cached_tokens"]) * rules["input"]
        + Decimal(row["cached_tokens"]) * rules["cached_input"]
        + Decimal(row["completion_tokens"]) * rules["output"]
    ) / 10**6


async def _burst(server: ServerProcess, key: str, n: int) -> list[httpx.Response]:
    body = {
        "model": MODEL,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Count to ten."}],
    }
    async with httpx.AsyncClient(
        base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        return await asyncio.gather(
            *(http.post("/v1/chat/completions", json=body) for _ in range(n))
        )


@pytest.fixture
def priced(server: ServerProcess, tenant_key) -> tuple[str, str]:
    """A tenant with a contract price high enough for a small budget to bite in a few
    requests: 100 per 1M input tokens, 200 per 1M output."""
    tenant, key = tenant_key
    server.admin(
        "POST",
        "/admin/prices",
        json={
            "model": MODEL,
            "tenant": tenant,
            "input": "100",
            "cached_input": "100",
            "output": "200",
            "source": "test contract",
        },
    )
    return tenant, key


async def test_concurrent_requests_never_spend_past_the_budget(server: ServerProcess, priced):
    tenant, key = priced
    budget = Decimal("0.05")  # about ten of these requests
    server.admin(
        "POST",
        "/admin/budgets",
        json={"holder": f"tenant:{tenant}", "limit": str(budget), "period": "day"},
    )
    results = await _burst(server, key, 40)
    served = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 429]
    assert served and refused and len(served) + len(refused) == 40
    assert {r.json()["error"]["code"] for r in refused} == {"budget_exceeded"}
    # then one at a time, as reservations settle to less than they held, until refused
    for _ in range(30):
        (last,) = await _burst(server, key, 1)
        if last.status_code != 200:
            break
        served.append(last)
    assert last.status_code == 429 and "budget exhausted" in last.json()["error"]["message"]
    spent = _spent(server, tenant, len(served))
    print(
        f"budget {budget}: {len(served)} served, {len(refused)} of 40 refused at once, "
        f"spent {spent}"
    )
    assert 0 < spent <= budget  # tolerance 0: never past it
    alerts = [
        r
        for r in server.audit_records()
        if r["action"] == "budget.soft_limit" and r["detail"]["holder"] == f"tenant:{tenant}"
    ]
    assert len(alerts) == 1  # once per period, at 80%


async def test_prepaid_credits_are_a_hard_ceiling(server: ServerProcess, priced):
    tenant, key = priced
    granted = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tokenmill", "budgets", "grant", tenant, "--amount", "0.02"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert granted.returncode == 0, granted.stderr
    results = await _burst(server, key, 12)
    served = sum(r.status_code == 200 for r in results)
    assert 0 < served < 12
    assert _spent(server, tenant, served) <= Decimal("0.02")
    budgets = server.admin("GET", "/admin/budgets")["data"]
    mine = next(b for b in budgets if b["holder"] == f"tenant:{tenant}")
    assert Decimal(mine["used"]) <= Decimal("0.02")
