"""A replica as the gateway sees it: where it listens and whether it can take requests."""

import ssl
from dataclasses import dataclass, field
from enum import StrEnum

from tokenmill.engines.base import EngineAdapter, ReplicaSpec
from tokenmill.engines.capabilities import Capabilities


class ReplicaState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    FAILED = "failed"  # crashed before ready too often: no more restarts, `failure` says why


@dataclass
class Replica:
    spec: ReplicaSpec
    adapter: EngineAdapter
    port: int | None = None
    state: ReplicaState = ReplicaState.STARTING
    restarts: int = 0
    last_error: str | None = None
    failure: str | None = None  # why it was given up on (state FAILED)
    pid: int | None = None
    served: int = field(default=0)
    draining: bool = False  # scaled away: finishing what it serves, taking nothing new
    started_at: float | None = None  # when its engine process started: its counters' zero
    # The per-process secret a spawned engine demands (--api-key): only TokenMill reaches it.
    secret: str | None = field(default=None, repr=False)
    # Tokens the supervisor's own smoke decode spent since started_at: no tenant's, unmetered.
    own_prompt_tokens: int = 0
    own_completion_tokens: int = 0
    found: Capabilities | None = None  # what its engine said it can do, once asked
    # The node its engine runs on, where its host says (a Ray node id); None: the controller's.
    node: str | None = None
    devices: list[str] = field(default_factory=list)  # those its host gave it, e.g. ["NPU:0"]
    # Reached over TLS (an engine on another machine): the one certificate it is trusted by.
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    def capabilities(self) -> Capabilities:
        return self.found or self.adapter.capabilities(self.spec, None)

    @property
    def id(self) -> str:
        return self.spec.replica_id

    @property
    def base_url(self) -> str:
        return self._on_wire(self.adapter.base_url(self.spec, self.port))

    @property
    def root_url(self) -> str:
        return self._on_wire(self.adapter.root_url(self.spec, self.port))

    @property
    def health_url(self) -> str:
        return self._on_wire(self.adapter.health_url(self.spec, self.port))

    def _on_wire(self, url: str) -> str:
        return "https://" + url.removeprefix("http://") if self.tls is not None else url

    @property
    def ssl(self) -> ssl.SSLContext | bool:
        """aiohttp's `ssl=` for requests to it: its pinned certificate, else the defaults."""
        return self.tls if self.tls is not None else True

    def auth_headers(self) -> dict[str, str]:
        """What every request to the engine carries besides its own headers."""
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "state": self.state.value,
            "endpoint": self.base_url if self.port or not self.adapter.spawns else None,
            "pid": self.pid,
            "node": self.node,
            "devices": self.devices,
            "restarts": self.restarts,
            "served": self.served,
            "draining": self.draining,
            "last_error": self.last_error,
            "failure": self.failure,
            "capabilities": self.capabilities().view(),
        }
