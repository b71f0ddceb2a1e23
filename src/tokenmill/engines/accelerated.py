"""The part every engine TokenMill starts on accelerators shares (vLLM, SGLang, MindIE): its
facts come from the engine matrix, it binds to the replica's host, serves the OpenAI API under
/v1, and reports its own token counters."""

from typing import Any

from tokenmill.engines.base import EngineAdapter, LaunchCommand, ReplicaSpec, check_host, http_url
from tokenmill.engines.capabilities import Capabilities, with_overrides
from tokenmill.engines.counters import EngineCounts, read_counts
from tokenmill.engines.matrix import EngineFacts, matrix
from tokenmill.engines.spawned import (
    devices_for,
    engine_args,
    key_args,
    memory_fraction,
    model_path,
    visible_env,
)


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

    def served(
        self, spec: ReplicaSpec, port: int, secret: str, program: list[str], extra: list[str]
    ) -> LaunchCommand:
        """`program` (how the engine is started, its model argument included), then what every
        OpenAI-serving engine here takes: host, port, served name, tensor parallelism over
        its devices, memory fraction, the gateway's key, the deployment's own engine_args."""
        self.validate(spec)
        f = self.facts
        devices = devices_for(f, spec)
        argv = [
            *program,
            f.flag("host"), spec.host,
            f.flag("port"), str(port),
            f.flag("served_name"), self.upstream_model(spec),
            f.flag("tensor_parallel"), str(devices.count),
            *extra,
        ]  # fmt: skip
        fraction = memory_fraction(spec)
        if fraction is not None:
            argv += [f.flag("memory_fraction"), str(fraction)]
        key_argv, key_env = key_args(f, secret)
        argv += key_argv + engine_args(spec)
        return LaunchCommand(argv=argv, env={**visible_env(devices), **key_env})

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
