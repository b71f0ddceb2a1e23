"""The `tokenmill` CLI against a running server: JSON for scripts, readable errors for people."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tokenmill.testing import ServerProcess


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmill", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _json(env: dict[str, str], *args: str) -> Any:
    proc = _cli(env, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_tenants_keys_models_usage(server: ServerProcess):
    env = server.env
    assert _json(env, "tenants", "create", "cli-co")["name"] == "cli-co"
    assert "cli-co" in [t["name"] for t in _json(env, "tenants", "list")]

    issued = _json(env, "keys", "create", "--tenant", "cli-co", "--name", "ci")
    secret = issued["key"]
    assert secret.startswith(issued["prefix"]) and len(secret) > len(issued["prefix"])
    listing = _cli(env, "keys", "list", "--tenant", "cli-co", "--json")
    assert secret not in listing.stdout  # shown once, never again
    assert [k["prefix"] for k in json.loads(listing.stdout)] == [issued["prefix"]]

    [model] = [d for d in _json(env, "models", "list") if d["name"] == "smollm2-135m"]
    assert model["ready_replicas"] == model["replicas"] == 1

    resp = httpx.post(
        server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}],
              "max_tokens": 3},
        timeout=60,
    )  # fmt: skip
    usage = resp.json()["usage"]
    rows = _json(env, "usage", "--by", "tenant")["data"]
    [row] = [r for r in rows if r["tenant"] == "cli-co"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"], usage["completion_tokens"],
    )  # fmt: skip

    revoked = _json(env, "keys", "revoke", issued["id"])
    assert revoked["revoked_at"] is not None
    after = httpx.post(
        server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert after.status_code == 401  # effective on the very next request


def test_errors_are_readable(server: ServerProcess, tmp_path: Path):
    env = server.env
    _json(env, "tenants", "create", "dup-co")
    dup = _cli(env, "tenants", "create", "dup-co")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert "Traceback" not in dup.stderr + dup.stdout

    down = _cli(env, "tenants", "list", "--url", "http://127.0.0.1:1")
    assert down.returncode == 3 and "No TokenMill server" in down.stderr

    no_key = {k: v for k, v in env.items() if k != "TOKENMILL_ADMIN_KEY"}
    no_key["TOKENMILL_CONFIG_DIR"] = str(tmp_path / "empty")
    assert _cli(no_key, "tenants", "list").returncode == 2

    bad = _cli(
        env, "models", "deploy", "x", "--engine", "llamacpp", "--path", str(tmp_path / "a.gguf")
    )
    assert bad.returncode == 1 and "model file not found" in bad.stderr


def test_models_deploy_takes_engine_options(server: ServerProcess, model_path: Path):
    env = server.env
    made = _json(
        env, "models", "deploy", "opts-co", "--path", str(model_path), "--replicas", "0",
        "--min-replicas", "0", "--max-replicas", "1",  # scale to zero: nothing starts
        "--option", "ctx_per_slot=8192", "-o", "threads=2", "--option", "temp=0.5",
        "--option", "flash=true", "--option", "pooling=mean",
    )  # fmt: skip
    want = {"ctx_per_slot": 8192, "threads": 2, "temp": 0.5, "flash": True, "pooling": "mean"}
    assert made["options"] == want
    [listed] = [d for d in _json(env, "models", "list") if d["name"] == "opts-co"]
    assert listed["options"] == want
    _json(env, "models", "remove", "opts-co")

    for bad in ("ctx_per_slot", "=8192", "ctx_per_slot=", "ctx per slot=1"):
        proc = _cli(env, "models", "deploy", "bad-co", "--path", str(model_path), "--option", bad)
        assert proc.returncode == 2, proc.stderr
        assert "KEY=VALUE" in proc.stderr and "Traceback" not in proc.stderr
    twice = _cli(env, "models", "deploy", "bad-co", "--path", str(model_path),
                 "-o", "threads=1", "-o", "threads=2")  # fmt: skip
    assert twice.returncode == 2 and "twice" in twice.stderr
    assert "bad-co" not in [d["name"] for d in _json(env, "models", "list")]


def test_keys_take_a_tool_policy(server: ServerProcess):
    env = server.env
    _json(env, "tenants", "create", "policy-co")
    plain = _json(env, "keys", "create", "--tenant", "policy-co", "--name", "plain")
    agentish = _json(env, "keys", "create", "--tenant", "policy-co", "--name", "fw",
                     "--tools", "read", "--tool-policy", "drop")  # fmt: skip
    keys = {k["id"]: k for k in _json(env, "keys", "list", "--tenant", "policy-co")}
    assert keys[plain["id"]]["tool_policy"] == "refuse"  # a key's default
    assert (keys[agentish["id"]]["tools"], keys[agentish["id"]]["tool_policy"]) == (
        ["read"], "drop",
    )  # fmt: skip
