"""One OpenTelemetry span per inference request, after the GenAI semantic conventions, with the
token counts of the request's usage record (the ledger's, exactly), sent over OTLP.

Off by default (`TOKENMILL_OTLP_ENDPOINT` unset): then nothing here is imported or called, and
the hot path pays one `is None` check. On, the span is built once the request has ended, from
its usage record, and handed to a batching processor whose thread does the export: no span is
open while the request runs, and nothing waits on the collector.

The span's ids are the ones the gateway already propagates (`observe/tracing.py`): its span id
is the parent named in the `traceparent` sent to the engine, its parent the caller's span.
The OpenTelemetry SDK is an optional extra: `pip install 'tokenmill[otel]'`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenmill.core.usage import UsageRecord
from tokenmill.observe.tracing import TraceContext

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter

# The request's endpoint -> gen_ai.operation.name (semantic conventions' well-known values).
OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
# gen_ai.provider.name: the engine's name, but "openai" is OpenAI itself in the conventions,
# and our `openai` engine is any OpenAI-compatible endpoint.
PROVIDERS = {"openai": "openai_compatible"}
SCOPE = "tokenmill.gateway"


def attributes(record: UsageRecord, provider: str, response_model: str) -> dict[str, Any]:
    """The span's attributes: GenAI conventions first, then TokenMill's own (`tokenmill.*`)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(record.endpoint, record.endpoint),
        "gen_ai.provider.name": PROVIDERS.get(provider, provider),
        "gen_ai.request.model": record.model,
        "gen_ai.response.model": response_model,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": record.cached_tokens,
        "http.response.status_code": record.status,
        "tokenmill.request_id": record.request_id,
        "tokenmill.tenant": record.tenant,
        "tokenmill.deployment": record.deployment,
        "tokenmill.replica": record.replica,
        "tokenmill.usage_source": record.usage_source,
        "tokenmill.outcome": record.outcome,
        "tokenmill.stream": record.stream,
    }
    if record.finish_reason is not None:
        attrs["gen_ai.response.finish_reasons"] = [record.finish_reason]
    if record.agent is not None:
        attrs["gen_ai.agent.id"] = record.agent
    if record.ttft_ms is not None:
        attrs["tokenmill.ttft_ms"] = record.ttft_ms
    if record.queued_ms is not None:
        attrs["tokenmill.queued_ms"] = record.queued_ms
    if record.outcome != "ok":
        attrs["error.type"] = str(record.status) if record.status >= 400 else record.outcome
    return attrs


class GenAiSpans:
    """Builds each finished request's span and hands it to `processor` (batching, exporting)."""

    def __init__(self, processor: SpanProcessor, service_name: str = "tokenmill") -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        from tokenmill import __version__

        self._processor = processor
        self._resource = Resource.create({"service.name": service_name})
        self._scope = InstrumentationScope(SCOPE, __version__)

    @classmethod
    def to_otlp(cls, endpoint: str, service_name: str = "tokenmill") -> GenAiSpans:
        """Spans batched to an OTLP/HTTP receiver (`.../v1/traces`)."""
        return cls.exporting(_otlp_exporter(endpoint), service_name)

    @classmethod
    def exporting(cls, exporter: SpanExporter, service_name: str = "tokenmill") -> GenAiSpans:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        return cls(BatchSpanProcessor(exporter), service_name)

    def finished(
        self, record: UsageRecord, ids: TraceContext, provider: str, response_model: str
    ) -> None:
        """The request's span, from its usage record; not sampled by the caller: none."""
        if not ids.sampled:
            return
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        trace_id, sampled = int(ids.trace_id, 16), TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(trace_id, int(ids.span_id, 16), False, sampled)
        parent = None
        if ids.parent_id is not None:
            parent = SpanContext(trace_id, int(ids.parent_id, 16), True, sampled)
        start_ns = round(record.created_at * 1e6) * 1000  # a float of seconds: to the µs
        attrs = attributes(record, provider, response_model)
        failed = record.outcome != "ok"
        span = ReadableSpan(
            name=f"{attrs['gen_ai.operation.name']} {record.model}",
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=attrs,
            kind=SpanKind.CLIENT,
            instrumentation_scope=self._scope,
            status=Status(StatusCode.ERROR if failed else StatusCode.UNSET),
            start_time=start_ns,
            end_time=start_ns + round(record.duration_ms * 1e6),
        )
        self._processor.on_end(span)

    def shutdown(self) -> None:
        """Export what is still queued, then stop (at server shutdown)."""
        self._processor.shutdown()


def _otlp_exporter(endpoint: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise RuntimeError(
            "TOKENMILL_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
            "pip install 'tokenmill[otel]'"
        ) from exc
    return OTLPSpanExporter(endpoint=endpoint)
