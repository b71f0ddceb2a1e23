"""What a principal may ask of the gateway, checked before a request is queued: the model
and tool allow-lists, the key's rate limits, its budget. The request holds an Admission
until it ends; settling it returns the concurrency slot and settles the budget.

A tool offered off a key's allow-list either refuses the request or, under the key's
`tool_policy` "drop", is removed from the request body in place (see `RequestPolicy.check`)."""

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tokenmill.core.errors import Forbidden, RateLimited
from tokenmill.core.money import Money
from tokenmill.core.reservations import Reservation
from tokenmill.security.budgets import TokenBudgets
from tokenmill.security.keys import Principal, ToolPolicy
from tokenmill.security.limits import KeyLimiter


class SpendGuard(Protocol):
    """Money budgets (billing/budgets.py), seen from here: hold the most a request can cost,
    settle to what it cost."""

    def applicable(self, p: Principal) -> Sequence[object]: ...

    async def hold(
        self, p: Principal, model: str, prompt_bound: int, max_output: int, now: float
    ) -> list[Reservation]: ...

    def cost(
        self, p: Principal, model: str, at: float, prompt: int, cached: int, output: int
    ) -> Money: ...

    def settle(self, held: list[Reservation], spent: Money) -> None: ...


# (principal, what was denied or blocked, details) -> written to the audit log
DenialSink = Callable[[Principal, str, dict[str, Any]], Awaitable[None]]


def requested_tools(body: dict[str, Any]) -> set[str]:
    """Every tool a request offers the model, in the current and the legacy shape."""
    names = {
        str((t.get("function") or {}).get("name"))
        for t in body.get("tools") or ()
        if isinstance(t, dict)
    }
    names |= {str(f.get("name")) for f in body.get("functions") or () if isinstance(f, dict)}
    return names


def _forced_tools(choice: Any) -> set[str]:
    """The tools a `tool_choice` demands by name (chat's and the Responses API's shapes)."""
    if not isinstance(choice, dict):
        return set()
    if choice.get("type") == "allowed_tools":  # a subset to choose from; not one demanded
        return set()
    name = (choice.get("function") or {}).get("name") or choice.get("name")
    return {str(name)} if name is not None else set()


@dataclass(frozen=True)
class Ask:
    """What a request may cost, as far as it is known before the engine counts."""

    request_id: str
    model: str
    prompt_estimate: int  # a rough count, for rate limits (corrected when the engine counts)
    prompt_bytes: int  # the prompt text's UTF-8 length: bounds its tokens (see PromptBound)
    max_output: int | None  # the request's own limit per choice, if it set one
    parts: int = 1  # engine requests it makes: one per choice (`n`, a prompt list)


