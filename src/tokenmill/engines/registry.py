"""Engine adapters by name."""

from tokenmill.engines.base import EngineAdapter
from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.engines.openai_compat import OpenAICompatAdapter

ADAPTERS: dict[str, EngineAdapter] = {a.name: a for a in (LlamaCppAdapter(), OpenAICompatAdapter())}


def get_adapter(name: str) -> EngineAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"unknown engine '{name}'; choose one of {sorted(ADAPTERS)}") from None
