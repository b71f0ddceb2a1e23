"""The OpenAI request bodies we accept. Validation happens here, so engines only ever see
well-formed requests and clients get a precise 400 instead of an engine's 500."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from tokenmill.core.errors import InvalidRequest


class _Strict(BaseModel):
    # Unknown parameters are refused by name rather than silently dropped, and no type is
    # coerced ("stream": "false" is an error, not False): the engine gets the client's body.
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool | None = None
    continuous_usage_stats: bool | None = None


class _Open(BaseModel):
    # Objects whose fields the engine relies on are checked; the rest passes through as sent.
    model_config = ConfigDict(extra="allow", strict=True)


class FunctionDefinition(_Open):
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"]  # the one kind of tool the engines can call
    function: FunctionDefinition


class FunctionCall(_Open):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(_Open):
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content")
    @classmethod
    def _text_parts_have_text(cls, content: object) -> object:
        for part in content if isinstance(content, list) else ():
            if part.get("type") == "text" and not isinstance(part.get("text"), str):
                raise PydanticCustomError(
                    "text_part", "a part of type 'text' needs a string 'text'"
                )
        return content


Temperature = Annotated[float, Field(ge=0, le=2)]
Penalty = Annotated[float, Field(ge=-2, le=2)]
Probability = Annotated[float, Field(ge=0, le=1)]
PositiveInt = Annotated[int, Field(ge=1, le=2**31 - 1)]


class _Sampling(_Strict):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    n: Literal[1] | None = None  # one choice per request: n > 1 is refused, not half-served
    stop: str | list[str] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: int | None = None
    user: str | None = None
    # OpenAI's tiers; TokenMill serves "flex" in its batch band (shed first under overload).
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None
    logit_bias: dict[str, float] | None = None
    # Common engine extensions (llama.cpp, vLLM) that clients send through the OpenAI SDK.
    top_k: Annotated[int, Field(ge=0)] | None = None
    min_p: Probability | None = None
    repeat_penalty: Annotated[float, Field(ge=0)] | None = None


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    suffix: str | None = None
    best_of: Literal[1] | None = None


def validate_body(schema: type[_Sampling], body: Any) -> _Sampling:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        raise _as_invalid_request(exc.errors(include_url=False)[0], body) from None


def _param(loc: tuple[int | str, ...], body: dict[str, Any], missing: bool) -> str | None:
    """The part of `loc` that is a path in the client's JSON: pydantic files a union's failures
    under branch names ("stop.str", "stop.list[str]") that the client never wrote."""
    path: list[str] = []
    value: Any = body
    for part in loc:
        in_object = isinstance(value, dict) and part in value
        in_array = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if not (in_object or in_array):
            break
        value = value[part]
        path.append(str(part))
    if missing and len(path) == len(loc) - 1:
        path.append(str(loc[-1]))  # the key the client left out
    return ".".join(path) or None


def _as_invalid_request(err: ErrorDetails, body: dict[str, Any]) -> InvalidRequest:
    param = _param(err["loc"], body, missing=err["type"] == "missing")
    if err["type"] == "extra_forbidden":
        return InvalidRequest(
            f"Unsupported parameter: '{param}'", param=param, code="unsupported_parameter"
        )
    if err["type"] == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'", param=param, code="missing_parameter"
        )
    return InvalidRequest(
        f"Invalid value for '{param}': {err['msg']}", param=param, code="invalid_value"
    )
