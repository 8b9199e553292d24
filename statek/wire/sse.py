"""Server-sent events, as LLM APIs send them.

:class:`SSEDecoder` is incremental: feed it the bytes of a stream in whatever pieces they arrive and
it returns the complete events so far, holding back only the unfinished last line. It follows the
WHATWG event-stream rules that matter for LLM APIs: ``event:`` and ``data:`` fields, multi-line data
joined with ``\\n``, comment lines (``:``) ignored, CR, LF or CRLF line endings (a CR at the end of one
piece may be the first half of a CRLF). :func:`iter_sse_json` reads a whole body at once.

Cost and bounds: the work done is linear in the bytes fed, whatever the sizes of the pieces (each
piece is scanned a fixed number of times, by C-level bytes operations: split into events at blank
lines, the common event of one ``data:`` line read whole; an unfinished line is kept as a list of
pieces and joined once, when it ends). One event (its data lines added up) and one line may hold
at most :data:`MAX_EVENT_BYTES` bytes; a stream that goes over raises :class:`EventTooLargeError`
as soon as the bound is passed, without reading further, so a stream with no line end cannot make
the decoder hold more than that.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from typing import Any

from .errors import WireFormatError
from .json_text import parse_json

__all__ = ["MAX_EVENT_BYTES", "EventTooLargeError", "SSEDecoder", "iter_sse_json"]

MAX_EVENT_BYTES = 128 * 1024 * 1024
"""The most bytes one event (or one line) of a stream may carry: 128 MiB. Gemini image models send
each image as base64 in one event (a few MiB); nothing an LLM API sends comes near this."""

# Only CR, LF and CRLF end lines in an event stream; str.splitlines would also split on U+2028
# and friends, which JSON may carry unescaped inside strings. CR and LF never occur inside a
# multi-byte UTF-8 sequence, so splitting the bytes before decoding is safe. Lines are split with
# bytes.split (memchr speed; a regular expression costs ~4x more on a long line), CRs made LFs first.

SSEEvent = tuple[str | None, Any]
"""``(event_name, parsed_json_data)``."""


class EventTooLargeError(WireFormatError):
    """One event or line of a stream is longer than the decoder's bound (:data:`MAX_EVENT_BYTES`)."""


