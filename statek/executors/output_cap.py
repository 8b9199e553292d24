"""Make a budget's output cap real: write it into the request, per wire format.

A budget with ``cap_output=True`` reserves what the remaining budget allows and the request is sent
with that cap (:attr:`~statek.executors.budget.Reservation.output_cap`), so the call cannot cost more
than its reservation. Each wire format names its cap differently; each of these caps counts the
reasoning ("thinking") tokens too, which is what makes it a bound:

=====================  ===========================================  ================================
wire format            field                                        reasoning counted in it
=====================  ===========================================  ================================
``chat_completions``   ``max_completion_tokens`` (``max_tokens``     yes (OpenAI: reasoning tokens are
                       when the body already uses it)                part of the completion)
``responses``          ``max_output_tokens``                         yes
``anthropic``          ``max_tokens``                                yes (``thinking.budget_tokens``
                                                                     must stay below it: lowered too)
``gemini``             ``generationConfig.maxOutputTokens``          yes (thinking counts against it;
                                                                     ``thinkingBudget`` lowered too)
=====================  ===========================================  ================================

A cap already lower than the budget's is kept. :func:`cap_payload` edits a request dict (statek's own
payloads); :func:`cap_body` a JSON body (the httpx transport, under an official SDK).
"""

from __future__ import annotations

import json
from typing import Any, Literal

__all__ = ["WireFormat", "cap_body", "cap_payload"]

WireFormat = Literal["chat_completions", "responses", "anthropic", "gemini"]

_CHAT_FIELDS = ("max_completion_tokens", "max_tokens")


def _lower(container: dict[str, Any], key: str, cap: int) -> None:
    current = container.get(key)
    if not (isinstance(current, int) and not isinstance(current, bool) and 0 < current <= cap):
        container[key] = cap


def cap_payload(
    payload: dict[str, Any], wire: WireFormat, cap: int, *, field: str | None = None
) -> dict[str, Any]:
    """Set ``payload``'s output cap to at most ``cap`` (in place; returned for chaining). ``field``
    names the chat-completions field to add when the body has none (a provider that only knows
    ``max_tokens``); default ``max_completion_tokens``."""
    if wire == "chat_completions":
        present = [key for key in _CHAT_FIELDS if key in payload]
        for key in present or [field or "max_completion_tokens"]:
            _lower(payload, key, cap)
    elif wire == "responses":
        _lower(payload, "max_output_tokens", cap)
    elif wire == "anthropic":
        _lower(payload, "max_tokens", cap)
        thinking = payload.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(thinking, dict) and isinstance(budget, int) and budget >= payload["max_tokens"]:
            # Anthropic requires budget_tokens < max_tokens (and at least 1024).
            thinking["budget_tokens"] = max(payload["max_tokens"] - 1, 1)
    elif wire == "gemini":
        config = payload.get("generationConfig")
        if not isinstance(config, dict):
            config = payload["generationConfig"] = {}
        _lower(config, "maxOutputTokens", cap)
        thinking = config.get("thinkingConfig")
        if isinstance(thinking, dict) and isinstance(thinking.get("thinkingBudget"), int):
            thinking["thinkingBudget"] = min(thinking["thinkingBudget"], cap)
    else:
        raise ValueError(f"unknown wire format {wire!r}")
    return payload


def cap_body(body: bytes, wire: WireFormat, cap: int, *, field: str | None = None) -> bytes:
    """``body`` (a JSON object) with its output cap set to at most ``cap``; a body that is not a JSON
    object is returned as it is (the caller then cannot bound the call: it should refuse it)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if not isinstance(payload, dict):
        return body
    cap_payload(payload, wire, cap, field=field)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
