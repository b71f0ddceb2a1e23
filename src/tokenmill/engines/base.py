"""The engine adapter interface: what TokenMill needs to know to run and talk to an engine.

One adapter per engine (llama.cpp, vLLM and its Ascend and Cambricon plugins, SGLang, MindIE,
an attached OpenAI-compatible endpoint). Adapters are pure descriptions: spawning and supervising
is the runtime's job. What an engine is driven by (flags, variables, health, counter names) is
data, in engines/data/matrix.toml; its adapter is the only code that reads it.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from tokenmill.engines.capabilities import Capabilities, with_overrides
from tokenmill.engines.counters import EngineCounts
from tokenmill.engines.devices import Devices

LOOPBACK = "127.0.0.1"
_WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})


@dataclass(frozen=True)
class ReplicaSpec:
    """What one replica of a deployment should serve."""

    deployment: str
    index: int
    model_path: str | None = None
    endpoint: str | None = None
    upstream_model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # The address a spawned engine binds to and is reached at: the loopback address when only
    # this machine's gateway talks to it, the node's own address when gateways elsewhere do.
    host: str = LOOPBACK
    devices: Devices | None = None  # the accelerators it runs on; None: the engine's default

    @property
    def replica_id(self) -> str:
        return f"{self.deployment}-{self.index}"


@dataclass(frozen=True)
class LaunchCommand:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


class EngineAdapter(ABC):
    name: str
    accelerators: frozenset[str]
    model_formats: frozenset[str]
    spawns: bool
    metrics_path: str | None = None
    capabilities_path: str | None = None  # a GET (root-relative) that says what it can do
    # True when the engine reports usage at the end of a stream if asked (stream_options).
    reports_stream_usage: bool = True
    # Concurrent requests one replica serves well; beyond it requests queue (scheduling issue).
    default_parallel: int = 1

    def parallel(self, spec: ReplicaSpec) -> int:
        """Requests one replica serves at once: the scheduler's capacity for it."""
        return int(spec.options.get("parallel", self.default_parallel))

    def capabilities(self, spec: ReplicaSpec, probe: dict[str, Any] | None) -> Capabilities:
        """What its replicas can do, from the answer to `capabilities_path` when it has one
        (None before any replica answered): an endpoint elsewhere is taken at its word."""
        return with_overrides(Capabilities(), spec.options)

    def cache_tokens(self, spec: ReplicaSpec) -> int:
        """Prompt tokens a replica keeps cached, to size the router's prefix index."""
        return int(spec.options.get("cache_tokens", 32768))

    @abstractmethod
    def validate(self, spec: ReplicaSpec) -> None:
        """Raise ValueError with a user-facing reason if the spec cannot run on this engine."""

    def launch(self, spec: ReplicaSpec, port: int, secret: str) -> LaunchCommand | None:
        """The process to start for a replica, or None when the engine runs elsewhere. It must
        refuse requests that do not carry `secret` as their bearer token (health aside)."""
        return None

    def smoke_request(self, spec: ReplicaSpec) -> tuple[str, dict[str, Any]] | None:
        """A tiny real decode (path under the base URL, JSON body) a spawned replica must
        answer before it takes traffic: a build that loads but cannot compute fails here."""
        return None

    @abstractmethod
    def base_url(self, spec: ReplicaSpec, port: int | None) -> str:
        """The replica's OpenAI-compatible base URL, ending in /v1."""

    def root_url(self, spec: ReplicaSpec, port: int | None) -> str:
        return self.base_url(spec, port).removesuffix("/v1")

    def health_url(self, spec: ReplicaSpec, port: int | None) -> str:
        """A GET that answers 2xx only when the replica can serve."""
        return self.root_url(spec, port) + "/health"

    def upstream_model(self, spec: ReplicaSpec) -> str:
        return spec.upstream_model or spec.deployment

    def engine_counts(self, metrics_text: str) -> EngineCounts | None:
        """The engine's own token counters, read from its `metrics_path` text (None when it
        keeps none, or the text lacks them): what `reconcile` checks the ledger against."""
        return None

    def prepare_stream(self, body: dict[str, Any]) -> None:
        """Ask the engine for what exact stream metering needs (mutates the body)."""
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}


def check_host(spec: ReplicaSpec) -> None:
    """A spawned engine binds to one address that gateways also reach it at: a wildcard would
    listen everywhere and still leave no address to reach it by."""
    if spec.host.strip() in _WILDCARDS:
        raise ValueError(
            f"replica host must be an address (the node's, or {LOOPBACK}), not '{spec.host}'"
        )


def http_url(host: str, port: int | None) -> str:
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{bracketed}:{port}"
