"""The engine matrix (engines/data/matrix.toml) loads strictly: every fact has a source, and a
file that breaks the rules is refused with the entry and field named."""

from importlib import resources

import pytest

from tokenmill.engines.matrix import MatrixError, load, matrix

SHIPPED = resources.files("tokenmill.engines").joinpath("data/matrix.toml").read_text("utf-8")

# Every fact an entry may carry; each one present must have a recorded source.
ENGINE_FACTS = (
    "checked_against", "model_formats", "default_port", "health_path", "metrics_path",
    "api_key", "counters", "flags", "env", "config_keys", "paths",
)  # fmt: skip


def test_the_shipped_matrix_loads_and_covers_every_accelerator_vendor():
    m = matrix()
    assert set(m.accelerators) == {"cpu", "nvidia", "amd", "ascend", "cambricon", "hygon", "gaudi"}
    assert {a.resource for a in m.accelerators.values()} == {
        "CPU",
        "GPU",
        "NPU",
        "MLU",
        "DCU",
        "HPU",
    }
    assert set(m.engines) == {"llamacpp", "vllm", "sglang", "mindie"}
    assert m.engine("vllm").accelerators.keys() >= {"nvidia", "amd", "ascend", "cambricon"}
    assert set(m.engine("mindie").accelerators) == {"ascend"}


def test_every_fact_in_the_shipped_matrix_has_a_source():
    m = matrix()
    for acc in m.accelerators.values():
        assert set(acc.sources) == {"resource", "visible_devices"}, acc.id
    for engine in m.engines.values():
        present = {f for f in ENGINE_FACTS if f in engine.sources}
        wanted = {"checked_against", "model_formats", "default_port", "health_path", "api_key"}
        assert wanted <= present, engine.id
        for acc in engine.accelerators:
            source = engine.sources[f"accelerators.{acc}"]
            assert source.title and source.date


def _broken(old: str, new: str) -> str:
    assert old in SHIPPED, old
    return SHIPPED.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'default_port = { value = 8000, src = "vllm-cli" }',
            "default_port = 8000",
            "'default_port'",
        ),
        (
            'default_port = { value = 8000, src = "vllm-cli" }',
            'default_port = { value = 8000, src = "nowhere" }',
            "needs src",
        ),
        (
            'default_port = { value = 8000, src = "vllm-cli" }',
            'default_port = { value = 0, src = "vllm-cli" }',
            "port number",
        ),
        (
            'health_path = { value = "/health", src = "vllm-cli" }',
            'health_path = { value = "health", src = "vllm-cli" }',
            "starting with /",
        ),
        ('api_key = { value = "env:VLLM_API_KEY"', 'api_key = { value = "header:X"', "env:NAME"),
        (
            'lazy = true }, src = "sglang-metrics"',
            'lazy = true, extra = 1 }, src = "sglang-metrics"',
            "counters",
        ),
        (
            'ascend = { value = "mindieservice_daemon"',
            'tpu = { value = "mindieservice_daemon"',
            "'tpu', which has no",
        ),
        ('id = "mindie"\n', 'id = "mindie"\nflavour = "x"\n', "unknown key"),
        ('resource = { value = "NPU", src = "tm-fleet-ref" }', 'resource = "NPU"', "'resource'"),
        ("schema_version = 1", "schema_version = 2", "schema_version"),
    ],
)
def test_a_broken_matrix_is_refused_naming_what_is_wrong(old: str, new: str, message: str):
    with pytest.raises(MatrixError, match=message):
        load(_broken(old, new))


def test_an_unknown_engine_or_accelerator_lookup_says_what_is_known():
    with pytest.raises(MatrixError, match="not in the engine matrix"):
        matrix().engine("tgi")
    with pytest.raises(MatrixError, match="known: amd, ascend"):
        matrix().accelerator("tpu")
