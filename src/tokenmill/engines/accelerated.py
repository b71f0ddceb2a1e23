"""The part every engine TokenMill starts on accelerators shares (vLLM, SGLang, MindIE): its
facts come from the engine matrix, it binds to the replica's host, serves the OpenAI API under
/v1, and reports its own token counters."""

from typing import Any

from tokenmill.engines.base import EngineAdapter, ReplicaSpec, check_host, http_url
from tokenmill.engines.capabilities import Capabilities, with_overrides
from tokenmill.engines.counters import EngineCounts, read_counts
from tokenmill.engines.matrix import EngineFacts, matrix
from tokenmill.engines.spawned import devices_for, engine_args, memory_fraction, model_path


class AcceleratedAdapter(EngineAdapter):
    engine_id: str  # its entry in engines/data/matrix.toml
    spawns = True
    # Requests one replica is given at once: a TokenMill scheduling choice, not an engine
    # limit (engines batch far more); `options.parallel` changes it.
    default_parallel = 32

    def __init__(self) -> None:
        self.facts: EngineFacts = matrix().engine(self.engine_id)
        self.name = self.engine_id
        self.accelerators = frozenset(self.facts.accelerators)
        self.model_formats = frozenset(self.facts.model_formats)
        self.metrics_path = self.facts.metrics_path

    def validate(self, spec: ReplicaSpec) -> None:
        check_host(spec)
        devices_for(self.facts, spec)
        model_path(self.facts, spec)
        memory_fraction(spec)
        engine_args(spec)

    def base_url(self, spec: ReplicaSpec, port: int | None) -> str:
        return http_url(spec.host, port) + "/v1"

    def health_url(self, spec: ReplicaSpec, port: int | None) -> str:
        return self.root_url(spec, port) + self.facts.health_path

    def engine_counts(self, metrics_text: str) -> EngineCounts | None:
        names = self.facts.counters
        return read_counts(metrics_text, names) if names else None

    def capabilities(self, spec: ReplicaSpec, probe: dict[str, Any] | None) -> Capabilities:
        # Tool calls need engine flags chosen per model, and images or audio a model that
        # takes them: none is assumed; the gateway emulates tool calls, options override.
        found = Capabilities(tool_calls=False, vision=False, audio=False, embeddings=False)
        return with_overrides(found, spec.options)

    def smoke_request(self, spec: ReplicaSpec) -> tuple[str, dict[str, Any]] | None:
        body = {"model": self.upstream_model(spec), "prompt": "Hello", "max_tokens": 2}
        return "/completions", {**body, "temperature": 0}
