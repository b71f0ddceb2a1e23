"""Reading request bodies within a size limit, as JSON."""

from typing import Any

import orjson
from starlette.requests import Request

from tokenmill.core.errors import InvalidRequest, PayloadTooLarge


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    if not size:
        raise InvalidRequest("The request body is empty; send a JSON object")
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise invalid_json(str(exc)) from None


def invalid_json(detail: str) -> InvalidRequest:
    return InvalidRequest(f"The request body is not valid JSON: {detail}", code="invalid_json")
