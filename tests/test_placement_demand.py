"""Sizing a replica's memory from the models catalog (economics/demand.py)."""

from pathlib import Path

import pytest

from tokenmill.economics.demand import ACCELERATOR_RESERVE, gguf_demand, model_demand
from tokenmill.economics.models import ModelError, find_model


def test_a_catalog_model_at_its_precision_and_context() -> None:
    model = find_model("Llama-3.1-70B-Instruct")
    demand = model_demand(model, context_tokens=8192 * 16)
    assert demand.weights_gb == pytest.approx(141.2)  # 70.6e9 x 2 bytes
    # 2 (K, V) x 80 layers x 8 KV heads x 128 x 2 bytes = 327,680 bytes a token
    assert demand.kv_gb == pytest.approx(327_680 * 131_072 / 1e9)
    assert demand.reserve_share == ACCELERATOR_RESERVE == 0.1
    assert demand.notes == (
        "Llama-3.1-70B-Instruct: 70.6B parameters at bf16 (16 bits each)",
        "KV 327.68 kB per token x 131072 tokens = 42.950 GB",
    )


def test_precision_changes_the_weights_not_the_kv_cache() -> None:
    model = find_model("llama-3.1-8b")
    bf16 = model_demand(model, context_tokens=4096)
    fp8 = model_demand(model, context_tokens=4096, precision="fp8")
    assert fp8.weights_gb == pytest.approx(bf16.weights_gb / 2) and fp8.kv_gb == bf16.kv_gb
    with pytest.raises(ModelError, match="unknown precision"):
        model_demand(model, context_tokens=4096, precision="q2")


def test_latent_attention_caches_the_latent() -> None:
    demand = model_demand(find_model("deepseek-v3"), context_tokens=1000)
    # 61 layers x 576 latent elements x 2 bytes
    assert demand.kv_gb == pytest.approx(61 * 576 * 2 * 1000 / 1e9)


def test_a_gguf_file_weighs_its_size_and_its_kv_comes_from_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with path.open("wb") as f:
        f.truncate(98_362_432)  # the shipped file's size; sparse, nothing written
    demand = gguf_demand(path, context_tokens=8192, overhead_gb=0.5)
    assert demand.model == "smollm2-135m" and demand.model_file == str(path)
    assert demand.weights_gb == pytest.approx(0.098362432)
    # 2 x 30 layers x 3 KV heads x 64 x 2 bytes x 8192 = 180 MiB: what llama.cpp allocates
    # (its log: "llama_kv_cache: size = 180.00 MiB (8192 cells, 30 layers ...)").
    assert demand.kv_gb * 1e9 == 180 * 2**20
    assert demand.overhead_gb == 0.5 and demand.reserve_share == 0


def test_a_gguf_file_the_catalog_lacks_says_its_kv_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "mystery-model.Q8_0.gguf"
    path.write_bytes(b"x" * 1000)
    demand = gguf_demand(path, context_tokens=8192)
    assert demand.model == "mystery-model.Q8_0" and demand.kv_gb == 0
    assert demand.notes[-1] == (
        "KV cache unknown: mystery-model.Q8_0.gguf matches no model in the models catalog"
    )


def test_a_gguf_file_may_be_named_by_its_deployment(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"x")
    assert gguf_demand(path, context_tokens=10, names=("smollm2",)).model == "smollm2-135m"
