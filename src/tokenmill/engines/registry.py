"""Engine adapters by name."""

from tokenmill.engines.base import EngineAdapter
from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.engines.mindie import MindieAdapter
from tokenmill.engines.openai_compat import OpenAICompatAdapter
from tokenmill.engines.sglang import SglangAdapter
from tokenmill.engines.vllm import VllmAdapter

ADAPTERS: dict[str, EngineAdapter] = {
    a.name: a
    for a in (
        LlamaCppAdapter(),
        VllmAdapter(),
        SglangAdapter(),
        MindieAdapter(),
        OpenAICompatAdapter(),
    )
}


def get_adapter(name: str) -> EngineAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"unknown engine '{name}'; choose one of {sorted(ADAPTERS)}") from None
