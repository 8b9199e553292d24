"""What every codec reads an answer into, and the incremental reader every streaming codec offers."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from ..types import CallDetail, CallParams

__all__ = ["Answer", "StreamReader"]


class Answer(NamedTuple):
    """One answer read by a codec: generated text, the tool calls asked for (``None``: none), usage."""

    text: str
    tool_calls: list[CallParams] | None
    detail: CallDetail


class StreamReader(Protocol):
    """Reads a streamed answer as its bytes arrive, holding only what the answer adds up to.

    :meth:`feed` takes the next bytes of the (decoded) body, in pieces of any size, and returns the
    text the model generated in them; it raises :class:`~statek.wire.errors.WireFormatError` for an
    event that cannot be read or that reports an error. :meth:`finish` returns the answer the bytes
    so far add up to; for a stream that ended before its usage event ``detail.has_usage`` is False
    and the counts are those seen. ``finish`` may be called on a stream cut short.
    """

    def feed(self, data: bytes) -> list[str]: ...

    def finish(self, bytes_sent: int, bytes_received: int) -> Answer: ...
