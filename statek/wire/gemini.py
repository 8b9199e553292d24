"""Google's ``generateContent`` wire format (Gemini API and Vertex AI): answers, streams, usage.

Pure functions over parsed JSON: no HTTP, no telemetry. Used by
:class:`~statek.providers.vertex.VertexAI_API` and by the httpx transport.

Usage: Gemini reports thoughts *outside* ``candidatesTokenCount`` and tool-use prompt tokens outside
``promptTokenCount``; statek adds them in (never subtracts). Cached tokens are already inside the prompt.
Streaming (``:streamGenerateContent?alt=sse``): every chunk's ``usageMetadata`` is cumulative, so the
last one counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..secrets import clip
from ..types import CallDetail, CallParams
from .answer import Answer
from .billing import gemini_modalities, tier_label
from .errors import StreamFailure, ToolCallFormatError, WireFormatError
from .numbers import text_id
from .sse import SSEDecoder
from .validation import Cost, Count, Label, WireModel, guarded, validated

__all__ = [
    "ContentStream",
    "ContentStreamReader",
    "GeminiToolCall",
    "fold_stream",
    "read_response",
    "read_whole",
    "stream_error",
    "usage_detail",
]


@dataclass(frozen=True, eq=False)
class GeminiToolCall(CallParams):
    """A tool call from a Gemini answer.

    ``thought_signature`` is the opaque signature Gemini attached to the call (sent back with it, as
    Gemini 3 requires); ``provider_id`` says whether ``id`` came from Gemini (sent back) or was made
    up by statek as ``call_{n}`` (kept local). Equal to, and hashed like, any call with the same id.
    """

    thought_signature: str | None = field(default=None, repr=False)
    provider_id: bool = False


class UsageMetadata(WireModel):
    """A ``usageMetadata`` object: every count a non-negative integer within bounds."""

    promptTokenCount: Count = 0
    toolUsePromptTokenCount: Count = 0
    candidatesTokenCount: Count = 0
    thoughtsTokenCount: Count = 0
    cachedContentTokenCount: Count = 0
    totalTokenCount: Count = 0
    cost: Cost = None


class Part(WireModel):
    """One part of a candidate's content; ``text`` is text when present."""

    text: str | None = None
    thought: bool | None = None
    thoughtSignature: str | None = None


class Content(WireModel):
    parts: list[Part] | None = None


class Candidate(WireModel):
    content: Content | None = None
    finishReason: Label = None


class PromptFeedback(WireModel):
    blockReason: Label = None


class Response(WireModel):
    """A whole ``generateContent`` response, as far as statek reads it."""

    candidates: list[Candidate] | None = None
    usageMetadata: UsageMetadata
    modelVersion: Label = None
    promptFeedback: PromptFeedback | None = None
    responseId: Label = None


@guarded
def read_response(
    body: Any, bytes_sent: int, bytes_received: int
) -> tuple[str, list[CallParams] | None, CallDetail]:
    """Text (thoughts left out), tool calls (``None`` when none) and detail of a whole response.

    A response without ``usageMetadata`` (missing, null, not an object) is read with
    ``detail.has_usage`` False: the text is kept, the call is not priced (``no_usage``). Raises
    :class:`WireFormatError` for an answer that is not a response object and
    :class:`ToolCallFormatError` for a ``functionCall`` without a name or with non-object args.
    """
    failure = stream_error(body)
    if failure is not None:
        raise failure
    if not isinstance(body, dict):
        raise WireFormatError(f"the answer is not a response object: {clip(body, 200)}")
    has_usage = isinstance(body.get("usageMetadata"), dict)
    if not has_usage:
        body = {**body, "usageMetadata": {}}
    checked = validated(Response, body, "response")
    candidate = (body.get("candidates") or [{}])[0]
    parts: list[dict[str, Any]] = list((candidate.get("content") or {}).get("parts") or ())
    text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought"))
    calls = [p for p in parts if "functionCall" in p]
    call_requests: list[CallParams] = [_tool_call(p, n) for n, p in enumerate(calls)]
    first = checked.candidates[0] if checked.candidates else None
    feedback = checked.promptFeedback
    finish = (first.finishReason if first else None) or (feedback.blockReason if feedback else None)
    detail = _detail(
        checked.usageMetadata, bytes_sent, bytes_received, checked.modelVersion, finish, body["usageMetadata"]
    )
    return (
        text,
        call_requests or None,
        detail._replace(response_id=text_id(checked.responseId), has_usage=has_usage),
    )


def _tool_call(part: Mapping[str, Any], position: int) -> GeminiToolCall:
    call = part["functionCall"]
    name = call.get("name") if isinstance(call, dict) else None
    if not isinstance(name, str) or not name:
        raise ToolCallFormatError(f"functionCall without a name: {clip(call, 200)}")
    arguments = call.get("args", {})
    if not isinstance(arguments, dict):
        raise ToolCallFormatError(f"functionCall {name!r} args is not a JSON object: {clip(arguments, 200)}")
    given = call.get("id")
    return GeminiToolCall(
        call_id=given if isinstance(given, str) and given else f"call_{position}",
        name=name,
        kwargs=arguments,
        thought_signature=part.get("thoughtSignature"),
        provider_id=isinstance(given, str) and bool(given),
    )


@guarded
def usage_detail(
    usage: Mapping[str, Any], bytes_sent: int, bytes_received: int, model: Any = None, finish: Any = None
) -> CallDetail:
    """A ``usageMetadata`` object in statek's one meaning (thoughts and tool-use prompt added in).
    Raises :class:`WireFormatError` for a count or cost out of bounds."""
    return _detail(
        validated(UsageMetadata, usage, "usageMetadata"),
        bytes_sent,
        bytes_received,
        model if isinstance(model, str) else None,
        finish if isinstance(finish, str) else None,
        usage,
    )


