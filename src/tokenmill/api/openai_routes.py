"""The OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/models (the Responses API: api/responses_routes.py)."""

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from tokenmill.api.body import read_json
from tokenmill.api.guard import caller
from tokenmill.api.params import IGNORED_HEADER, TABLES, ignored_header, sift
from tokenmill.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    validate_body,
)
from tokenmill.api.state import Services, services
from tokenmill.core.errors import NotFound
from tokenmill.gateway.proxy import ProxyResult
from tokenmill.observe.tracing import continue_trace
from tokenmill.security.keys import Principal
from tokenmill.security.roles import Permission

router = APIRouter(prefix="/v1", tags=["openai"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def body_doc(
    schema: type[BaseModel],
    answer_is: str = "The completion; a server-sent event stream when `stream` is true",
) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema.__name__}"}
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if "stream" in schema.model_fields:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    answer = {
        "description": answer_is,
        "content": content,
        "headers": {
            IGNORED_HEADER: {
                "description": "The request fields TokenMill dropped, comma-separated "
                "(docs/openai.md lists what happens to each field)",
                "schema": {"type": "string"},
            }
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
    body, ignored = sift(TABLES[endpoint], body)
    headers = ignored_header(ignored)
    trace = continue_trace(request.headers.get("traceparent"))
    result = await svc.proxy.handle(
        principal,
        request.state.request_id,
        endpoint,
        body,
        lambda: client_gone(request),
        trace,
    )
    if isinstance(result, ProxyResult):
        return Response(
            result.body, status_code=result.status, media_type="application/json", headers=headers
        )
    return StreamingResponse(
        result, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )


async def client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body is read: nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post("/chat/completions", openapi_extra=body_doc(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    return await _infer(request, "chat", ChatCompletionRequest)


@router.post("/completions", openapi_extra=body_doc(CompletionRequest))
async def completions(request: Request) -> Response:
    return await _infer(request, "completions", CompletionRequest)


@router.post("/embeddings", openapi_extra=body_doc(EmbeddingsRequest, "The embeddings"))
async def embeddings(request: Request) -> Response:
    return await _infer(request, "embeddings", EmbeddingsRequest)


def _visible_models(svc: Services, principal: Principal) -> list[str]:
    """The deployments this key may use: the same list for listing and for retrieving."""
    allowed = principal.models
    return [name for name in svc.deployments.names() if allowed is None or name in allowed]


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(time.time()), "owned_by": "tokenmill"}


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    svc = services(request)
    principal = await caller(request, svc, Permission.INFER)
    return {"object": "list", "data": [_model_object(n) for n in _visible_models(svc, principal)]}


@router.get("/models/{model}")
async def retrieve_model(request: Request, model: str) -> dict[str, Any]:
    svc = services(request)
    principal = await caller(request, svc, Permission.INFER)
    if model not in _visible_models(svc, principal):  # another key's model does not exist here
        raise NotFound(f"The model '{model}' does not exist", param="model", code="model_not_found")
    return _model_object(model)


HOT_ROUTES = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/completions"): completions,
    ("POST", "/v1/embeddings"): embeddings,
}
