"""Every error leaves in OpenAI's JSON shape; no traceback ever reaches a client."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tokenmill.api.body import invalid_json
from tokenmill.core.errors import (
    InternalError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    TokenMillError,
)

log = logging.getLogger(__name__)

_BY_STATUS: dict[int, type[TokenMillError]] = {
    400: InvalidRequest,
    404: NotFound,
    413: PayloadTooLarge,
}

_ROUTER_404 = HTTPStatus.NOT_FOUND.phrase  # the detail of Starlette's own "no such route"


def error_response(err: TokenMillError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        err.body(), status_code=err.status, headers={**err.headers, **(headers or {})}
    )


async def _tokenmill_error(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TokenMillError)
    return error_response(exc)


async def _validation_error(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first: dict[str, Any] = (
        exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    )
    if first.get("type") == "json_invalid":
        return error_response(invalid_json(str((first.get("ctx") or {}).get("error", ""))))
    if tuple(first.get("loc", ())) == ("body",):  # empty, not an object, or not sent as JSON
        return error_response(
            InvalidRequest(
                "The request body must be a JSON object, sent with 'Content-Type: application/json'"
            )
        )
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    msg = f"Invalid value for '{param}': {first.get('msg')}" if param else str(first.get("msg"))
    return error_response(InvalidRequest(msg, param=param))


async def _http_error(req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and exc.detail == _ROUTER_404:  # no route: say which was asked
        return error_response(NotFound(f"Unknown route: {req.method} {req.url.path}"))
    kind = _BY_STATUS.get(exc.status_code)
    if kind is not None:
        return error_response(kind(str(exc.detail)))
    err = TokenMillError(str(exc.detail))
    err.status, err.type, err.code = exc.status_code, "invalid_request_error", "http_error"
    return error_response(err, exc.headers)  # e.g. 405 keeps its Allow header


async def _unexpected(req: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", req.method, req.url.path, exc_info=exc)
    return error_response(InternalError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TokenMillError, _tokenmill_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
