"""Errors the API reports in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

import math
from typing import Any


class TokenMillError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers: dict[str, str] = {}  # sent with the error response
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InternalError(TokenMillError):
    """Something broke on our side; the details go to the log, never to the client."""

    def __init__(self) -> None:
        super().__init__("The server had an error processing your request.")


class InvalidRequest(TokenMillError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthenticated(TokenMillError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(TokenMillError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(TokenMillError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(TokenMillError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(TokenMillError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(TokenMillError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None):
        super().__init__(message, code=code)
        self.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))


class ClientClosed(TokenMillError):
    """The client left before its answer; nobody reads this, but logs and metrics do."""

    status = 499
    type = "invalid_request_error"
    code = "client_closed_request"


class UpstreamError(TokenMillError):
    status = 502
    type = "server_error"
    code = "upstream_error"


class Unavailable(TokenMillError):
    status = 503
    type = "server_error"
    code = "no_replica_available"
