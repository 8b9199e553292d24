"""What the three wire modules share: JSON and SSE framing, text chunking, and failure rendering."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .behavior import Fault, Reply, Usage
from .exchange import SimRequest, SimResponse, Wire

__all__ = ["CREATED", "WireFormat", "dumps", "json_response", "pieces", "sse_event", "stream_response"]

CREATED = 1_700_000_000
"""The fixed ``created`` timestamp of OpenAI answers: real time would make answers unrepeatable."""

_JSON = ("content-type", "application/json")
_SSE = ("content-type", "text/event-stream")


def dumps(obj: Any) -> bytes:
    """Compact JSON, UTF-8, as providers send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def pieces(text: str, size: int) -> Iterator[str]:
    """``text`` in consecutive pieces of at most ``size`` characters (nothing for an empty text)."""
    for start in range(0, len(text), size):
        yield text[start : start + size]


def sse_event(data: Any, event: str | None = None, *, crlf: bool = False) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it already is bytes."""
    payload = data if isinstance(data, bytes) else dumps(data)
    end = b"\r\n\r\n" if crlf else b"\n\n"
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + payload + end


def json_response(
    status: int,
    body: Any,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    reply: Reply | None = None,
    usage: Usage | None = None,
    wire_usage: Mapping[str, Any] | None = None,
) -> SimResponse:
    """A complete JSON answer."""
    return SimResponse(
        status,
        (_JSON, *headers),
        body=dumps(body),
        latency=reply.latency if reply else 0.0,
        usage=usage,
        wire_usage=wire_usage,
    )


def stream_response(
    chunks: list[bytes], reply: Reply, usage: Usage | None, wire_usage: Mapping[str, Any] | None
) -> SimResponse:
    """A server-sent-events answer."""
    return SimResponse(
        200,
        (_SSE, ("cache-control", "no-cache")),
        chunks=tuple(chunks),
        latency=reply.latency,
        interval=reply.interval,
        usage=usage,
        wire_usage=wire_usage,
    )


@dataclass(frozen=True, slots=True)
class WireFormat:
    """One provider wire format: how it renders an answer and an error body."""

    name: Wire
    render_reply: Callable[[Reply, SimRequest], SimResponse]
    error_body: Callable[[int, str], dict[str, Any]]

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> SimResponse:
        """An HTTP error answer in this format's own error shape."""
        return json_response(status, self.error_body(status, message), headers=headers)

    def render_fault(self, fault: Fault, request: SimRequest) -> SimResponse:
        """The answer for a planned failure."""
        failure = fault.failure
        if failure.kind == "disconnect":
            return SimResponse(0, (), latency=fault.latency, disconnect=True)
        if failure.kind == "malformed":
            whole = self.render_reply(fault.reply, request)
            if whole.chunks is not None:
                first = whole.chunks[0]
                # A stream whose second event is cut mid-JSON, then ends.
                broken = (
                    whole.chunks[1][: len(whole.chunks[1]) // 2] + b"\n\n" if len(whole.chunks) > 1 else b""
                )
                return SimResponse(200, whole.headers, chunks=(first, broken), latency=fault.latency)
            return SimResponse(
                200, whole.headers, body=whole.body[: len(whole.body) // 2], latency=fault.latency
            )
        headers = [(k.lower(), v) for k, v in failure.headers.items()]
        if failure.retry_after is not None:
            seconds = failure.retry_after
            headers.append(("retry-after", str(int(seconds)) if seconds == int(seconds) else repr(seconds)))
        message = failure.message or _default_message(failure.status)
        answer = self.error(failure.status, message, tuple(headers))
        return SimResponse(answer.status, answer.headers, body=answer.body, latency=fault.latency)


def _default_message(status: int) -> str:
    if status == 429:
        return "Rate limit reached (simulated). Please retry after the indicated time."
    if status >= 500:
        return f"The server had an error while processing your request (simulated HTTP {status})."
    return f"Invalid request (simulated HTTP {status})."
