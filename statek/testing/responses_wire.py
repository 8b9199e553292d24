"""OpenAI Responses API answers (``POST /v1/responses``), the official SDK's newer interface.

Usage convention: ``input_tokens`` is the whole prompt with ``input_tokens_details.cached_tokens``
inside it; ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``; no cost, no cache
writes. Output items: a ``reasoning`` item when the behaviour thinks (summary only), a ``message``
with one ``output_text`` part, then one ``function_call`` item per tool call.

Streaming (``"stream": true``): ``response.created``, ``response.in_progress``, the output items
with their ``output_text.delta`` / ``function_call_arguments.delta`` events, and
``response.completed`` carrying the whole response and its usage. Every event has its
``sequence_number``.
"""

from __future__ import annotations

import json
from typing import Any

from ._wire import CREATED, WireFormat, json_response, pieces, sse_event, stream_response
from .behavior import Reply, Usage
from .exchange import SimRequest, SimResponse
from .openai_wire import error_body

__all__ = ["WIRE", "render_reply", "usage_body"]


def usage_body(usage: Usage) -> tuple[dict[str, Any], Usage]:
    """The wire ``usage`` object for ``usage``, and the :class:`Usage` it actually conveys."""
    body = {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
    return body, Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


def _items(reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.thinking:
        items.append({"type": "reasoning", "id": f"rs_{reply.token}", "summary": [], "status": "completed"})
    if reply.text or not reply.tool_calls:
        items.append(
            {
                "type": "message",
                "id": f"msg_{reply.token}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
            }
        )
    for i, call in enumerate(reply.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{reply.call_tokens[i]}",
                "call_id": call.id or f"call_{reply.call_tokens[i]}",
                "name": call.name,
                "arguments": json.dumps(dict(call.kwargs), separators=(",", ":")),
                "status": "completed",
            }
        )
    return items


def _response(
    reply: Reply, request: SimRequest, status: str, output: list[Any], usage: Any
) -> dict[str, Any]:
    body = request.body if isinstance(request.body, dict) else {}
    truncated = status == "incomplete"
    return {
        "id": f"resp_{reply.token}",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": reply.response_model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body.get("tools", []),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def render_reply(reply: Reply, request: SimRequest) -> SimResponse:
    """A ``response`` object, or its event stream, for ``reply``."""
    wire_usage, reported = usage_body(reply.usage)
    status = "incomplete" if reply.finish == "length" else "completed"
    final = _response(reply, request, status, _items(reply), wire_usage)
    if not request.stream:
        return json_response(200, final, reply=reply, usage=reported, wire_usage=wire_usage)
    sequence = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return sse_event({"type": kind, "sequence_number": next(sequence), **fields}, kind)

    start = _response(reply, request, "in_progress", [], None)
    chunks = [event("response.created", response=start), event("response.in_progress", response=start)]
    for index, item in enumerate(final["output"]):
        if item["type"] == "message":
            empty = {**item, "status": "in_progress", "content": []}
            chunks.append(event("response.output_item.added", output_index=index, item=empty))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            chunks.append(
                event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
            for piece in pieces(reply.text, reply.chunk_chars):
                chunks.append(
                    event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                )
            chunks.append(
                event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=reply.text,
                    logprobs=[],
                )
            )
            chunks.append(
                event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=item["content"][0],
                )
            )
        elif item["type"] == "function_call":
            chunks.append(
                event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                )
            )
            for piece in pieces(item["arguments"], reply.chunk_chars):
                chunks.append(
                    event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=piece,
                    )
                )
            chunks.append(
                event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
        else:
            chunks.append(event("response.output_item.added", output_index=index, item=item))
        chunks.append(event("response.output_item.done", output_index=index, item=item))
    closing = "response.incomplete" if status == "incomplete" else "response.completed"
    chunks.append(event(closing, response=final))
    return stream_response(chunks, reply, reported, wire_usage)


WIRE = WireFormat("openai_responses", render_reply, error_body)
"""The OpenAI Responses wire format."""
