"""Anthropic Messages answers.

Usage convention: ``input_tokens`` counts only the prompt tokens that were neither read from nor written
to the cache; ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` come on top, the latter
split by lifetime in ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``.
``output_tokens`` includes thinking, broken out in ``output_tokens_details.thinking_tokens`` (sent
only when non-zero). Anthropic reports no cost.

Streaming (``"stream": true``): ``message_start`` (input side of the usage, a placeholder
``output_tokens: 1``), ``ping``, per content block ``content_block_start`` / ``_delta`` (``text_delta``,
``thinking_delta`` + ``signature_delta``, ``input_json_delta``) / ``_stop``, then one ``message_delta``
with the stop reason and the *cumulative* usage, and ``message_stop``.
"""

from __future__ import annotations

import json
from typing import Any

from ._wire import WireFormat, json_response, pieces, sse_event, stream_response
from .behavior import Reply, Usage
from .exchange import SimRequest, SimResponse

__all__ = ["WIRE", "error_body", "render_reply", "usage_body"]

_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def usage_body(usage: Usage) -> tuple[dict[str, Any], Usage]:
    """The wire ``usage`` object for ``usage``, and the :class:`Usage` it actually conveys."""
    writes_1h = usage.cache_write_1h_tokens
    body: dict[str, Any] = {
        "input_tokens": usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens - writes_1h,
            "ephemeral_1h_input_tokens": writes_1h,
        },
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }
    if usage.reasoning_tokens:
        body["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return body, Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=writes_1h,
        reasoning_tokens=usage.reasoning_tokens,
    )


def _call_id(reply: Reply, i: int) -> str:
    return reply.tool_calls[i].id or f"toolu_{reply.call_tokens[i]}"


def _signature(reply: Reply) -> str:
    return f"c2ltdWxhdGVk{reply.token}"


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.thinking:
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": _signature(reply)})
    if reply.text or not reply.tool_calls:
        blocks.append({"type": "text", "text": reply.text})
    blocks += [
        {"type": "tool_use", "id": _call_id(reply, i), "name": c.name, "input": dict(c.kwargs)}
        for i, c in enumerate(reply.tool_calls)
    ]
    return blocks


def render_reply(reply: Reply, request: SimRequest) -> SimResponse:
    """A Messages answer (a ``message`` object or an SSE event stream) for ``reply``."""
    wire_usage, reported = usage_body(reply.usage)
    if request.stream:
        return _stream(reply, wire_usage, reported)
    answer = {
        "id": f"msg_{reply.token}",
        "type": "message",
        "role": "assistant",
        "model": reply.response_model,
        "content": _blocks(reply),
        "stop_reason": _STOP[reply.finish],
        "stop_sequence": None,
        "usage": wire_usage,
    }
    return json_response(200, answer, reply=reply, usage=reported, wire_usage=wire_usage)


def _stream(reply: Reply, wire_usage: dict[str, Any], reported: Usage) -> SimResponse:
    start_usage = {**wire_usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    message: dict[str, Any] = {
        "id": f"msg_{reply.token}",
        "type": "message",
        "role": "assistant",
        "model": reply.response_model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [
        sse_event({"type": "message_start", "message": message}, "message_start"),
        sse_event({"type": "ping"}, "ping"),
    ]

    def event(kind: str, **data: Any) -> bytes:
        return sse_event({"type": kind, **data}, kind)

    for index, block in enumerate(_blocks(reply)):
        if block["type"] == "thinking":
            events.append(
                event(
                    "content_block_start",
                    index=index,
                    content_block={"type": "thinking", "thinking": "", "signature": ""},
                )
            )
            events += [
                event("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": p})
                for p in pieces(block["thinking"], reply.chunk_chars)
            ]
            events.append(
                event(
                    "content_block_delta",
                    index=index,
                    delta={"type": "signature_delta", "signature": block["signature"]},
                )
            )
        elif block["type"] == "text":
            events.append(
                event("content_block_start", index=index, content_block={"type": "text", "text": ""})
            )
            events += [
                event("content_block_delta", index=index, delta={"type": "text_delta", "text": p})
                for p in pieces(block["text"], reply.chunk_chars)
            ]
        else:
            events.append(event("content_block_start", index=index, content_block={**block, "input": {}}))
            arguments = json.dumps(block["input"], separators=(",", ":"))
            events += [
                event(
                    "content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": p}
                )
                for p in pieces(arguments, reply.chunk_chars)
            ]
        events.append(event("content_block_stop", index=index))
    final_usage = {k: v for k, v in wire_usage.items() if k not in ("cache_creation", "service_tier")}
    events.append(
        event(
            "message_delta",
            delta={"stop_reason": _STOP[reply.finish], "stop_sequence": None},
            usage=final_usage,
        )
    )
    events.append(event("message_stop"))
    return stream_response(events, reply, reported, final_usage)


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


WIRE = WireFormat("anthropic", render_reply, error_body)
"""The Anthropic Messages wire format."""
