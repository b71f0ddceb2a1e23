"""llama.cpp's C++ `llama-server`: spawned and supervised by TokenMill.

Chosen over llama-cpp-python's Python server (see docs/engines.md): it reports usage at the end
of streams, exposes Prometheus counters to reconcile the ledger against, and serves several
requests at once from parallel slots that each keep a prompt cache.
"""

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from tokenmill.engines.base import EngineAdapter, LaunchCommand, ReplicaSpec, check_host, http_url
from tokenmill.engines.capabilities import Capabilities, from_llama_props, with_overrides
from tokenmill.engines.counters import EngineCounts, read_counts
from tokenmill.engines.matrix import matrix
from tokenmill.engines.spawned import devices_for, key_args, visible_env

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # the sdist whose vendored llama.cpp we build
# The build's kind is part of its cache path: a binary from an older, -march=native build
# (which crashed on AMX CPUs) is never picked up again.
BUILD_FLAVOR = "portable"
POOLING = ("none", "mean", "cls", "last", "rank")  # llama-server's --pooling choices


def default_build_dir() -> Path:
    """Where scripts/build-llama-server.sh keeps its build (it asks us, one place per fact)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tokenmill" / f"llama.cpp-py{LLAMA_CPP_PYTHON_VERSION}-{BUILD_FLAVOR}"


def default_binary_path() -> Path:
    return default_build_dir() / "bin" / "llama-server"


def find_llama_server() -> str | None:
    """TOKENMILL_LLAMA_SERVER, then the build cache of scripts/build-llama-server.sh, then PATH."""
    explicit = os.environ.get("TOKENMILL_LLAMA_SERVER")
    if explicit:
        return explicit
    built = default_binary_path()
    if built.exists():
        return str(built)
    return shutil.which("llama-server")


class LlamaCppAdapter(EngineAdapter):
    name = "llamacpp"
    spawns = True
    capabilities_path = "/props"
    default_parallel = 4

    def __init__(self) -> None:
        self.facts = matrix().engine(self.name)
        self.accelerators = frozenset(self.facts.accelerators)
        self.model_formats = frozenset(self.facts.model_formats)
        self.metrics_path = self.facts.metrics_path

    def validate(self, spec: ReplicaSpec) -> None:
        check_host(spec)
        if spec.devices is not None:
            devices_for(self.facts, spec)
        pooling = spec.options.get("pooling")
        if pooling is not None and pooling not in POOLING:
            raise ValueError(f"pooling must be one of {', '.join(POOLING)}; got '{pooling}'")
        if not spec.model_path:
            raise ValueError("the llamacpp engine needs --path to a .gguf model file")
        path = Path(spec.model_path)
        if not path.is_file():
            raise ValueError(f"model file not found: {path}")
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"llamacpp serves GGUF models; got '{path.name}'")

    def launch(
        self, spec: ReplicaSpec, port: int, secret: str, binary: str | None = None
    ) -> LaunchCommand:
        binary = binary or find_llama_server()
        if binary is None:
            raise ValueError(
                "llama-server not found: run `make engines` (or scripts/build-llama-server.sh) "
                "or set TOKENMILL_LLAMA_SERVER"
            )
        opts: dict[str, Any] = spec.options
        parallel = self.parallel(spec)
        ctx_per_slot = _ctx_per_slot(spec)
        flag = self.facts.flag
        argv = [
            binary,
            "--model", str(spec.model_path),
            flag("host"), spec.host,
            flag("port"), str(port),
            flag("served_name"), spec.deployment,
            "--ctx-size", str(parallel * ctx_per_slot),
            "--parallel", str(parallel),
            flag("metrics"),
            "--no-webui",
            # cpp-httplib gives each open connection a thread, idle keep-alive ones included;
            # its default (parallel + 2) starves new connections behind a pooling gateway.
            "--threads-http", str(max(32, 4 * parallel)),
        ]  # fmt: skip
        if "threads" in opts:
            argv += ["--threads", str(int(opts["threads"]))]
        if "cache_ram_mib" in opts:
            # llama.cpp also keeps evicted slot prompts in host RAM (8 GiB by default), which
            # any routing then hits; 0 leaves a replica only its slots, as KV-bound GPUs are.
            argv += ["--cache-ram", str(int(opts["cache_ram_mib"]))]
        if opts.get("embeddings"):
            argv += _embedding_args(opts, ctx_per_slot)
        # The secret goes in the environment, which only its owner can read; argv is public.
        key_argv, key_env = key_args(self.facts, secret)
        devices = {} if spec.devices is None else visible_env(spec.devices)
        return LaunchCommand(argv=argv + key_argv, env={**devices, **key_env})

    def smoke_request(self, spec: ReplicaSpec) -> tuple[str, dict[str, Any]]:
        body = {"model": spec.deployment, "prompt": "Hello", "max_tokens": 2, "temperature": 0}
        return "/completions", body

    def capabilities(self, spec: ReplicaSpec, probe: dict[str, Any] | None) -> Capabilities:
        # Before /props answered: the shipped GGUF templates mostly lack tools; say so.
        found = (
            from_llama_props(probe)
            if probe
            else Capabilities(tool_calls=False, vision=False, audio=False)
        )
        # It answers /v1/embeddings only when started for them (chat and completions either way).
        found = replace(found, embeddings=bool(spec.options.get("embeddings")))
        return with_overrides(found, spec.options)

    def cache_tokens(self, spec: ReplicaSpec) -> int:
        return self.parallel(spec) * _ctx_per_slot(spec)  # each slot keeps its last prompt

    def base_url(self, spec: ReplicaSpec, port: int | None) -> str:
        return http_url(spec.host, port) + "/v1"

    def engine_counts(self, metrics_text: str) -> EngineCounts | None:
        return read_counts(metrics_text, self.facts.counters) if self.facts.counters else None

    def prepare_stream(self, body: dict[str, Any]) -> None:
        super().prepare_stream(body)
        # Per-chunk timings carry the prompt token count, so a stream cut short by the client
        # still meters its prompt exactly.
        body["timings_per_token"] = True


def _embedding_args(opts: dict[str, Any], ctx_per_slot: int) -> list[str]:
    """`options: {"embeddings": true, "pooling": ...}`: serve /v1/embeddings. An input is
    embedded in one micro-batch, so the batch is a slot's whole context (llama.cpp's default
    512 would refuse longer inputs). Pooling left out is the model's own; a chat model's is
    usually none, which /v1/embeddings refuses: give one (mean, cls, last)."""
    argv = ["--embeddings", "--batch-size", str(ctx_per_slot), "--ubatch-size", str(ctx_per_slot)]
    if opts.get("pooling") is not None:
        argv += ["--pooling", str(opts["pooling"])]
    return argv


def _ctx_per_slot(spec: ReplicaSpec) -> int:
    return int(spec.options.get("ctx_per_slot", 8192))
