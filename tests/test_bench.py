"""`tokenmill bench` against the real server: what it reports agrees with the ledger."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

from tokenmill.bench.workload import from_trace, synthetic, words
from tokenmill.scheduling.traces import TraceRow
from tokenmill.testing import ServerProcess


def test_prompts_are_reproducible_and_prefixes_shared():
    assert words(7, 20) == words(7, 20) != words(8, 20)
    rows = [TraceRow(0.0, 100, 5, (1, 2)), TraceRow(0.5, 100, 5, (1, 3))]
    a, b = from_trace(rows, block_tokens=8, tenants=2)
    first, second = a.messages[0]["content"], b.messages[0]["content"]
    assert first.split()[:8] == second.split()[:8] and first != second  # block 1 is shared
    assert (a.tenant, b.tenant, b.at) == ("tenant-1", "tenant-1", 0.5)


def test_synthetic_tenants_send_in_proportion_with_their_own_system_prompt():
    reqs = synthetic({"big": 3, "small": 1}, requests=400, rate=10, system_tokens=50)
    assert 0.68 <= sum(r.tenant == "big" for r in reqs) / 400 <= 0.82
    systems = {r.tenant: r.messages[0]["content"] for r in reqs}
    assert len(set(systems.values())) == 2
    assert all(r.messages[0]["content"] == systems[r.tenant] for r in reqs)
    assert all(b.at > a.at for a, b in itertools.pairwise(reqs))


def test_bench_reports_what_the_ledger_metered(server: ServerProcess, tmp_path: Path):
    keys = {name: server.new_tenant_key(f"bench-{name}") for name in ("heavy", "light")}
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "tokenmill", "bench", server.url + "/v1",
           "--model", "smollm2-135m", "--tenants", "heavy=3,light=1",
           "--tenant-keys", ",".join(f"{n}={k}" for n, k in keys.items()),
           "--requests", "12", "--rate", "6", "--system-tokens", "60", "--max-tokens", "8",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=server.env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())["summary"]
    assert summary["ok"] == summary["requests"] == 12 and not summary["errors"]
    assert summary["ttft_s"]["p50"] <= summary["e2e_s"]["p50"]
    for name, seen in summary["tenants"].items():
        [row] = server.tenant_usage(f"bench-{name}", seen["ok"])
        assert row["requests"] == seen["ok"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            seen["prompt_tokens"], seen["completion_tokens"],
        )  # fmt: skip
