"""Drill: the smaller findings of issue 14 (5, 6 and 7), tried from outside.

Against a real `tokenmill up` (real llama.cpp, SmolLM2) on 127.0.0.1:
- a request of 100,000 tiny messages, and the largest single prompt the body limit lets in:
  how long until the answer, and what the engine spent (finding 5: at 9c1dbe9 the first kept
  the engine busy 398 s and was recorded as a 400 with 0 tokens);
- a tenant-admin key with a budget, rate limits, a concurrency limit, an expiry and allow-lists
  tries to mint keys beyond each (finding 6: at 9c1dbe9 every one was granted);
- the modes of what `up` wrote, and of a credentials file left at 0644 that `tokenmill login`
  then rewrites, and price
  rules for an empty tenant and from 1970 (finding 7).

    .venv/bin/python benchmarks/drills/grants_and_bounds.py

Prints JSON; exits 1 if any of them goes through.
"""

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tokenmill.testing import ADMIN_KEY, ServerProcess

MODEL = "smollm2-135m"


def post(srv: ServerProcess, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(srv.url + path, json=body, headers=headers, timeout=600)


def big_requests(srv: ServerProcess) -> dict[str, Any]:
    key = srv.new_tenant_key("bounds")
    out: dict[str, Any] = {}
    cases = {
        "100000_messages": [{"role": "user", "content": "a"}] * 100_000,
        "one_prompt_at_the_body_limit": [{"role": "user", "content": "word " * 800_000}],
    }
    for name, messages in cases.items():
        started = time.monotonic()
        resp = post(srv, key, "/v1/chat/completions", {"model": MODEL, "messages": messages})
        error = resp.json().get("error") or {}
        out[name] = {
            "status": resp.status_code,
            "code": error.get("code"),
            "answered_in_s": round(time.monotonic() - started, 2),
        }
    time.sleep(1.0)  # the ledger writer's batch
    rows = [r for r in srv.usage() if r["tenant"] == "bounds"]
    out["ledger"] = rows[0] if rows else {"requests": 0}
    return out


def grants(srv: ServerProcess) -> dict[str, Any]:
    srv.admin("POST", "/admin/tenants", json={"name": "granter"})
    ends = datetime.now(UTC) + timedelta(days=1)
    holder = srv.new_key(
        "granter", role="tenant-admin", budget_tokens=100, rpm=2, concurrency=1,
        expires_at=ends.isoformat(), models=[MODEL], tools=["search"],
    )  # fmt: skip
    beyond = {
        "budget_tokens": {"budget_tokens": 1_000_000},
        "rpm": {"rpm": 1000},
        "concurrency": {"concurrency": 64},
        "expires_at": {"expires_at": (ends + timedelta(days=365)).isoformat()},
        "models": {"models": [MODEL, "gpt-4o"]},
        "tools": {"tools": ["search", "shell"]},
    }
    out: dict[str, Any] = {}
    for field, extra in beyond.items():
        body = {"tenant": "granter", "role": "tenant-admin", **extra}
        resp = post(srv, holder, "/admin/keys", body)
        out[field] = f"{resp.status_code} {(resp.json().get('error') or {}).get('param')}"
    plain = post(srv, holder, "/admin/keys", {"tenant": "granter", "role": "tenant-admin"})
    [view] = [k for k in srv.admin("GET", "/admin/keys")["data"] if k["id"] == plain.json()["id"]]
    out["unset_fields_inherit"] = {k: view[k] for k in ("budget_tokens", "rpm", "concurrency",
                                                        "models", "tools")}  # fmt: skip
    return out


def prices(srv: ServerProcess) -> dict[str, Any]:
    out = {}
    refused = {"empty_tenant": {"tenant": ""}, "from_1970": {"effective_from": "1970-01-01"}}
    for name, extra in refused.items():
        body = {"model": MODEL, "input": "0.02", "source": "drill", **extra}
        resp = post(srv, ADMIN_KEY, "/admin/prices", body)
        out[name] = f"{resp.status_code} {(resp.json().get('error') or {}).get('param')}"
    return out


def modes(data: Path) -> dict[str, str]:
    seen: dict[str, str] = {".": oct(stat.S_IMODE(data.stat().st_mode))}
    for root, dirs, files in os.walk(data):
        for name in dirs + files:
            path = Path(root) / name
            if path.name in ("server.out", "cli-config"):
                continue  # the harness's own, not TokenMill's (the file in it is checked)
            seen[str(path.relative_to(data))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return seen


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tm-grants-") as tmp:
        data = Path(tmp) / "data"
        config = data / "cli-config"
        config.mkdir(parents=True)
        (config / "credentials.json").write_text("{}")
        (config / "credentials.json").chmod(0o644)
        srv = ServerProcess(data).start()
        try:
            result = {"requests": big_requests(srv), "grants": grants(srv), "prices": prices(srv)}
            login = [sys.executable, "-m", "tokenmill", "login", "--url", srv.url,
                     "--key", ADMIN_KEY]  # fmt: skip
            subprocess.run(login, env=srv.env, capture_output=True, check=True, timeout=60)
        finally:
            srv.stop()
        result["files"] = modes(data)
    print(json.dumps(result, indent=2))
    leaks = [
        *(k for k, v in result["grants"].items() if k != "unset_fields_inherit" and
          not v.startswith("403")),
        *(k for k, v in result["prices"].items() if not v.startswith("400")),
        *(k for k in ("100000_messages",) if result["requests"][k]["status"] == 200),
        *(p for p, m in result["files"].items() if int(m, 8) & 0o077),
    ]  # fmt: skip
    if leaks:
        print(f"went through: {leaks}", file=sys.stderr)
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
