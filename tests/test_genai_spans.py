"""OpenTelemetry spans per request (GenAI semantic conventions), fast part: the SDK's in-memory
exporter receives one span per finished request, with the usage record's token counts, the
ids the gateway propagates (the caller's span as parent), and nothing for an unsampled trace."""

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from tokenmill.core.usage import UsageRecord
from tokenmill.observe.genai_spans import GenAiSpans
from tokenmill.observe.tracing import continue_trace

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _record(**changes) -> UsageRecord:
    fields = dict(
        request_id="req_1", created_at=1_800_000_000.25, tenant="acme", key_id="key_1",
        model="smol", deployment="smol", replica="smol-0", endpoint="chat", stream=True,
        prompt_tokens=31, cached_tokens=16, completion_tokens=7, ttft_ms=40.0,
        duration_ms=120.5, status=200, outcome="ok", finish_reason="length",
        usage_source="engine", agent="agent_9", queued_ms=2.0,
    )  # fmt: skip
    return UsageRecord(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.fixture
def exported():
    exporter = InMemorySpanExporter()
    return GenAiSpans(SimpleSpanProcessor(exporter)), exporter


def test_a_request_s_span_carries_the_genai_attributes_and_the_record_s_counts(exported):
    spans, exporter = exported
    trace = continue_trace(CALLER)
    spans.finished(_record(), trace, "llamacpp", "SmolLM2-135M-Instruct")
    [span] = exporter.get_finished_spans()
    assert span.name == "chat smol" and span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "llamacpp",
        "gen_ai.request.model": "smol",
        "gen_ai.response.model": "SmolLM2-135M-Instruct",
        "gen_ai.usage.input_tokens": 31,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.usage.cache_read.input_tokens": 16,
        "gen_ai.response.finish_reasons": ["length"],
        "gen_ai.agent.id": "agent_9",
        "http.response.status_code": 200,
        "tokenmill.request_id": "req_1",
        "tokenmill.tenant": "acme",
        "tokenmill.deployment": "smol",
        "tokenmill.replica": "smol-0",
        "tokenmill.usage_source": "engine",
        "tokenmill.outcome": "ok",
        "tokenmill.stream": True,
        "tokenmill.ttft_ms": 40.0,
        "tokenmill.queued_ms": 2.0,
    }
    # The ids the gateway sent upstream in `traceparent`, under the caller's span.
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(span.context.span_id, "016x") == trace.span_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert (span.start_time, span.end_time) == (
        1_800_000_000_250_000_000,
        1_800_000_000_370_500_000,
    )
    assert span.status.status_code is StatusCode.UNSET
    assert span.resource.attributes["service.name"] == "tokenmill"


def test_a_failed_request_is_an_error_span_and_an_unsampled_trace_has_none(exported):
    spans, exporter = exported
    spans.finished(_record(status=502, outcome="error", finish_reason=None, agent=None),
                   continue_trace(None), "llamacpp", "m")  # fmt: skip
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "502" and span.parent is None  # a new trace
    assert "gen_ai.agent.id" not in span.attributes
    unsampled = continue_trace(CALLER[:-2] + "00")
    spans.finished(_record(), unsampled, "llamacpp", "m")
    assert len(exporter.get_finished_spans()) == 1  # the caller chose not to record it


def test_choices_of_one_request_are_sibling_spans_under_the_caller() -> None:
    trace = continue_trace(CALLER)
    a, b = trace.sibling(), trace.sibling()
    assert a.trace_id == b.trace_id == trace.trace_id
    assert a.parent_id == b.parent_id == "00f067aa0ba902b7"
    assert len({a.span_id, b.span_id, trace.span_id}) == 3