class PromptBound:
    """An upper bound on a prompt's tokens before the engine counts them, for budgets that
    must hold: byte-level tokenizers spend at least one byte per token, so the text's UTF-8
    length bounds its tokens; the chat template adds a per-model overhead, learned as the
    largest seen and never assumed below SEED."""

    SEED = 64

    def __init__(self) -> None:
        self._overhead: dict[str, int] = {}

    def of(self, ask: Ask) -> int:
        return ask.prompt_bytes + self._overhead.get(ask.model, self.SEED) * ask.parts

    def learn(self, ask: Ask, prompt_tokens: int) -> None:
        seen = -((ask.prompt_bytes - prompt_tokens) // ask.parts)  # per part, rounded up
        if seen > self._overhead.get(ask.model, self.SEED):
            self._overhead[ask.model] = seen


@dataclass
class Admission:
    principal: Principal
    ask: Ask
    reservation: Reservation | None
    # For a budgeted request that set no output limit: the limit the gateway sets, so that
    # what was reserved bounds what can be spent.
    max_tokens_cap: int | None = None
    money: list[Reservation] = field(default_factory=list)
    at: float = field(default_factory=time.time)
    settled: bool = False


class RequestPolicy:
    def __init__(
        self,
        limiter: KeyLimiter,
        budgets: TokenBudgets,
        on_denial: DenialSink,
        budget_max_tokens: int = 1024,
        spend: SpendGuard | None = None,
    ) -> None:
        self._spend = spend
        self._limiter = limiter
        self._budgets = budgets
        self._on_denial = on_denial
        self._budget_max_tokens = budget_max_tokens
        self._prompt_bound = PromptBound()

    async def check(self, p: Principal, body: dict[str, Any], request_id: str) -> list[str]:
        """The allow-lists, first of all checks: a key learns nothing (not even whether a
        model exists) about what it may not use.

        Under the key's tool policy "drop", tools off its allow-list are removed from `body`
        itself (`tools`, and `tool_choice` / `parallel_tool_calls` once no tool is left), so
        the caller goes on with the changed body; the names removed are returned (and
        audited as `policy.tool_dropped`). A request that cannot be served without a removed
        tool (its `tool_choice` names one, or is "required" and none is left) is refused."""
        model = str(body.get("model"))
        if p.models is not None and model not in p.models:
            await self._deny(p, "model_not_allowed", {"model": model, "request_id": request_id})
            raise Forbidden(
                f"this key may not use the model '{model}'", param="model", code="model_not_allowed"
            )
        if p.tools is None:
            return []
        refused = sorted(requested_tools(body) - p.tools)
        if not refused:
            return []
        if p.tool_policy is ToolPolicy.DROP and not body.get("functions"):
            forced = _forced_tools(body.get("tool_choice")) & set(refused)
            if not forced:
                return await self._drop_tools(p, body, refused, request_id)
            refused = sorted(forced)
        await self._deny(p, "tool_not_allowed", {"tools": refused, "request_id": request_id})
        raise Forbidden(
            f"this key may not offer the tools {refused}", param="tools", code="tool_not_allowed"
        )

    async def _drop_tools(
        self, p: Principal, body: dict[str, Any], dropped: list[str], request_id: str
    ) -> list[str]:
        allowed = p.tools or frozenset()
        kept = [
            t
            for t in body.get("tools") or ()
            if isinstance(t, dict) and (t.get("function") or {}).get("name") in allowed
        ]
        if not kept and body.get("tool_choice") == "required":
            await self._deny(p, "tool_not_allowed", {"tools": dropped, "request_id": request_id})
            raise Forbidden(
                f"tool_choice is 'required' but every tool offered is off this key's "
                f"allow-list: {dropped}",
                param="tool_choice",
                code="tool_not_allowed",
            )
        if kept:
            body["tools"] = kept
        else:  # OpenAI refuses tool_choice and parallel_tool_calls without tools
            for name in ("tools", "tool_choice", "parallel_tool_calls"):
                body.pop(name, None)
        await self._deny(p, "tool_dropped", {"tools": dropped, "request_id": request_id})
        return dropped

    async def admit(self, p: Principal, ask: Ask) -> Admission:
        """Rate limits and budgets, once the request's size is known."""
        self._limiter.admit(p, ask.prompt_estimate)
        money = self._spend is not None and bool(self._spend.applicable(p))
        budgeted = p.limits.budget_tokens is not None or money
        cap = self._budget_max_tokens if budgeted and ask.max_output is None else None
        bound, max_out = self._prompt_bound.of(ask), (ask.max_output or cap or 0) * ask.parts
        now = time.time()
        adm = Admission(p, ask, None, cap, at=now)
        try:
            adm.reservation = await self._budgets.reserve(p, bound + max_out, now)
            if money and self._spend is not None:
                adm.money = await self._spend.hold(p, ask.model, bound, max_out, now)
        except RateLimited:
            self.settle(adm, 0, 0, 0)
            await self._deny(
                p,
                "budget_exceeded",
                {"reserve_tokens": bound + max_out, "request_id": ask.request_id},
            )
            raise
        except BaseException:
            self.settle(adm, 0, 0, 0)
            raise
        return adm

    def settle(self, adm: Admission, prompt_tokens: int, cached: int, completion: int) -> None:
        """Once per admission, whatever happened to the request (0 tokens if none ran)."""
        if adm.settled:
            return
        adm.settled = True
        spent = prompt_tokens + completion
        self._limiter.release(adm.principal, adm.ask.prompt_estimate, spent)
        if adm.reservation is not None:
            self._budgets.settle(adm.reservation, spent)
        if adm.money and self._spend is not None:
            cost = self._spend.cost(
                adm.principal, adm.ask.model, adm.at, prompt_tokens, cached, completion
            )
            self._spend.settle(adm.money, cost)
        if prompt_tokens:
            self._prompt_bound.learn(adm.ask, prompt_tokens)

    async def tool_call_blocked(self, p: Principal, tool: str, request_id: str) -> None:
        await self._deny(p, "tool_call_blocked", {"tool": tool, "request_id": request_id})

    async def _deny(self, p: Principal, what: str, detail: dict[str, Any]) -> None:
        await self._on_denial(p, what, detail)


class ToolCallFilter:
    """Removes tool calls to tools outside an allow-list from responses, whole or streamed.
    A streamed call names its tool in its first delta; later deltas carry only its index."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        self.blocked: list[str] = []
        self._blocked_index: set[int] = set()
        self._kept = False

    def message(self, message: dict[str, Any]) -> None:
        calls = message.get("tool_calls")
        if calls:
            message["tool_calls"] = [c for c in calls if self._keep(c, None)] or None
            if message["tool_calls"] is None:
                del message["tool_calls"]

    def delta(self, delta: dict[str, Any]) -> None:
        calls = delta.get("tool_calls")
        if calls:
            kept = [c for c in calls if self._keep(c, c.get("index"))]
            if kept:
                delta["tool_calls"] = kept
            else:
                del delta["tool_calls"]

    def finish_reason(self, reason: str | None) -> str | None:
        """A turn that wanted only blocked tools ends as filtered content, not as tool calls."""
        if reason == "tool_calls" and self.blocked and not self._kept:
            return "content_filter"
        return reason

    def _keep(self, call: dict[str, Any], index: int | None) -> bool:
        name = (call.get("function") or {}).get("name")
        if name is None:  # a continuation: same fate as the call's first delta
            return index not in self._blocked_index
        if name in self.allowed:
            self._kept = True
            return True
        self.blocked.append(str(name))
        if index is not None:
            self._blocked_index.add(index)
        return False
