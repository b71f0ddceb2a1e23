"""Spans over OTLP/HTTP from a real server to a real receiver (an OTLP/HTTP endpoint decoding
the protobuf the SDK's exporter sends, as a collector would), compared with the ledger: one
span per metered request, whose GenAI token counts are the ledger's, exactly; the caller's
trace continued; the choices of an n=2 request sibling spans."""

import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tokenmill.testing import ServerProcess

pytestmark = pytest.mark.engine

CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource_spans in request.resource_spans:
                for kv in resource_spans.resource.attributes:
                    if kv.key == "service.name":
                        self.server.services.add(kv.value.string_value)
                for scope_spans in resource_spans.scope_spans:
                    self.server.spans.extend(scope_spans.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_each_metered_request_is_one_span_with_the_ledger_s_counts(
    tmp_path: Path, receiver: Receiver
) -> None:
    srv = ServerProcess(tmp_path / "data", extra_env={"TOKENMILL_OTLP_ENDPOINT": receiver.url})
    srv.start()
    try:
        key = srv.new_tenant_key("traced")
        auth = {"Authorization": f"Bearer {key}"}
        ask = [{"role": "user", "content": "Name a colour."}]
        with httpx.Client(base_url=srv.url + "/v1", headers=auth, timeout=60) as http:
            caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
            bodies = [
                ({"messages": ask, "max_tokens": 6}, caller),
                ({"messages": ask, "max_tokens": 6, "stream": True,
                  "stream_options": {"include_usage": True}}, {}),
                ({"messages": ask, "max_tokens": 4, "n": 2}, caller),
            ]  # fmt: skip
            for body, headers in bodies:
                resp = http.post("/chat/completions", json={"model": "smollm2-135m", **body},
                                 headers=headers)  # fmt: skip
                assert resp.status_code == 200, resp.text
            resp = http.post("/completions", json={"model": "smollm2-135m", "prompt": "Hi",
                                                   "max_tokens": 3})  # fmt: skip
            assert resp.status_code == 200, resp.text
    finally:
        srv.stop()  # a clean stop exports what is queued, and the ledger is complete
    with sqlite3.connect(srv.data_dir / "tokenmill.db") as db:
        ledger = {rid: (p, c, k) for rid, p, c, k in db.execute(
            "SELECT request_id, prompt_tokens, completion_tokens, cached_tokens "
            "FROM usage_records")}  # fmt: skip
    assert len(ledger) == 5  # one, one, two choices, one
    spans = {}
    for span in receiver.spans:
        attrs = {kv.key: _value(kv.value) for kv in span.attributes}
        spans[attrs["tokenmill.request_id"]] = (span, attrs)
    assert set(spans) == set(ledger)  # one span per metered request, none else
    for rid, (_, attrs) in spans.items():
        counts = (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"],
                  attrs["gen_ai.usage.cache_read.input_tokens"])  # fmt: skip
        assert counts == ledger[rid], rid
        assert attrs["gen_ai.request.model"] == "smollm2-135m"
        assert attrs["gen_ai.provider.name"] == "llamacpp"
        assert attrs["tokenmill.tenant"] == "traced"
    operations = sorted(attrs["gen_ai.operation.name"] for _, attrs in spans.values())
    assert operations == ["chat"] * 4 + ["text_completion"]
    assert receiver.services == {"tokenmill"}
    # The caller's trace continues: its span is the parent of the first request's span and of
    # each choice of the n=2 one, which are siblings with spans of their own.
    under_caller = [s for s, _ in spans.values() if s.trace_id.hex() == CALLER_TRACE]
    assert len(under_caller) == 3
    assert {s.parent_span_id.hex() for s in under_caller} == {CALLER_SPAN}
    assert len({s.span_id.hex() for s in under_caller}) == 3
    own = [s for s, _ in spans.values() if s.trace_id.hex() != CALLER_TRACE]
    assert len(own) == 2 and all(s.parent_span_id == b"" for s in own)  # no traceparent sent
