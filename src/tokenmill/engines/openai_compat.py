"""Any OpenAI-compatible endpoint that already runs elsewhere (vLLM, SGLang, Ollama, a cloud).

Nothing is spawned; TokenMill health-checks and relays to it.
"""

from urllib.parse import urlparse

from tokenmill.engines.base import EngineAdapter, ReplicaSpec


class OpenAICompatAdapter(EngineAdapter):
    name = "openai"
    accelerators = frozenset({"any"})
    model_formats = frozenset({"remote"})
    spawns = False
    default_parallel = 16

    def validate(self, spec: ReplicaSpec) -> None:
        if not spec.endpoint:
            raise ValueError("the openai engine needs --endpoint, e.g. http://127.0.0.1:8000/v1")
        url = urlparse(spec.endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"endpoint must be an http(s) URL; got '{spec.endpoint}'")

    def base_url(self, spec: ReplicaSpec, port: int | None) -> str:
        endpoint = (spec.endpoint or "").rstrip("/")
        return endpoint if endpoint.endswith("/v1") else endpoint + "/v1"

    def health_url(self, spec: ReplicaSpec, port: int | None) -> str:
        return self.base_url(spec, port) + "/models"
