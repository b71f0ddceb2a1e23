"""Each adapter reads its engine's own token counters from /metrics text: the numbers
`tokenmill reconcile` checks the ledger against. llama.cpp's text is a real recording; the
others are constructed from the engines' documented names (tests/data/engines/SOURCES.md)."""

import json
import os
import stat
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import create_engine

from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.counters import CounterNames, EngineCounts, read_counts
from tokenmill.engines.devices import Devices
from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.engines.mindie import MindieAdapter
from tokenmill.engines.mindie_config import OVERRIDES_ENV, merged
from tokenmill.engines.mindie_launch import write_config
from tokenmill.engines.sglang import SglangAdapter
from tokenmill.engines.vllm import VllmAdapter
from tokenmill.metering.reconcile import replica_drift
from tokenmill.runtime.replica import Replica
from tokenmill.store.tables import Base

DATA = Path(__file__).with_name("data") / "engines"


def text(name: str) -> str:
    return (DATA / name).read_text()


def test_llamacpp_recorded_metrics_give_the_usage_its_two_answers_reported():
    # Recorded after two answers: prompt 35 (0 cached) + 37 (28 cached), 8 + 8 generated.
    assert LlamaCppAdapter().engine_counts(text("llamacpp_metrics.txt")) == EngineCounts(
        prompt=72, cached=28, completion=16
    )


def test_vllm_counters_are_summed_over_engines_and_lookalikes_are_ignored():
    # prompt_tokens_by_source, prompt_tokens_created and prefix_cache_* are other counters.
    assert VllmAdapter().engine_counts(text("vllm_metrics_constructed.txt")) == EngineCounts(
        prompt=1850, cached=767, completion=420
    )


def test_a_vllm_too_old_for_its_cached_counter_has_no_engine_side():
    old = "\n".join(
        line
        for line in text("vllm_metrics_constructed.txt").splitlines()
        if "prompt_tokens_cached" not in line
    )
    assert VllmAdapter().engine_counts(old) is None


def test_sglang_cached_tokens_are_summed_over_cache_sources():
    assert SglangAdapter().engine_counts(text("sglang_metrics_constructed.txt")) == EngineCounts(
        prompt=2048, cached=1000, completion=400
    )


def test_sglang_before_any_request_counts_zero_but_foreign_text_counts_nothing():
    before = text("sglang_metrics_before_any_request_constructed.txt")
    assert SglangAdapter().engine_counts(before) == EngineCounts(0, 0, 0)
    assert SglangAdapter().engine_counts(text("llamacpp_metrics.txt")) is None
    assert SglangAdapter().engine_counts("") is None


def test_mindie_counts_prompt_and_generated_tokens_and_says_cached_is_unknown():
    assert MindieAdapter().engine_counts(text("mindie_metrics_constructed.txt")) == EngineCounts(
        prompt=5120, cached=None, completion=1024
    )


def test_an_engine_counting_only_uncached_prompt_tokens_gets_the_cached_ones_added():
    names = CounterNames("e:p", "e:c", cached="e:h", prompt_includes_cached=False)
    body = "".join(
        f"# TYPE e:{n} counter\ne:{n}_total {v}\n" for n, v in (("p", 10), ("h", 5), ("c", 3))
    )
    assert read_counts(body, names) == EngineCounts(prompt=15, cached=5, completion=3)


async def test_reconcile_compares_what_mindie_counts_and_leaves_out_what_it_does_not(
    tmp_path: Path,
):
    """replica_drift asks the replica's adapter, not a table of llama.cpp names: a MindIE
    replica's counters (served here by a stand-in HTTP server) against an empty ledger."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=text("mindie_metrics_constructed.txt"))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    db = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    Base.metadata.create_all(db)
    spec = ReplicaSpec("mi", 0, model_path="/m", devices=Devices("ascend", (0,)))
    replica = Replica(spec, MindieAdapter(), port=port, started_at=0.0)
    try:
        async with aiohttp.ClientSession() as http:
            view = await replica_drift(http, db, replica)
    finally:
        await runner.cleanup()
    assert view["engine"] == {"prompt": 5120, "cached": None, "completion": 1024}
    assert view["drift"] == {"prompt": -5120, "completion": -1024}
    assert view["status"] == "drift"


def test_mindie_launcher_writes_the_installed_config_with_the_replicas_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A stand-in for the installation's conf/config.json: its shape (not MindIE's full file).
    shipped = {
        "ServerConfig": {"ipAddress": "127.0.0.1", "port": 1025, "httpsEnabled": True},
        "BackendConfig": {
            "npuDeviceIds": [[0, 1, 2, 3]],
            "ModelDeployConfig": {"ModelConfig": [{"modelName": "llama_65b", "worldSize": 4}]},
        },
    }
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.json").write_text(json.dumps(shipped))
    s = ReplicaSpec("qwen", 0, model_path="/models/q", devices=Devices("ascend", (4, 5)))
    env = MindieAdapter().launch(s, 18000, "unused").env
    monkeypatch.setenv(OVERRIDES_ENV, env[OVERRIDES_ENV])
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    path = write_config(tmp_path)
    written = json.loads(Path(path).read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert written["ServerConfig"] == {
        "ipAddress": "127.0.0.1",
        "port": 18000,
        "httpsEnabled": False,
        "managementPort": 18000,
        "metricsPort": 18000,
    }
    assert written["BackendConfig"]["npuDeviceIds"] == [[4, 5]]
    model = written["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]
    assert model == {"modelName": "qwen", "worldSize": 2, "modelWeightPath": "/models/q"}


def test_mindie_config_paths_into_lists_must_exist():
    with pytest.raises(ValueError, match="no item 1 in a list of 1"):
        merged({"a": [{}]}, {"a.1.b": 2})
    with pytest.raises(ValueError, match="is under a int"):
        merged({"a": 1}, {"a.b": 2})
    assert merged({"a": [{"b": 1}]}, {"a.0.b": 2, "c.d": 3}) == {"a": [{"b": 2}], "c": {"d": 3}}
