"""Does an engine binary really decode? Start it on a model, ask for a few tokens, stop it.

A build can link, start and even load the model, then die at its first matrix multiply (an
instruction path the CPU or its hypervisor does not allow: llama.cpp's AMX kernels crashed so
on a Sapphire Rapids VM). Only a real decode shows it. `scripts/build-llama-server.sh` runs
this on every build and every cached binary; the supervisor does the same for each replica.

    python -m tokenmill.runtime.smoke [--binary PATH] [--model PATH]
"""

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.llamacpp import LlamaCppAdapter, find_llama_server
from tokenmill.runtime.crash import crash_report
from tokenmill.runtime.standalone import EngineDied, StandaloneEngine, standalone_llama_server


class SmokeFailed(Exception):
    pass


def decoded_tokens(answer: Any) -> int:
    """Tokens an OpenAI-shaped completion says it generated; 0 if it is not one."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    completion = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return completion if isinstance(completion, int) else 0


def run(binary: str, model: Path) -> tuple[int, str | None]:
    """Decode a few tokens of `model` on `binary`: (tokens, the CPU variant it loaded), or
    SmokeFailed."""
    spec = ReplicaSpec(deployment="smoke", index=0, model_path=str(model),
                       options={"parallel": 1, "ctx_per_slot": 512})  # fmt: skip
    smoke = LlamaCppAdapter().smoke_request(spec)
    try:
        with standalone_llama_server(spec, binary=binary) as engine:
            return _decode(engine, *smoke), engine.cpu_variant()
    except EngineDied as exc:
        raise SmokeFailed(str(exc)) from None


def _decode(engine: StandaloneEngine, path: str, body: dict[str, Any]) -> int:
    try:
        resp = httpx.post(engine.base_url + path, json=body, headers=engine.headers, timeout=60)
    except httpx.HTTPError as exc:
        try:  # a crash closes the socket a moment before the process is gone
            code: int | None = engine.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            raise SmokeFailed(crash_report(code, engine.log)) from None
        raise SmokeFailed(f"no answer to the test decode: {exc!r}") from None
    tokens = decoded_tokens(resp.json()) if resp.status_code == 200 else 0
    if tokens <= 0:
        raise SmokeFailed(f"the test decode answered {resp.status_code}: {resp.text[:300]}")
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that llama-server decodes here.")
    parser.add_argument("--binary", help="llama-server to test (default: the one TokenMill uses)")
    parser.add_argument("--model", type=Path, help="GGUF model (default: the shipped SmolLM2)")
    args = parser.parse_args(argv)
    binary = args.binary or find_llama_server()
    model = args.model or _default_model()
    if binary is None or model is None:
        print("smoke test: no llama-server or no model to test with", file=sys.stderr)
        return 2
    try:
        tokens, variant = run(binary, model)
    except SmokeFailed as exc:
        print(f"SMOKE TEST FAILED: {binary} on {model.name}: {exc}", file=sys.stderr)
        return 1
    on = f" on {variant}" if variant else ""
    print(f"smoke test passed: decoded {tokens} tokens of {model.name}{on}")
    return 0


def _default_model() -> Path | None:
    from tokenmill.bootstrap import default_model_path

    return default_model_path()


if __name__ == "__main__":
    sys.exit(main())
