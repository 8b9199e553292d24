"""Server-sent events, as LLM APIs send them.

:class:`SSEDecoder` is incremental: feed it the bytes of a stream in whatever pieces they arrive and
it returns the complete events so far, holding back only the unfinished last line. It follows the
WHATWG event-stream rules that matter for LLM APIs: ``event:`` and ``data:`` fields, multi-line data
joined with ``\\n``, comment lines (``:``) ignored, CR, LF or CRLF line endings (a CR at the end of one
piece may be the first half of a CRLF). :func:`iter_sse_json` reads a whole body at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from .errors import WireFormatError

__all__ = ["SSEDecoder", "iter_sse_json"]

# Only CR, LF and CRLF end lines in an event stream; str.splitlines would also split on U+2028
# and friends, which JSON may carry unescaped inside strings. CR and LF never occur inside a
# multi-byte UTF-8 sequence, so splitting the bytes before decoding is safe.
_LINE_END = re.compile(rb"\r\n|\r|\n")

SSEEvent = tuple[str | None, Any]
"""``(event_name, parsed_json_data)``."""


class SSEDecoder:
    """Turns the bytes of an event stream into ``(event, data)`` pairs, data parsed as JSON.

    ``[DONE]`` markers are skipped. ``select(event, data)``, when given, is asked before each event's
    data is parsed; events it declines are dropped unparsed (a reader that needs only usage skips the
    JSON work for every text delta). :meth:`feed` and :meth:`close` raise
    :class:`~statek.wire.errors.WireFormatError` (a ``ValueError``) for a data field that is not
    JSON or not UTF-8.
    """

    __slots__ = ("_data", "_event", "_rest", "_select")

    def __init__(self, select: Callable[[str | None, str], bool] | None = None) -> None:
        self._select = select
        self._rest = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        try:
            return self._feed(chunk)
        except ValueError as exc:
            raise WireFormatError(f"a stream event is not JSON: {exc}") from exc

    def close(self) -> list[SSEEvent]:
        """The last event, when the stream ended without the blank line that closes it."""
        try:
            return self._close()
        except ValueError as exc:
            raise WireFormatError(f"a stream event is not JSON: {exc}") from exc

    def _feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._rest + chunk if self._rest else chunk
        lines = _LINE_END.split(buffer)
        self._rest = lines.pop()
        if buffer.endswith(b"\r"):
            # A lone CR may be followed by the LF of a CRLF in the next piece: keep it back.
            self._rest = lines.pop() + b"\r"
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def _close(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if self._rest:
            self._line(self._rest.rstrip(b"\r"), events)
            self._rest = b""
        self._dispatch(events)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if raw[:1] == b":":
            return
        name, _, value = raw.decode("utf-8").partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        data, event = self._data, self._event
        self._event, self._data = None, []
        if data and data != ["[DONE]"]:
            text = "\n".join(data)
            if self._select is None or self._select(event, text):
                try:
                    events.append((event, json.loads(text)))
                except RecursionError:  # nested deeper than Python's stack: not an answer to read
                    raise ValueError("an event's data is nested too deeply to read") from None


def iter_sse_json(body: bytes) -> Iterator[SSEEvent]:
    """Yield ``(event_name, parsed_data)`` for every event of a whole body carrying data.

    Raises :class:`~statek.wire.errors.WireFormatError` (a ``ValueError``) for a data field that is
    not JSON; callers turn it into their provider's :class:`~statek.exceptions.ResponseFormatError`.
    """
    decoder = SSEDecoder()
    yield from decoder.feed(body)
    yield from decoder.close()
