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


def test_embeddings_are_sized_by_their_input_and_generate_nothing():
    texts = {"model": "m", "input": ["ab" * 200, "cd" * 200]}
    job = job_for("r3", "t", "embeddings", texts, WAITS)
    assert (job.input_tokens, job.max_output_tokens) == (200, 0)
    ids = job_for("r4", "t", "embeddings", {"model": "m", "input": [[1, 2, 3], [4, 5]]}, WAITS)
    assert ids.input_tokens == 5  # token ids are counted, not estimated
    legacy = job_for("r5", "t", "completions", {"model": "m", "prompt": [7] * 9}, WAITS)
    assert legacy.input_tokens == 9
