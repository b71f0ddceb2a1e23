"""The Responses API: /v1/responses, and the responses kept for previous_response_id.

A Responses request is translated to a chat completion (gateway/responses_input.py) and served
by the same path as /v1/chat/completions: the same key checks, allow-lists, budgets, fair queue
and one usage record (endpoint "chat"). The answer is translated back, whole or as events.
"""

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from tokenmill.api.body import read_json
from tokenmill.api.guard import caller
from tokenmill.api.openai_routes import SSE_HEADERS, body_doc, client_gone
from tokenmill.api.params import RESPONSES, ignored_header, sift
from tokenmill.api.schemas import ResponsesRequest, validate_body
from tokenmill.api.state import services
from tokenmill.core.errors import NotFound
from tokenmill.core.ids import new_id
from tokenmill.gateway.proxy import ProxyResult
from tokenmill.gateway.response_store import ResponseStore, StoredResponse
from tokenmill.gateway.responses import from_chat, new_response
from tokenmill.gateway.responses_input import ChatTurn, chat_request, messages_of
from tokenmill.gateway.responses_stream import ResponseEvents, response_events
from tokenmill.observe.tracing import continue_trace
from tokenmill.security.roles import Permission

router = APIRouter(prefix="/v1", tags=["openai"])


def response_store(request: Request) -> ResponseStore:
    store: ResponseStore = request.app.state.response_store
    return store


def _stored(store: ResponseStore, tenant: str, response_id: str, param: str) -> StoredResponse:
    entry = store.get(tenant, response_id)
    if entry is None:  # another tenant's response does not exist for this one
        raise NotFound(
            f"No response with id '{response_id}' is stored here (it may have expired; "
            "responses are kept in memory for a while, see docs/openai.md)",
            param=param,
            code="response_not_found",
        )
    return entry


def _keeper(
    store: ResponseStore, tenant: str, turn: ChatTurn, keep: bool
) -> Callable[[dict[str, Any]], None]:
    """What to do with the finished response: keep it with its conversation, unless
    `store: false` said to keep nothing."""

    def put(response: dict[str, Any]) -> None:
        if keep:  # the turn's messages as the engine got them (masked, if PII is masked)
            store.put(tenant, response, turn.conversation() + messages_of(response["output"]))

    return put


_ANSWER = "The Response; its server-sent events when `stream` is true"


@router.post("/responses", openapi_extra=body_doc(ResponsesRequest, _ANSWER))
async def create_response(request: Request) -> Response:
    svc = services(request)
    principal = await caller(request, svc, Permission.INFER)
    body = await read_json(request, svc.settings.max_body_bytes)
    validate_body(ResponsesRequest, body)
    body, ignored = sift(RESPONSES, body)
    store = response_store(request)
    previous = body.get("previous_response_id")
    history = (
        _stored(store, principal.tenant, previous, "previous_response_id").messages
        if previous
        else []
    )
    turn = chat_request(body, history)
    response = new_response(body, new_id("resp"))
    keep = _keeper(store, principal.tenant, turn, body.get("store") is not False)
    headers = ignored_header(ignored)
    result = await svc.proxy.handle(
        principal,
        request.state.request_id,
        "chat",
        turn.body,
        lambda: client_gone(request),
        continue_trace(request.headers.get("traceparent")),
    )
    if isinstance(result, ProxyResult):
        done = from_chat(orjson.loads(result.body), response)
        keep(done)
        return Response(orjson.dumps(done), media_type="application/json", headers=headers)
    events = response_events(result, ResponseEvents(response), keep)
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )


@router.get("/responses/{response_id}")
async def retrieve_response(request: Request, response_id: str) -> dict[str, Any]:
    svc = services(request)
    principal = await caller(request, svc, Permission.INFER)
    store = response_store(request)
    return _stored(store, principal.tenant, response_id, "response_id").response


@router.delete("/responses/{response_id}")
async def delete_response(request: Request, response_id: str) -> dict[str, Any]:
    """Forgets a stored response (its conversation too) before it expires."""
    svc = services(request)
    principal = await caller(request, svc, Permission.INFER)
    store = response_store(request)
    _stored(store, principal.tenant, response_id, "response_id")
    store.delete(principal.tenant, response_id)
    return {"id": response_id, "object": "response", "deleted": True}


HOT_ROUTES = {("POST", "/v1/responses"): create_response}
