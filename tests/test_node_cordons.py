"""Draining a node (the fast part): the drain is kept in the database across restarts, the Ray
runtime keeps actors off drained nodes by Ray's node-id label, and the local runtime, with
nowhere to move replicas, refuses with what to do instead."""

import asyncio
from pathlib import Path

import pytest

from tokenmill.core.errors import Conflict, NotFound
from tokenmill.runtime.cordons import Cordons
from tokenmill.runtime.deployments import Deployments
from tokenmill.runtime.ray_host import actor_options, avoiding
from tokenmill.store.db import make_engine, migrate, sqlite_url


@pytest.fixture
def db(tmp_path: Path):
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    return engine


def test_a_drain_outlives_the_process_and_a_second_one_keeps_the_first_reason(db) -> None:
    first = Cordons(db)
    first.add("gpu-7", "fan swap")
    first.add("gpu-7", "again")
    first.add("npu-2", "firmware")
    later = Cordons(db)
    later.load()
    assert later.names() == {"gpu-7", "npu-2"}
    assert [(v["node"], v["reason"]) for v in later.views()] == [
        ("gpu-7", "fan swap"), ("npu-2", "firmware"),
    ]  # fmt: skip
    assert later.remove("gpu-7") and not later.remove("gpu-7")
    again = Cordons(db)
    again.load()
    assert again.names() == {"npu-2"}


def test_ray_actors_are_kept_off_drained_nodes_by_their_node_id_label() -> None:
    options = actor_options({"resource": "NPU", "devices": 2})
    assert avoiding(options, []) == {"num_cpus": 0, "resources": {"NPU": 2.0}}
    kept_off = {"ray.io/node-id": "!in(a1,b2)"}
    assert avoiding(options, ["a1", "b2"]) == {
        "num_cpus": 0, "resources": {"NPU": 2.0}, "label_selector": kept_off,
    }  # fmt: skip


def test_the_local_runtime_refuses_a_drain_and_says_what_to_do(db, tmp_path: Path) -> None:
    async def go() -> None:
        deployments = Deployments(db, None, tmp_path, node_name="box-1")  # type: ignore[arg-type]
        with pytest.raises(Conflict, match=r"runs every replica on this node \('box-1'\)") as e:
            await deployments.drain_node("box-1", "maintenance")
        assert "stop TokenMill" in str(e.value) and "--runtime ray" in str(e.value)
        assert deployments.cordons.names() == frozenset()  # nothing recorded
        with pytest.raises(NotFound, match="not drained"):
            await deployments.undrain_node("box-1")
        assert deployments.node_view("box-1") == {
            "node": "box-1", "drained": None, "replicas": [], "stopping": [], "moving": {},
        }  # fmt: skip

    asyncio.run(go())
