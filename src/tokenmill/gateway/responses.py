"""The Responses API's answer, built from a chat completion: the Response object, its output
items (reasoning, a message, function calls), its status and its usage.

The usage is the engine's own count, the one the usage record holds: a client's Response says
exactly what the ledger bills.
"""

import time
from typing import Any

from tokenmill.core.ids import new_id

# Chat finish reasons that leave a response incomplete, and why in Responses' words.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_response(req: dict[str, Any], response_id: str) -> dict[str, Any]:
    """The Response before any output, echoing the request's settings (`req`: the validated,
    sifted request; dropped fields are not echoed)."""
    reasoning = req.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "metadata": req.get("metadata") or {},
        "model": req["model"],
        "output": [],
        "parallel_tool_calls": req.get("parallel_tool_calls") is not False,
        "previous_response_id": req.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "service_tier": req.get("service_tier") or "default",
        "store": req.get("store") is not False,
        "temperature": req.get("temperature"),
        "text": {"format": (req.get("text") or {}).get("format") or {"type": "text"}},
        "tool_choice": req.get("tool_choice") or "auto",
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": None,
    }


def message_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": new_id("rs"),
        "type": "reasoning",
        "status": status,
        "summary": [],
        "content": [reasoning_text(text)],
    }


def reasoning_text(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def function_call_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    """A chat tool call as a Responses function_call item."""
    function = call.get("function") or {}
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": status,
        "call_id": call.get("id") or new_id("call"),
        "name": function.get("name") or "",
        "arguments": function.get("arguments") or "",
    }


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage in Responses' words."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached), "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": prompt + completion,
    }


def item_status(finish_reason: str | None) -> str:
    return "incomplete" if finish_reason in _INCOMPLETE else "completed"


def finish(
    response: dict[str, Any],
    output: list[dict[str, Any]],
    finish_reason: str | None,
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    """`response`, done: its output, status and usage set."""
    reason = _INCOMPLETE.get(finish_reason or "")
    response.update(
        status="incomplete" if reason else "completed",
        incomplete_details={"reason": reason} if reason else None,
        output=output,
        usage=usage_of(usage),
        completed_at=int(time.time()),
    )
    return response


def from_chat(answer: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """A whole chat completion as `response`, done."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    reason = choice.get("finish_reason")
    status = item_status(reason)
    output = []
    if message.get("reasoning_content"):
        output.append(reasoning_item(message["reasoning_content"], status))
    calls = message.get("tool_calls") or []
    if message.get("content") or not calls:
        output.append(message_item(message.get("content") or "", status))
    output += [function_call_item(call, status) for call in calls]
    return finish(response, output, reason, answer.get("usage"))
