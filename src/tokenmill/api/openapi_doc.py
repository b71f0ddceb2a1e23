"""The OpenAPI document tells the truth about errors.

Every error leaves in OpenAI's shape (api/errors.py, and the hot path), with the statuses below;
FastAPI documents none of them, and documents a 422 that is never sent (request validation
fails with 400, as OpenAI's API does). Clients generated from the schema, and Schemathesis,
would otherwise take every error for a broken contract.
"""

import json
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from tokenmill.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    ResponsesRequest,
)

ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        }
    },
}
ERRORS = {
    "400": "Invalid request: a parameter or the body failed validation",
    "401": "Missing, unknown or revoked API key",
    "403": "The key is valid but may not do this",
    "404": "No such resource, or no such model",
    "409": "Conflicts with the current state, e.g. the name is taken",
    "413": "The request body is over the size limit",
    "429": "Rate limited, or waited too long for capacity: retry after Retry-After seconds",
    "503": "No replica can serve the model now",
}
_REF = "#/components/schemas/ErrorResponse"
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
_BODIES = (ChatCompletionRequest, CompletionRequest, ResponsesRequest, EmbeddingsRequest)
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")  # the bodies of FastAPI's own 422


def install_error_docs(app: FastAPI) -> None:
    """Adds the error responses to the app's OpenAPI document, built once on first use."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(build())  # build() caches the document it returns: edit in place
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _body_schemas() -> dict[str, Any]:
    """The /v1 request bodies: validated by hand on the hot path, so FastAPI never saw them;
    openai_routes and responses_routes refer to them by name."""
    _, defs = models_json_schema(
        [(model, "validation") for model in _BODIES],
        ref_template="#/components/schemas/{model}",
    )
    return dict(defs["$defs"])


def document_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorResponse"] = ERROR_SCHEMA
    for name, definition in _body_schemas().items():
        schemas.setdefault(name, definition)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue  # path-level "parameters"
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in ERRORS.items():
                responses.setdefault(status, _error_response(status, description))
    for name in _FASTAPI_422:  # in this order: the first refers to the second
        if f'"#/components/schemas/{name}"' not in json.dumps(schema):
            schemas.pop(name, None)


def _error_response(status: str, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF}}},
    }
    if status == "429":
        response["headers"] = _RETRY_AFTER
    return response
