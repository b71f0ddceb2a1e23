"""The OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/models."""

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from tokenmill.api.auth import authenticate, require_role
from tokenmill.api.body import read_json
from tokenmill.api.schemas import ChatCompletionRequest, CompletionRequest, validate_body
from tokenmill.api.state import services
from tokenmill.gateway.proxy import ProxyResult
from tokenmill.security.keys import Role

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _body_doc(schema: type) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


async def _infer(request: Request, endpoint: str, schema: type[Any]) -> Response:
    svc = services(request)
    principal = authenticate(request, svc.accounts.keyring)
    require_role(principal, Role.INFERENCE)
    body = await read_json(request, svc.settings.max_body_bytes)
    validate_body(schema, body)
    result = await svc.proxy.handle(
        principal, request.state.request_id, endpoint, body, lambda: _client_gone(request)
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
    authenticate(request, svc.accounts.keyring)
    created = int(time.time())
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "tokenmill"}
            for name in svc.deployments.names()
        ],
    }


HOT_ROUTES = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/completions"): completions,
}
