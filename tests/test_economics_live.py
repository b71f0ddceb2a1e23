"""Live economics on the real CPU replica: after a bounded load, the report's cost per 1M
tokens follows from the inputs it shows, and its margin from the price book."""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx

from tokenmill.testing import ADMIN_KEY, ServerProcess

NODE_FILE = """
[node.local]
facility = "us-industrial"
power_w = 30
idle_w = 10
deployments = ["*"]
fixed_opex_per_hour = "0.01"
cost = { mode = "owned", capex = "1500", years = 4, rate = "0.08" }
"""


def _load(server: ServerProcess, key: str, n: int) -> None:
    def one(i: int) -> None:
        body = {"model": "smollm2-135m", "max_tokens": 16,
                "messages": [{"role": "user", "content": f"Say something about {i}."}]}  # fmt: skip
        r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        r.raise_for_status()

    with ThreadPoolExecutor(3) as pool:  # overlapping requests: the busy time is shared
        list(pool.map(one, range(n)))


def _economics(server: ServerProcess, since: float, until: float) -> dict[str, Any]:
    report: dict[str, Any] = server.admin(
        "GET", "/admin/economics", params={"since": since, "until": until}
    )
    return report


def test_live_cost_per_token_on_the_real_replica(
    server: ServerProcess, tenant_key: tuple[str, str]
) -> None:
    tenant, key = tenant_key
    node_file = server.data_dir / "economics.toml"
    node_file.unlink(missing_ok=True)
    since = time.time()
    _load(server, key, 6)
    [usage] = server.tenant_usage(tenant, 6)
    until = time.time() + 0.5

    tokens = usage["prompt_tokens"] + usage["completion_tokens"]

    # No node file: this machine is costed by a default estimate, which says so, and says
    # which file replaces it.
    bare = _economics(server, since, until)
    (default,) = bare["nodes"]
    assert default["node"] == "local" and default["tokens"] == tokens
    assert default["cost_estimated"] is True
    assert default["cost_basis"].startswith("default estimate")
    assert default["inputs"]["acquisition"]["mode"] == "rented" and Decimal(default["cost"]) > 0
    assert bare["without_node"] == [] and "absent" in bare["node_file"]
    assert bare["default_node"]["estimate"] is True
    assert f"write {node_file}" in bare["default_node"]["replace"]
    cmd = [sys.executable, "-m", "tokenmill", "report", "economics", "--hours", "1"]
    narrow = {**server.env, "COLUMNS": "80"}
    shown = subprocess.run(cmd, capture_output=True, text=True, env=narrow, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "is a default estimate" in " ".join(shown.stdout.split()) and "…" not in shown.stdout

    # The operator's node file replaces the estimate.
    node_file.write_text(NODE_FILE)
    report = _economics(server, since, until)
    (node,) = report["nodes"]
    assert node["tokens"] == tokens
    assert node["cost_estimated"] is False and report["default_node"] is None
    assert node["inputs"]["acquisition"]["mode"] == "owned"
    inputs = node["inputs"]
    assert 0 < inputs["busy_s"] <= inputs["window_s"] == until - since
    assert node["utilisation"] == inputs["busy_s"] / inputs["window_s"]
    # The shown inputs give the figures: hour cost x window = cost; cost / tokens = per 1M.
    hour = inputs["hour_cost"]
    parts = sum(Decimal(hour[k]) for k in ("capital", "energy", "fixed_opex"))
    assert Decimal(hour["total"]) == parts  # shown parts add up to the shown total
    expected = Decimal(hour["total"]) * Decimal(repr(inputs["window_s"])) / 3600
    assert abs(Decimal(node["cost"]) - expected) <= Decimal("0.000002")
    per_million = Decimal(node["cost"]) * 1_000_000 / tokens
    assert abs(Decimal(node["cost_per_1m_tokens"]) - per_million) <= Decimal("0.01")
    sold_and_unsold = Decimal(node["cost_sold"]) + Decimal(node["unsold_capacity"])
    assert sold_and_unsold == Decimal(node["cost"])
    # No power meter on this VM: the draw is an estimate and says so.
    assert node["energy"]["estimated"] is True and "estimate" in node["energy"]["basis"]
    assert 10 <= node["energy"]["watts"] <= 30 and node["energy"]["joules_per_token_it"] > 0

    # The tenant's margin is its rated revenue (the price book) less its attributed cost.
    (row,) = [r for r in report["by_tenant"] if r["tenant"] == tenant]
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    kpis = server.admin("GET", "/admin/kpis", params={"since": since, "until": until})
    (earned,) = [t["revenue"] for t in kpis["top_tenants"] if t["tenant"] == tenant]
    assert Decimal(row["revenue"]) == Decimal(earned) > 0
    assert Decimal(row["gross_margin"]) == Decimal(row["revenue"]) - Decimal(row["cost"])
    assert Decimal(row["cost"]) == Decimal(row["input_cost"]) + Decimal(row["output_cost"])
    assert Decimal(row["input_cost"]) > 0 and Decimal(row["output_cost"]) > 0

    # The same through the CLI, as an operator reads it.
    wide = {**server.env, "COLUMNS": "200"}
    shown = subprocess.run(cmd, capture_output=True, text=True, env=wide, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "hour cost = capital" in shown.stdout and "(estimate)" in shown.stdout
    as_json = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=server.env)
    assert json.loads(as_json.stdout)["nodes"][0]["node"] == "local"


def test_a_broken_node_file_is_reported_not_guessed(server: ServerProcess) -> None:
    node_file = server.data_dir / "economics.toml"
    node_file.write_text('[node.local]\nfacility = "us-industrial"\ncost = { mode = "free" }\n')
    try:
        r = httpx.get(server.url + "/admin/economics", timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
        assert r.status_code == 503
        assert "node.local.cost.mode" in r.json()["error"]["message"]
    finally:
        node_file.unlink()
