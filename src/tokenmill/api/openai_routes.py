"""The OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/models."""

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from tokenmill.api.body import read_json
from tokenmill.api.guard import caller
from tokenmill.api.schemas import ChatCompletionRequest, CompletionRequest, validate_body
from tokenmill.api.state import services
from tokenmill.gateway.proxy import ProxyResult
from tokenmill.observe.tracing import continue_trace
from tokenmill.security.roles import Permission

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _body_doc(schema: type) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema.__name__}"}
    answer = {
        "description": "The completion; a server-sent event stream when `stream` is true",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
        "responses": {"200": answer},
    }


async def _infer(request: Request, endpoint: str, schema: type[Any]) -> Response:
    svc = services(request)
    principal = await caller(request, svc, Permission.INFER)
    body = await read_json(request, svc.settings.max_body_bytes)
    validate_body(schema, body)
    trace = continue_trace(request.headers.get("traceparent"))
    result = await svc.proxy.handle(
        principal,
        request.state.request_id,
        endpoint,
        body,
        lambda: _client_gone(request),
        trace,
    )
    if isinstance(result, ProxyResult):
        return Response(result.body, status_code=result.status, media_type="application/json")
    return StreamingResponse(result, media_type="text/event-stream", headers=_SSE_HEADERS)


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body is read: nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post("/chat/completions", openapi_extra=_body_doc(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    return await _infer(request, "chat", ChatCompletionRequest)


@router.post("/completions", openapi_extra=_body_doc(CompletionRequest))
async def completions(request: Request) -> Response:
    return await _infer(request, "completions", CompletionRequest)


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    svc = services(request)
    principal = await caller(request, svc, Permission.INFER)
    created = int(time.time())
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "tokenmill"}
            for name in svc.deployments.names()
            if principal.models is None or name in principal.models
        ],
    }


HOT_ROUTES = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/completions"): completions,
}