def _detail(
    usage: UsageMetadata,
    bytes_sent: int,
    bytes_received: int,
    model: str | None,
    finish: str | None,
    raw: Mapping[str, Any],
) -> CallDetail:
    thoughts = usage.thoughtsTokenCount
    prompt = usage.promptTokenCount
    audio, cached_audio, out_audio, image, out_image = gemini_modalities(
        raw, prompt, usage.cachedContentTokenCount, usage.candidatesTokenCount
    )
    return CallDetail(
        total_bytes_sent=bytes_sent,
        total_bytes_received=bytes_received,
        cost=usage.cost,
        input_tokens=usage.promptTokenCount + usage.toolUsePromptTokenCount,
        output_tokens=usage.candidatesTokenCount + thoughts,
        cached_tokens=usage.cachedContentTokenCount,
        reasoning_tokens=thoughts,
        response_model=model,
        finish_reason=finish,
        service_tier=tier_label(raw.get("trafficType")),
        input_audio_tokens=audio,
        cached_audio_tokens=cached_audio,
        output_audio_tokens=out_audio,
        input_image_tokens=image,
        output_image_tokens=out_image,
    )


def stream_error(chunk: Any) -> StreamFailure | None:
    """The failure an error chunk of a stream reports, ``None`` for any other chunk."""
    error = chunk.get("error") if isinstance(chunk, dict) else None
    if isinstance(error, dict):
        return StreamFailure(clip(f"{error.get('status')}: {error.get('message')}", 300))
    if error:
        return StreamFailure(clip(error, 300))
    return None


class ContentStream:
    """Folds stream chunks, one at a time, into one response: parts in order; last finish reason,
    model and usage (cumulative)."""

    __slots__ = ("_finish", "_folded", "_keep", "_parts")

    def __init__(self, *, keep_content: bool = True) -> None:
        self._keep = keep_content
        self._parts: list[Any] = []
        self._folded: dict[str, Any] = {}
        self._finish: Any = None

    @guarded
    def add(self, chunk: Any) -> None:
        """Take one parsed chunk (chunks that are not objects are ignored). Raises
        :class:`WireFormatError` for a chunk of the wrong shape."""
        if not isinstance(chunk, dict):
            return
        for key in ("usageMetadata", "modelVersion", "promptFeedback", "responseId"):
            if key in chunk:
                self._folded[key] = chunk[key]
        candidate = (chunk.get("candidates") or [{}])[0]
        if isinstance(candidate, dict):
            if self._keep:
                self._parts.extend((candidate.get("content") or {}).get("parts") or ())
            self._finish = candidate.get("finishReason") or self._finish

    def response(self) -> dict[str, Any]:
        """The response the chunks so far add up to, in the shape of a non-streamed one."""
        content = {"role": "model", "parts": list(self._parts)}
        return {**self._folded, "candidates": [{"content": content, "finishReason": self._finish}]}


@guarded
def fold_stream(chunks: Iterable[Any]) -> dict[str, Any]:
    """One response from parsed stream chunks (see :class:`ContentStream`)."""
    stream = ContentStream()
    for chunk in chunks:
        stream.add(chunk)
    return stream.response()


def read_whole(body: Any, bytes_sent: int, bytes_received: int) -> Answer:
    """:func:`read_response` as an :class:`~statek.wire.answer.Answer`."""
    return Answer(*read_response(body, bytes_sent, bytes_received))


class ContentStreamReader:
    """A :class:`~statek.wire.answer.StreamReader` for ``streamGenerateContent?alt=sse``."""

    __slots__ = ("_decoder", "_finished", "_stream", "_usage_seen")

    def __init__(self, *, keep_content: bool = True) -> None:
        self._decoder = SSEDecoder()
        self._stream = ContentStream(keep_content=keep_content)
        self._usage_seen = False
        self._finished = False

    @guarded
    def feed(self, data: bytes) -> list[str]:
        """The text generated in ``data`` (thoughts left out)."""
        return self._take(self._decoder.feed(data))

    def _take(self, events: list[tuple[str | None, Any]]) -> list[str]:
        pieces: list[str] = []
        for _, chunk in events:
            failure = stream_error(chunk)
            if failure is not None:
                raise failure
            self._stream.add(chunk)
            if not isinstance(chunk, dict):
                continue
            self._usage_seen = self._usage_seen or isinstance(chunk.get("usageMetadata"), dict)
            candidate = (chunk.get("candidates") or [{}])[0]
            self._finished = self._finished or bool(
                isinstance(candidate, dict) and candidate.get("finishReason")
            )
            for part in (
                (candidate.get("content") or {}).get("parts") or () if isinstance(candidate, dict) else ()
            ):
                if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"):
                    pieces.append(part["text"])
        return pieces

    @guarded
    def finish(self, bytes_sent: int, bytes_received: int) -> Answer:
        """The answer so far; ``has_usage`` False unless a chunk carried ``usageMetadata`` and a finish
        reason came (the counts of earlier chunks are running totals, kept either way)."""
        try:
            self._take(self._decoder.close())
        except ValueError:
            pass  # a cut-off last chunk: keep what was read before it
        response = self._stream.response()
        if not self._usage_seen:
            response["usageMetadata"] = {}
        text, calls, detail = read_response(response, bytes_sent, bytes_received)
        if not (self._usage_seen and self._finished):
            detail = detail._replace(has_usage=False)
        return Answer(text, calls, detail)
