"""OpenAI chat-completions answers (also what OpenRouter, DeepSeek, vLLM, ... speak).

Usage convention: ``prompt_tokens`` is the whole prompt with ``prompt_tokens_details.cached_tokens``
(and ``cache_write_tokens``, sent only when non-zero) inside it; ``completion_tokens`` includes
``completion_tokens_details.reasoning_tokens``. A provider-reported cost goes in ``usage.cost`` as
OpenRouter sends it. The one-hour share of cache writes has no field here and is not reported.

Streaming (``"stream": true``): a role chunk, content (or ``reasoning_content``) deltas, tool-call
deltas (id and name first, then argument fragments), a chunk with ``finish_reason``, then — only with
``stream_options.include_usage`` — a chunk with ``choices: []`` and the usage, then ``data: [DONE]``.
With ``include_usage`` every other chunk carries ``"usage": null``, as OpenAI documents.
``ModelBehavior.stream_usage`` changes when the usage chunk comes: always (OpenRouter) or never.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ._wire import CREATED, WireFormat, json_response, pieces, sse_event, stream_response
from .behavior import Reply, Usage
from .exchange import SimRequest, SimResponse

__all__ = ["WIRE", "error_body", "render_reply", "usage_body"]

_FINISH = {"stop": "stop", "tool_calls": "tool_calls", "length": "length"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def usage_body(usage: Usage) -> tuple[dict[str, Any], Usage]:
    """The wire ``usage`` object for ``usage``, and the :class:`Usage` it actually conveys."""
    prompt_details: dict[str, Any] = {"cached_tokens": usage.cached_tokens, "audio_tokens": 0}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    body: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    cost = None
    if usage.cost is not None:
        body["cost"] = float(usage.cost)
        cost = Decimal(repr(body["cost"]))  # what a JSON parser reads back
    return body, Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost=cost,
    )


def _call_id(reply: Reply, i: int) -> str:
    return reply.tool_calls[i].id or f"call_{reply.call_tokens[i]}"


def _arguments(reply: Reply, i: int) -> str:
    return json.dumps(dict(reply.tool_calls[i].kwargs), separators=(",", ":"))


def render_reply(reply: Reply, request: SimRequest) -> SimResponse:
    """A chat-completions answer (a ``chat.completion`` or an SSE stream of chunks) for ``reply``."""
    wire_usage, reported = usage_body(reply.usage)
    body = request.body if isinstance(request.body, dict) else {}
    if request.stream:
        options = body.get("stream_options")
        requested = isinstance(options, dict) and options.get("include_usage") is True
        include = reply.stream_usage == "always" or (reply.stream_usage == "requested" and requested)
        return _stream(
            reply, wire_usage if include else None, reported if include else None, null_usage=requested
        )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.text or not reply.tool_calls else None,
    }
    if reply.thinking:
        message["reasoning_content"] = reply.thinking
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(reply, i),
                "type": "function",
                "function": {"name": c.name, "arguments": _arguments(reply, i)},
            }
            for i, c in enumerate(reply.tool_calls)
        ]
    answer = {
        "id": f"chatcmpl-{reply.token}",
        "object": "chat.completion",
        "created": CREATED,
        "model": reply.response_model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH[reply.finish]}
        ],
        "usage": wire_usage,
        "system_fingerprint": "fp_statek_sim",
    }
    return json_response(200, answer, reply=reply, usage=reported, wire_usage=wire_usage)


def _stream(
    reply: Reply, wire_usage: dict[str, Any] | None, reported: Usage | None, *, null_usage: bool
) -> SimResponse:
    head = {
        "id": f"chatcmpl-{reply.token}",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": reply.response_model,
        "system_fingerprint": "fp_statek_sim",
    }
    nulls = {"usage": None} if null_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse_event({**head, "choices": [choice], **nulls})

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"reasoning_content": p}) for p in pieces(reply.thinking or "", reply.chunk_chars)]
    chunks += [chunk({"content": p}) for p in pieces(reply.text, reply.chunk_chars)]
    for i, call in enumerate(reply.tool_calls):
        start = {
            "index": i,
            "id": _call_id(reply, i),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [start]}))
        chunks += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
            for p in pieces(_arguments(reply, i), reply.chunk_chars)
        ]
    chunks.append(chunk({}, _FINISH[reply.finish]))
    if wire_usage is not None:
        chunks.append(sse_event({**head, "choices": [], "usage": wire_usage}))
    chunks.append(b"data: [DONE]\n\n")
    return stream_response(chunks, reply, reported, wire_usage)


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {"message": message, "type": kind, "param": None, "code": kind if status == 429 else None}
    }


WIRE = WireFormat("openai", render_reply, error_body)
"""The OpenAI chat-completions wire format."""
