"""The OpenAI request bodies we accept. Validation happens here, so engines only ever see
well-formed requests and clients get a precise 400 instead of an engine's 500."""

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from tokenmill.core.errors import InvalidRequest

# Messages (or input items) in one request. Each costs the engine template work and the
# gateway a scan, whatever its size: 100,000 tiny messages held a slot for 398 s and came back
# a 400 with no tokens to meter. Agent transcripts run to hundreds.
MAX_MESSAGES = 2048


class _Typed(BaseModel):
    # Every field we know is type-checked, with no coercion ("stream": "false" is an error, not
    # False): the engine gets the client's body. Fields we do not know are kept, not refused:
    # clients send OpenAI's new fields before we learn of them, and api/params.py decides
    # what reaches the engine.
    model_config = ConfigDict(extra="allow", strict=True)


class StreamOptions(_Typed):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None
    continuous_usage_stats: bool | None = None  # vLLM's


class FunctionDefinition(_Typed):
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Typed):
    type: Literal["function"]  # the one kind of tool the engines can call
    function: FunctionDefinition


class FunctionCall(_Typed):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(_Typed):
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(_Typed):
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

    @model_validator(mode="after")
    def _assistant_says_something(self) -> "ChatMessage":
        # OpenAI: content is "required unless tool_calls or function_call is specified"; the
        # engines need one of the two keys (a deprecated function_call alone is refused too).
        if self.role == "assistant" and not {"content", "tool_calls"} & self.model_fields_set:
            raise PydanticCustomError(
                "assistant_message", "an assistant message needs 'content' or 'tool_calls'"
            )
        return self


Temperature = Annotated[float, Field(ge=0, le=2)]
Penalty = Annotated[float, Field(ge=-2, le=2)]
Probability = Annotated[float, Field(ge=0, le=1)]
PositiveInt = Annotated[int, Field(ge=1, le=2**31 - 1)]
# Enumerations OpenAI keeps growing ("xhigh", "max") are strings here: a value we only pass on
# or drop cannot be wrong, and a new one must not break a client.
OpenEnum = str


class _Sampling(_Typed):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    stream: bool | None = False  # OpenAI's is nullable: null is false
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None  # one engine request each: choices.py
    stop: str | list[str] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: int | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    # OpenAI's tiers; TokenMill serves "flex" in its batch band (shed first under overload).
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    # Common engine extensions (llama.cpp, vLLM) that clients send through the OpenAI SDK.
    top_k: Annotated[int, Field(ge=0)] | None = None
    min_p: Probability | None = None
    repeat_penalty: Annotated[float, Field(ge=0)] | None = None


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    max_completion_tokens: PositiveInt | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    response_format: dict[str, Any] | None = None

    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: OpenEnum | None = None
    verbosity: OpenEnum | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: OpenEnum | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None
    prediction: dict[str, Any] | None = None
    modalities: list[OpenEnum] | None = None
    audio: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    functions: list[FunctionDefinition] | None = None  # deprecated by OpenAI for `tools`
    function_call: str | dict[str, Any] | None = None

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("logprobs") is not True:  # OpenAI's rule too
            raise PydanticCustomError("top_logprobs", "it needs 'logprobs' set to true")
        return value


NonEmpty = Field(min_length=1)
TokenId = Annotated[int, Field(ge=0)]


class CompletionRequest(_Sampling):
    # OpenAI's four shapes; no empty list and no negative token id, which engines refuse.
    prompt: (
        str
        | Annotated[list[str], NonEmpty]
        | Annotated[list[TokenId], NonEmpty]
        | Annotated[list[Annotated[list[TokenId], NonEmpty]], NonEmpty]
    )
    echo: bool | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    suffix: str | None = None
    best_of: Annotated[int, Field(ge=0, le=20)] | None = None


class ResponsesTool(_Typed):
    # Function tools are flat here ({type, name, parameters}); every other type is one that
    # OpenAI runs itself (web_search, file_search, ...), refused by name in the translation.
    type: Annotated[str, Field(min_length=1)]
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesText(_Typed):
    format: dict[str, Any] | None = None
    verbosity: OpenEnum | None = None


class ResponsesReasoning(_Typed):
    effort: OpenEnum | None = None
    summary: OpenEnum | None = None
    generate_summary: OpenEnum | None = None  # deprecated by OpenAI for `summary`


class ResponsesStreamOptions(_Typed):
    include_obfuscation: bool | None = None


class ResponsesRequest(_Typed):
    """OpenAI's *Create a model response*. Input items are checked one by one as they are
    translated (gateway/responses_input.py), so a wrong one is named by its place."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: str | Annotated[list[dict[str, Any]], Field(max_length=MAX_MESSAGES)] | None = None
    instructions: str | None = None
    stream: bool | None = False  # OpenAI's is nullable: null is false
    stream_options: ResponsesStreamOptions | None = None
    max_output_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: ResponsesText | None = None
    reasoning: ResponsesReasoning | None = None
    previous_response_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    truncation: OpenEnum | None = None
    user: str | None = None
    include: list[OpenEnum] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    max_tool_calls: Annotated[int, Field(ge=0)] | None = None  # dropped; 0 is meaningful
    background: bool | None = None
    background_options: dict[str, Any] | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    context_management: list[dict[str, Any]] | None = None
    moderation: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: OpenEnum | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    image: dict[str, Any] | None = None
    access_programs: dict[str, Any] | None = None


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class EmbeddingsRequest(_Typed):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    # OpenAI's limits: no empty input, at most 2048 inputs in one request.
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=2048)]
        | TokenIds
        | Annotated[list[TokenIds], Field(min_length=1, max_length=2048)]
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None  # refused in api/params.py: no engine shortens
    user: str | None = None


def validate_body(schema: type[_Typed], body: Any) -> _Typed:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        raise _as_invalid_request(_telling(exc.errors(include_url=False)), body) from None


def _telling(errors: list[ErrorDetails]) -> ErrorDetails:
    """The first field's error that says what is wrong: each branch of a union fails on its
    own, and "Input should be a valid string" misleads about `prompt: []`; the branch whose
    type matched ("List should have at least 1 item") tells the client what to change."""
    first = errors[0]
    same_field = (e for e in errors if e["loc"][:1] == first["loc"][:1])
    return next((e for e in same_field if not e["type"].endswith("_type")), first)


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
    if err["type"] == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'", param=param, code="missing_parameter"
        )
    return InvalidRequest(
        f"Invalid value for '{param}': {err['msg']}", param=param, code="invalid_value"
    )
