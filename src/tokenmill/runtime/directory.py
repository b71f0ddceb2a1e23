"""The replica directory: how a gateway finds the replicas of a model, and hears when they
change, without knowing who runs them. The gateway depends on these two protocols only.

`Deployments` (this process's controller) is the embedded implementation; a directory that
reads the replica instances other controllers write (runtime/instances.py) is the next one,
for gateways that run no engine at all.
"""

from collections.abc import Callable
from typing import Protocol

from tokenmill.engines.base import EngineAdapter
from tokenmill.engines.capabilities import Capabilities
from tokenmill.runtime.replica import Replica


class ServedModel(Protocol):
    """One deployment, as the gateway needs it."""

    @property
    def name(self) -> str: ...

    @property
    def adapter(self) -> EngineAdapter: ...

    @property
    def upstream_model(self) -> str: ...

    def capabilities(self) -> Capabilities: ...

    def failure(self) -> str | None: ...

    def ready(self) -> list[Replica]: ...

    def replica(self, replica_id: str) -> Replica: ...


class ReplicaDirectory(Protocol):
    def get(self, name: str) -> ServedModel | None: ...

    def subscribe(self, listener: Callable[[str, list[Replica]], None]) -> None:
        """`listener(deployment, replicas)` whenever a replica comes, goes or changes state."""
