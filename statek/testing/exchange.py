"""The data of one simulated exchange: the request as received, the answer, and the record kept of both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .behavior import Failure, Usage

__all__ = ["Outcome", "RecordedRequest", "SimRequest", "SimResponse", "Wire"]

Wire = Literal["openai", "anthropic", "gemini", "openai_responses", "openai_embeddings", "gemini_embeddings"]
"""The wire format a request was routed to."""

Outcome = Literal["ok", "error", "malformed", "disconnect"]
"""How the simulator answered: a normal answer, an HTTP error, a malformed 200, or a dropped connection."""


@dataclass(frozen=True, slots=True)
class SimRequest:
    """A request as the simulator received it; what a ``text=`` or ``usage=`` callable is given.

    ``path`` excludes the query string (``query`` holds it, decoded). ``headers`` has lower-case names
    (it may hold an API key, so it is kept out of ``repr``). ``body`` is the parsed JSON body (``None``
    when absent or not JSON) and ``body_bytes`` its raw length. ``model`` comes from the body
    (OpenAI, Anthropic) or the URL (Gemini, Vertex, Azure deployments). ``index`` numbers the requests
    for this model from 0; ``sequence`` numbers all requests the simulator got from 0.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str] = field(repr=False)
    body: Any = field(repr=False)
    body_bytes: int
    wire: Wire | None
    model: str | None
    stream: bool
    index: int
    sequence: int

    @property
    def prompt_text(self) -> str:
        """The text of the last user turn, whatever the wire format ('' when there is none)."""
        body = self.body if isinstance(self.body, dict) else {}
        turns = body.get("messages") or body.get("contents") or []
        for turn in reversed(turns if isinstance(turns, list) else []):
            if isinstance(turn, dict) and turn.get("role") == "user":
                return _text_of(turn.get("content", turn.get("parts")))
        return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


@dataclass(frozen=True, slots=True)
class RecordedRequest(SimRequest):
    """A received request plus what the simulator answered (one entry of ``ProviderSimulator.requests``).

    ``usage`` is exactly what the answer reported, in statek's meaning (see
    :class:`~statek.testing.Usage`): a correct provider adapter parses the same numbers back. It is
    ``None`` when the answer carried no usage (errors, or an OpenAI stream without
    ``stream_options.include_usage``). ``wire_usage`` is the usage object as sent on the wire (for
    streams: the last one sent). ``status`` is ``None`` for a dropped connection.
    """

    status: int | None
    outcome: Outcome
    usage: Usage | None
    wire_usage: Mapping[str, Any] | None
    response_bytes: int
    latency: float
    failure: Failure | None


@dataclass(frozen=True, slots=True)
class SimResponse:
    """An answer ready to send, the same for the loopback server and the in-process transport.

    Either ``body`` (one piece, sent with ``Content-Length``) or ``chunks`` (server-sent events, sent
    chunked, ``interval`` seconds apart) is set. ``latency`` is waited before the first byte.
    ``disconnect`` means: send nothing, close the connection. ``usage``/``wire_usage`` are what the
    answer reported, for the record.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    chunks: tuple[bytes, ...] | None = None
    latency: float = 0.0
    interval: float = 0.0
    disconnect: bool = False
    usage: Usage | None = None
    wire_usage: Mapping[str, Any] | None = None

    @property
    def size(self) -> int:
        """Response body bytes (all chunks for a stream)."""
        return sum(map(len, self.chunks)) if self.chunks is not None else len(self.body)
