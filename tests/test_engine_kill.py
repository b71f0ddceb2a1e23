"""The engine process alone is killed while requests wait (issue 14, finding 7): every request
is answered, and the replacement engine is handed the waiting ones the moment it is ready.

Runs the drill (benchmarks/drills/engine_kill.py) as an operator would, on the real engine.
Its queue wait is raised to 120 s so that a slow shared machine cannot turn slow decoding
into 429s: what is tested is when the gateway dispatches, which the usage records time."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

DRILL = Path(__file__).parent.parent / "benchmarks" / "drills" / "engine_kill.py"
QUEUE_WAIT_S = 120.0


def test_queued_requests_go_to_the_replacement_engine_as_soon_as_it_is_ready(tmp_path: Path):
    argv = ["--requests", "10", "--parallel", "2", "--threads", "1", "--max-tokens", "16",
            "--queue-wait", str(QUEUE_WAIT_S), "--data-dir", str(tmp_path / "drill")]  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(DRILL), *argv], capture_output=True, text=True, timeout=420
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout)
    assert figures["waiting_at_kill"] >= 3, figures  # the engine died under a queue
    assert figures["replacement_ready_after_kill_s"] is not None, figures
    # Every request answered: those the crash cut off retried, none refused or lost.
    assert figures["completed"] == figures["requests_sent"] == 10, figures
    assert figures["dispatched_after_kill"] >= figures["waiting_at_kill"], figures
    # Handed to the replacement at once, not after a health-check period or a queue timeout.
    assert -0.05 <= figures["first_dispatch_after_ready_s"] < 0.5, figures
    assert figures["max_wait_after_ready_s"] < QUEUE_WAIT_S / 2, figures
