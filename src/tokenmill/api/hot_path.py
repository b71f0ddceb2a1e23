"""Serves the inference routes straight from ASGI, everything else through FastAPI.

FastAPI's routing and middleware layers cost about a third of the event loop's time per request
on the inference path (measured with py-spy at saturation); these routes need none of them.
The same handlers stay registered in FastAPI too, so they appear in the OpenAPI schema.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tokenmill.api.errors import error_response
from tokenmill.core.errors import TokenMillError

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


class HotPathRouter:
    def __init__(self, app: FastAPI, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get((scope.get("method", ""), scope.get("path", "")))
        if scope["type"] != "http" or handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except TokenMillError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("unhandled error on %s", scope["path"])
            response = error_response(
                TokenMillError("The server had an error processing your request.")
            )
        await response(scope, receive, send)
