"""A fleet node drained for maintenance under a bounded real load (issue 15, lifecycle), on a
real `ray.cluster_utils.Cluster` on this machine: a head without accelerators, `alpha` declaring
two `NPU`s, `beta` one (a STAND-IN resource on a CPU-only machine, with llama.cpp standing in
for the Ascend engine), each named with the label `tokenmill node join` gives.

Runs the drill (benchmarks/drills/ray_node_drain.py): a drained `beta` gets no replica, so it
lands on `alpha`; then `tokenmill node drain alpha` moves it to `beta` although `alpha` still
has a free NPU, the old engine stops, and no request fails.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray runtime's tests need ray (the dev extra)")

pytestmark = [pytest.mark.engine, pytest.mark.timeout(420)]

DRILL = Path(__file__).parent.parent / "benchmarks" / "drills" / "ray_node_drain.py"


def test_a_drained_node_gets_no_replica_and_gives_its_own_up_without_a_failed_request(
    tmp_path: Path,
) -> None:
    clients, after = 2, 4
    argv = ["--clients", str(clients), "--after", str(after), "--max-tokens", "8",
            "--data-dir", str(tmp_path / "drill")]  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(DRILL), *argv], capture_output=True, text=True, timeout=400
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout)
    print(json.dumps(figures))  # the report: requests failed, how long the drain took

    # Drained before the deployment: nothing placed there.
    assert figures["kept_off_while_drained"]["drained"]["reason"] == "not yet"
    assert figures["node_before"] == "alpha", figures
    # The drain moved the replica to the other NPU node, on an NPU Ray gave it.
    assert figures["node_after"] == "beta", figures
    assert [d.split(":")[0] for d in figures["devices_after"]] == ["NPU"], figures
    # The CLI followed the move to its end; the node keeps saying so.
    for view in (figures["drain_answer"], figures["node_view_after"]):
        assert view["replicas"] == view["stopping"] == [], view  # the old one has stopped too
        assert view["drained"]["reason"] == "drill", view
        moved = view["moving"]["on-npu"]
        assert (moved["state"], moved["replaced"], moved["of"]) == ("done", 1, 1), view
    assert [d["node"] for d in figures["fleet_drained"]] == ["alpha"], figures
    # The old engine was stopped once drained; none is left over.
    assert figures["old_engine_exited_s"] is not None, figures
    assert figures["engines_left"] == 0, figures
    # No request failed, while the move ran and after it.
    assert figures["sent_during_drain"] >= 1, figures
    assert figures["sent_after_drain"] >= clients * after, figures
    assert figures["failed"] == 0, figures