class SSEDecoder:
    """Turns the bytes of an event stream into ``(event, data)`` pairs, data parsed as JSON.

    ``[DONE]`` markers are skipped. ``select(event, data)``, when given, is asked before each event's
    data is parsed; events it declines are dropped unparsed (a reader that needs only usage skips the
    JSON work for every text delta). :meth:`feed` and :meth:`close` raise
    :class:`~statek.wire.errors.WireFormatError` (a ``ValueError``) for a data field that is not
    JSON or not UTF-8, and its subclass :class:`EventTooLargeError` for an event or line longer than
    ``max_event_bytes`` (default: :data:`MAX_EVENT_BYTES` when the decoder is made); after either, the decoder is not to be fed
    again. Linear in the bytes fed, whatever the pieces.
    """

    __slots__ = ("_after_cr", "_data", "_data_size", "_event", "_limit", "_rest", "_rest_size", "_select")

    def __init__(
        self,
        select: Callable[[str | None, str], bool] | None = None,
        *,
        max_event_bytes: int | None = None,
    ) -> None:
        self._select = select
        self._limit = MAX_EVENT_BYTES if max_event_bytes is None else max_event_bytes
        self._rest: list[bytes] = []  # the unfinished last line, in the pieces it came in
        self._rest_size = 0
        self._after_cr = False  # the last piece ended with a CR: an LF starting the next one is its pair
        self._event: str | None = None
        self._data: list[str] = []
        self._data_size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        try:
            return self._feed(chunk)
        except WireFormatError:
            raise
        except ValueError as exc:
            raise WireFormatError(f"a stream event is not JSON: {exc}") from exc
        except RecursionError:  # nested deeper than Python's stack: not an answer to read
            raise WireFormatError("a stream event is not JSON: it is nested too deeply to read") from None

    def close(self) -> list[SSEEvent]:
        """The last event, when the stream ended without the blank line that closes it."""
        try:
            return self._close()
        except WireFormatError:
            raise
        except ValueError as exc:
            raise WireFormatError(f"a stream event is not JSON: {exc}") from exc
        except RecursionError:  # nested deeper than Python's stack: not an answer to read
            raise WireFormatError("a stream event is not JSON: it is nested too deeply to read") from None

    def _feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if b"\n" not in chunk and b"\r" not in chunk:  # the middle of a long line: kept as is, no copy
            self._rest_size += len(chunk)
            if self._rest_size > self._limit:
                raise self._too_large("line")
            self._rest.append(chunk)
            return []
        if b"\r" in chunk:
            ends_with_cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            ends_with_cr = False
        self._after_cr = ends_with_cr
        events: list[SSEEvent] = []
        if self._rest:  # the piece ends the line the last ones began
            end = chunk.find(b"\n")
            self._rest.append(chunk[:end])
            line = b"".join(self._rest)
            self._rest, self._rest_size = [], 0
            if len(line) > self._limit:
                raise self._too_large("line")
            self._line(line, events)
            chunk = chunk[end + 1 :]
        # Whole events at once: each block before a blank line is one event's lines (a block may
        # start with further blank lines); the common block, one "data: " line, is read in one step.
        # The part after the last blank line is an unfinished event.
        blocks = chunk.split(b"\n\n")
        last = blocks.pop()
        # Checked once per piece, not per event: no block holds a second line (every LF is in a
        # separator), and none can be over the bound (the piece is not).
        one_line_each = chunk.count(b"\n") == 2 * len(blocks) and len(chunk) < self._limit
        if blocks and (self._data or self._event is not None):
            self._lines(blocks.pop(0), events)  # ends the event earlier pieces began
            self._dispatch(events)
        select = self._select
        for block in blocks:
            if one_line_each and block.startswith(b"data: "):
                text = block[6:].decode()
                if text != "[DONE]" and (select is None or select(None, text)):
                    events.append((None, parse_json(text)))
            else:
                self._lines(block, events)
                self._dispatch(events)
        if last:
            end = last.rfind(b"\n")
            if end >= 0:
                self._lines(last[:end], events)
                last = last[end + 1 :]
            if last:
                self._rest_size = len(last)
                if self._rest_size > self._limit:
                    raise self._too_large("line")
                self._rest.append(last)
        return events

    def _close(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if self._rest:
            rest = b"".join(self._rest)
            self._rest, self._rest_size = [], 0
            self._line(rest, events)
        self._dispatch(events)
        return events

    def _too_large(self, what: str) -> EventTooLargeError:
        return EventTooLargeError(f"a stream {what} is longer than {self._limit} bytes: not read")

    def _lines(self, block: bytes, events: list[SSEEvent]) -> None:
        for line in block.split(b"\n"):
            self._line(line, events)

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if raw[:1] == b":":
            return
        # Only the field name is looked at before decoding: a long data line is decoded once, from
        # a view (no copies of it made by partition/removeprefix); other fields are ignored unread.
        colon = raw.find(b":")
        name = raw if colon < 0 else raw[:colon]
        if name != b"data" and name != b"event":
            return
        start = colon + 2 if raw[colon + 1 : colon + 2] == b" " else colon + 1
        value = "" if colon < 0 else codecs.utf_8_decode(memoryview(raw)[start:], "strict", True)[0]
        if name == b"event":
            self._event = value
        else:
            self._data_size += len(value) + 1
            if self._data_size > self._limit:
                raise self._too_large("event")
            self._data.append(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        data, event = self._data, self._event
        self._event, self._data, self._data_size = None, [], 0
        if data and data != ["[DONE]"]:
            text = data[0] if len(data) == 1 else "\n".join(data)
            if self._select is None or self._select(event, text):
                events.append((event, parse_json(text)))


def iter_sse_json(body: bytes, *, max_event_bytes: int | None = None) -> Iterator[SSEEvent]:
    """Yield ``(event_name, parsed_data)`` for every event of a whole body carrying data.

    Raises :class:`~statek.wire.errors.WireFormatError` (a ``ValueError``) for a data field that is
    not JSON, :class:`EventTooLargeError` for an event over ``max_event_bytes``; callers turn them
    into their provider's :class:`~statek.exceptions.ResponseFormatError`.
    """
    decoder = SSEDecoder(max_event_bytes=max_event_bytes)
    yield from decoder.feed(body)
    yield from decoder.close()
