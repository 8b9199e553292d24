"""The Anthropic Messages wire format (``POST /v1/messages``): answers, streams, usage.

Pure functions over parsed JSON: no HTTP, no telemetry. Used by
:class:`~statek.providers.anthropic.ClaudeAI_API` and by the httpx transport.

A streamed answer is folded (:class:`MessageStream`) into the same message shape as a non-streamed
one. ``message_delta`` usage is cumulative, so it replaces, never adds to, what ``message_start`` said.

Usage: Anthropic reports cache reads and writes *outside* ``input_tokens``; statek's ``input_tokens``
is their sum. ``output_tokens`` already includes thinking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..secrets import clip
from ..types import CallDetail, CallParams
from .answer import Answer
from .billing import tier_label
from .errors import StreamFailure, ToolCallFormatError, WireFormatError
from .numbers import text_id
from .sse import SSEDecoder, iter_sse_json
from .validation import Cost, Count, Label, WireModel, guarded, validated

__all__ = [
    "ClaudeToolCall",
    "MessageStream",
    "MessageStreamReader",
    "fold_stream",
    "read_message",
    "usage_detail",
]


@dataclass(frozen=True, eq=False)
class ClaudeToolCall(CallParams):
    """A tool call from a Claude answer, with the thinking blocks (signatures included) of that answer.

    With extended thinking, Anthropic requires the assistant turn that made tool calls to be sent back
    with its thinking blocks unchanged; putting these calls into the next request's history does that.
    Equal to, and hashed like, any call with the same id.
    """

    thinking_blocks: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)


class _CacheCreation(WireModel):
    ephemeral_5m_input_tokens: Count = 0
    ephemeral_1h_input_tokens: Count = 0


class _OutputDetails(WireModel):
    thinking_tokens: Count = 0


class _ServerTools(WireModel):
    web_search_requests: Count = 0


class MessagesUsage(WireModel):
    """A Messages ``usage`` object: every count a non-negative integer within bounds."""

    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_creation_input_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    cache_creation: _CacheCreation | None = None
    output_tokens_details: _OutputDetails | None = None
    cost: Cost = None
    service_tier: Any = None
    server_tool_use: _ServerTools | None = None


class ContentBlock(WireModel):
    """One block of a message's ``content``; ``text`` is text when present."""

    type: str | None = None
    text: str | None = None


class Message(WireModel):
    """A whole Messages answer, as far as statek reads it."""

    content: list[ContentBlock] | None = None
    usage: MessagesUsage
    model: Label = None
    stop_reason: Label = None
    id: Label = None


@guarded
def read_message(
    message: Any, bytes_sent: int, bytes_received: int
) -> tuple[str, list[CallParams] | None, CallDetail]:
    """Text, tool calls (``None`` when none) and detail of a whole message.

    A message without a usage object (missing, null, not an object) is read with
    ``detail.has_usage`` False: the text is kept, the call is not priced (``no_usage``). Raises
    :class:`WireFormatError` for an answer that is not a message object, and
    :class:`ToolCallFormatError` for a ``tool_use`` block without a name or id or with non-object input.
    """
    if not isinstance(message, dict):
        raise WireFormatError(f"the answer is not a message object: {clip(message, 200)}")
    if message.get("type") == "error" or message.get("error"):
        raise StreamFailure(f"the answer is an error: {clip(message.get('error'), 300)}")
    has_usage = isinstance(message.get("usage"), dict)
    if not has_usage:
        message = {**message, "usage": {}}
    checked = validated(Message, message, "message")
    blocks: list[dict[str, Any]] = list(message.get("content") or ())
    thinking = tuple(b for b in blocks if b.get("type") in ("thinking", "redacted_thinking"))
    text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
    calls: list[CallParams] = [_tool_call(b, thinking) for b in blocks if b.get("type") == "tool_use"]
    detail = _detail(checked.usage, bytes_sent, bytes_received, checked.model, checked.stop_reason)
    return text, calls or None, detail._replace(response_id=text_id(checked.id), has_usage=has_usage)


def _tool_call(block: Mapping[str, Any], thinking: tuple[Mapping[str, Any], ...]) -> ClaudeToolCall:
    name, call_id, arguments = block.get("name"), block.get("id"), block.get("input")
    if not isinstance(name, str) or not name or not isinstance(call_id, str) or not call_id:
        raise ToolCallFormatError(f"tool_use block without a name or id: {clip(block, 200)}")
    if not isinstance(arguments, dict):
        raise ToolCallFormatError(f"tool_use {name!r} input is not a JSON object: {clip(arguments, 200)}")
    return ClaudeToolCall(call_id=call_id, name=name, kwargs=arguments, thinking_blocks=thinking)


@guarded
def usage_detail(
    usage: Mapping[str, Any], bytes_sent: int, bytes_received: int, model: Any = None, stop_reason: Any = None
) -> CallDetail:
    """A Messages ``usage`` object in statek's one meaning (cache reads and writes added to input).
    Raises :class:`WireFormatError` for a count or cost out of bounds."""
    return _detail(
        validated(MessagesUsage, usage, "usage"),
        bytes_sent,
        bytes_received,
        model if isinstance(model, str) else None,
        stop_reason if isinstance(stop_reason, str) else None,
    )


