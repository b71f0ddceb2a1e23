"""From a request body to a scheduler job: band, deadline, size and prefix."""

import pytest

from tokenmill.gateway.jobs import job_for
from tokenmill.scheduling.job import Band

WAITS = {Band.INTERACTIVE: 30.0, Band.BATCH: 600.0}


def test_flex_requests_go_to_the_batch_band_and_may_wait_longer():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi " * 200}]}
    chat = job_for("r1", "t", "chat", body, WAITS)
    flex = job_for("r2", "t", "chat", {**body, "service_tier": "flex"}, WAITS)
    assert (chat.band, flex.band) == (Band.INTERACTIVE, Band.BATCH)
    assert chat.deadline - chat.arrived == pytest.approx(30.0)
    assert flex.deadline - flex.arrived == pytest.approx(600.0)
    assert chat.input_tokens == flex.input_tokens > 100
    assert chat.prefix_blocks == flex.prefix_blocks != ()
