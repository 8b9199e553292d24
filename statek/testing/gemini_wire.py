"""Gemini / Vertex AI ``generateContent`` answers.

Usage convention (``usageMetadata``): ``promptTokenCount`` is the prompt *with* the cached part
(``cachedContentTokenCount``) inside it but *without* ``toolUsePromptTokenCount``;
``candidatesTokenCount`` excludes the reasoning, reported apart as ``thoughtsTokenCount``;
``totalTokenCount`` is the sum of prompt, candidates, tool-use prompt and thoughts. Zero optional
counts are omitted, as Google does. Gemini reports neither cache writes nor a cost.

Streaming (``:streamGenerateContent``): with ``?alt=sse`` a server-sent-events stream separated by
``\\r\\n\\r\\n`` as Google sends it, else one JSON array of the same chunks. Every chunk carries the
*cumulative* ``usageMetadata`` so far; the last chunk has the ``finishReason`` and the final counts.
Thought parts (``"thought": true``) appear only when the request set
``generationConfig.thinkingConfig.includeThoughts``.
"""

from __future__ import annotations

from typing import Any

from ._wire import WireFormat, dumps, json_response, pieces, sse_event, stream_response
from .behavior import Reply, Usage
from .exchange import SimRequest, SimResponse

__all__ = ["WIRE", "error_body", "render_reply", "usage_body"]

_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def usage_body(usage: Usage, candidates: int | None = None) -> tuple[dict[str, Any], Usage]:
    """The wire ``usageMetadata`` for ``usage``, and the :class:`Usage` it actually conveys.

    ``candidates`` overrides the candidates count (for the partial counts of stream chunks).
    """
    prompt = usage.input_tokens - usage.tool_use_prompt_tokens
    answer = usage.output_tokens - usage.reasoning_tokens if candidates is None else candidates
    body: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": answer}
    if usage.cached_tokens:
        body["cachedContentTokenCount"] = usage.cached_tokens
    if usage.tool_use_prompt_tokens:
        body["toolUsePromptTokenCount"] = usage.tool_use_prompt_tokens
    if usage.reasoning_tokens:
        body["thoughtsTokenCount"] = usage.reasoning_tokens
    body["totalTokenCount"] = prompt + answer + usage.tool_use_prompt_tokens + usage.reasoning_tokens
    body["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return body, Usage(
        input_tokens=usage.input_tokens,
        output_tokens=answer + usage.reasoning_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        tool_use_prompt_tokens=usage.tool_use_prompt_tokens,
    )


def _wants_thoughts(request: SimRequest) -> bool:
    body = request.body if isinstance(request.body, dict) else {}
    config = body.get("generationConfig") or body.get("generation_config")
    if not isinstance(config, dict):
        return False
    thinking = config.get("thinkingConfig") or config.get("thinking_config")
    return isinstance(thinking, dict) and bool(
        thinking.get("includeThoughts") or thinking.get("include_thoughts")
    )


def _call_parts(reply: Reply) -> list[dict[str, Any]]:
    parts = []
    for call in reply.tool_calls:
        function: dict[str, Any] = {"name": call.name, "args": dict(call.kwargs)}
        if call.id:
            function = {"id": call.id, **function}
        parts.append({"functionCall": function})
    return parts


def render_reply(reply: Reply, request: SimRequest) -> SimResponse:
    """A ``GenerateContentResponse`` (or a stream of them) for ``reply``."""
    thoughts = reply.thinking if reply.thinking and _wants_thoughts(request) else None
    if request.stream:
        return _stream(reply, thoughts, sse=request.query.get("alt") == "sse")
    wire_usage, reported = usage_body(reply.usage)
    parts: list[dict[str, Any]] = [{"text": thoughts, "thought": True}] if thoughts else []
    if reply.text or not reply.tool_calls:
        parts.append({"text": reply.text})
    parts += _call_parts(reply)
    return json_response(
        200, _chunk(reply, parts, wire_usage, final=True), reply=reply, usage=reported, wire_usage=wire_usage
    )


def _chunk(
    reply: Reply, parts: list[dict[str, Any]], usage: dict[str, Any], *, final: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if final:
        candidate["finishReason"] = _FINISH[reply.finish]
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": reply.response_model,
        "responseId": reply.token,
    }


def _stream(reply: Reply, thoughts: str | None, *, sse: bool) -> SimResponse:
    groups: list[list[dict[str, Any]]] = [
        [{"text": p, "thought": True}] for p in pieces(thoughts or "", reply.chunk_chars)
    ]
    text_groups = [[{"text": p}] for p in pieces(reply.text, reply.chunk_chars)]
    if reply.tool_calls:
        text_groups.append(_call_parts(reply))
    groups += text_groups or [[{"text": ""}]]
    answer = reply.usage.output_tokens - reply.usage.reasoning_tokens
    n_answer = max(len(text_groups), 1)
    bodies = []
    seen_answer = 0
    for i, parts in enumerate(groups):
        if not parts[0].get("thought"):
            seen_answer += 1
        wire_usage, reported = usage_body(reply.usage, candidates=answer * seen_answer // n_answer)
        bodies.append(_chunk(reply, parts, wire_usage, final=i == len(groups) - 1))
    if sse:
        return stream_response([sse_event(b, crlf=True) for b in bodies], reply, reported, wire_usage)
    body = b"[" + b",\r\n".join(dumps(b) for b in bodies) + b"]"
    return SimResponse(
        200,
        (("content-type", "application/json"),),
        body=body,
        latency=reply.latency,
        usage=reported,
        wire_usage=wire_usage,
    )


def error_body(status: int, message: str) -> dict[str, Any]:
    """Google's error shape: ``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


WIRE = WireFormat("gemini", render_reply, error_body)
"""The Gemini / Vertex AI generateContent wire format."""