def _detail(
    usage: MessagesUsage, bytes_sent: int, bytes_received: int, model: str | None, stop_reason: str | None
) -> CallDetail:
    cache_write = usage.cache_creation_input_tokens
    cache_read = usage.cache_read_input_tokens
    # No TTL split means all writes were 5-minute ones (Anthropic's default and cheapest rate).
    write_1h = usage.cache_creation.ephemeral_1h_input_tokens if usage.cache_creation else 0
    thinking = usage.output_tokens_details.thinking_tokens if usage.output_tokens_details else 0
    return CallDetail(
        total_bytes_sent=bytes_sent,
        total_bytes_received=bytes_received,
        cost=usage.cost,
        input_tokens=usage.input_tokens + cache_write + cache_read,
        output_tokens=usage.output_tokens,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=thinking,
        response_model=model,
        finish_reason=stop_reason,
        service_tier=tier_label(usage.service_tier),
        web_search_requests=usage.server_tool_use.web_search_requests if usage.server_tool_use else 0,
    )


class MessageStream:
    """Folds stream events, one at a time, into the message they add up to.

    Tool input arrives as ``input_json_delta`` fragments, parsed at ``content_block_stop``; fragments
    that are not JSON are kept as the raw string, which the tool-call reader then rejects. With
    ``keep_content=False`` only the usage, model and stop reason are kept. An ``error`` event (or any
    event carrying an ``error`` object) raises :class:`StreamFailure`; an event of the wrong shape
    raises :class:`WireFormatError`.
    """

    __slots__ = ("_blocks", "_fragments", "_keep", "_message", "ended", "started")

    def __init__(self, *, keep_content: bool = True) -> None:
        self._keep = keep_content
        self._message: dict[str, Any] = {"usage": {}}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._fragments: dict[int, list[str]] = {}
        self.started = False
        """Whether ``message_start`` (which carries the input side of the usage) has been seen."""
        self.ended = False
        """Whether a ``message_delta`` (which carries the final output count) has been seen."""

    @guarded
    def add(self, name: str | None, data: Any) -> None:
        """Take one event (``name`` is its ``event:`` field, ``data`` its parsed JSON)."""
        kind = data.get("type", name)
        if kind == "error" or data.get("error"):
            error = data.get("error")
            detail = f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict) else str(error)
            raise StreamFailure(clip(detail, 300))
        if kind == "message_start":
            self._message = {**data["message"], "usage": dict(data["message"].get("usage") or {})}
            self.started = True
        elif kind == "content_block_start" and self._keep:
            self._blocks[data["index"]] = dict(data["content_block"])
        elif kind == "content_block_delta" and self._keep:
            index = data["index"]
            _apply_delta(self._blocks[index], self._fragments.setdefault(index, []), data["delta"])
        elif kind == "content_block_stop" and self._keep:
            block, text = self._blocks[data["index"]], "".join(self._fragments.pop(data["index"], []))
            if block.get("type") == "tool_use" and text:
                try:
                    block["input"] = json.loads(text)
                except ValueError:
                    block["input"] = text
        elif kind == "message_delta":
            self.ended = True
            self._message.update({k: v for k, v in (data.get("delta") or {}).items() if v is not None})
            # Cumulative counts: overwrite the fields present, keep the rest (the input side of message_start).
            self._message["usage"].update(data.get("usage") or {})

    def message(self) -> dict[str, Any]:
        """The message the events so far add up to, in the shape of a non-streamed one."""
        return {**self._message, "content": [self._blocks[i] for i in sorted(self._blocks)]}


@guarded
def fold_stream(body: bytes) -> dict[str, Any]:
    """The message a whole streamed body adds up to (see :class:`MessageStream` for the errors)."""
    stream = MessageStream()
    for name, data in iter_sse_json(body):
        stream.add(name, data)
    return stream.message()


def _not_content(event: str | None, data: str) -> bool:
    """Events other than content blocks and pings (all a usage-only reader needs)."""
    return event is None or not (event.startswith("content_block") or event == "ping")


def _apply_delta(block: dict[str, Any], fragments: list[str], delta: Mapping[str, Any]) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta":
        fragments.append(delta.get("partial_json", ""))
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")


class MessageStreamReader:
    """A :class:`~statek.wire.answer.StreamReader` for a Messages event stream (see :class:`MessageStream`)."""

    __slots__ = ("_decoder", "_stream")

    def __init__(self, *, keep_content: bool = True) -> None:
        self._decoder = SSEDecoder(None if keep_content else _not_content)
        self._stream = MessageStream(keep_content=keep_content)

    @guarded
    def feed(self, data: bytes) -> list[str]:
        """The text generated in ``data``."""
        try:
            return self._take(self._decoder.feed(data))
        except WireFormatError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise WireFormatError(f"a stream event cannot be read: {type(exc).__name__}: {exc}") from exc

    def _take(self, events: list[tuple[str | None, Any]]) -> list[str]:
        pieces: list[str] = []
        for name, data in events:
            self._stream.add(name, data)
            delta = data.get("delta") if data.get("type", name) == "content_block_delta" else None
            if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                pieces.append(delta.get("text", ""))
        return pieces

    @guarded
    def finish(self, bytes_sent: int, bytes_received: int) -> Answer:
        """The answer so far; ``has_usage`` False unless the closing ``message_delta`` arrived (the
        input counts of ``message_start`` are kept either way)."""
        try:
            self._take(self._decoder.close())
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            pass  # a cut-off last event: keep what was read before it
        message = self._stream.message()
        text, calls, detail = read_message(message, bytes_sent, bytes_received)
        if not self._stream.ended:
            detail = detail._replace(has_usage=False)
        return Answer(text, calls, detail)
