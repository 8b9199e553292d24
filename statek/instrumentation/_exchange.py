"""One metered exchange: the request as it left, the answer's bytes as they pass, the record at the end.

Shared by the sync and async transports. Nothing here raises into the caller: a codec that cannot
read an answer is logged and the call is recorded as not metered (``no_usage``); the bytes the caller
receives are never touched.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from .._deferred import defer, drain, pending
from ..telemetry import WireCall
from ..wire.answer import StreamReader
from ..wire.errors import StreamFailure
from ..wire.requests import WireRequest, read_answer, stream_reader
from .endpoints import ProviderRoute

__all__ = ["Exchange", "content_decoder"]

_log = logging.getLogger("statek.instrumentation")


def content_decoder(headers: httpx.Headers) -> Any:
    """A decoder for the answer's ``content-encoding`` (httpx's own), ``None`` for plain bodies."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if not encoding or encoding == "identity":
        return None
    from httpx import _decoders  # httpx's decoders: the same gzip/deflate/br/zstd support the client has

    decoders = [_decoders.SUPPORTED_DECODERS.get(e.strip()) for e in encoding.split(",")]
    if any(d is None for d in decoders):
        return False  # an encoding we cannot read: count bytes, do not parse
    if len(decoders) == 1:
        return decoders[0]()  # type: ignore[misc]
    return _decoders.MultiDecoder([d() for d in reversed(decoders)])  # type: ignore[misc]


class Exchange:
    """The state of one metered call between the request and the end of its answer."""

    __slots__ = (
        "_body",
        "_call",
        "_decoder",
        "_done",
        "_failure",
        "_reader",
        "_received",
        "_request",
        "_route",
        "_sent",
        "_status",
    )

    def __init__(self, request: WireRequest, route: ProviderRoute, call: WireCall, sent: int) -> None:
        if pending:  # answers dropped unclosed since the last call: record them now (see __del__)
            drain()
        self._request, self._route, self._call, self._sent = request, route, call, sent
        self._received = 0
        self._status = 0
        self._done = False
        self._reader: StreamReader | None = None
        self._body: list[bytes] | None = None
        self._decoder: Any = None
        self._failure: BaseException | None = None

    def answered(self, response: httpx.Response) -> None:
        """The status and headers arrived."""
        try:
            self._status = response.status_code
            if self._status >= 400:
                return
            self._decoder = content_decoder(response.headers)
            if self._decoder is False:
                return
            is_sse = "text/event-stream" in response.headers.get("content-type", "")
            if self._request.stream and is_sse:
                # Only usage is kept: the caller has the text, and memory stays flat however long it is.
                self._reader = stream_reader(self._request, self._route.profile, keep_content=False)
            else:
                self._body = []
        except Exception:  # noqa: BLE001 - metering never breaks the call
            _log.exception("statek could not prepare to read an answer; it is recorded unread")

    def chunk(self, data: bytes) -> None:
        """The next bytes of the answer body, exactly as the caller receives them."""
        if not data:
            return
        if not self._received and self._request.stream and self._status < 400:
            self._call.first_chunk()
        self._received += len(data)
        if self._reader is None and self._body is None:
            return
        try:
            if self._decoder is not None:
                data = self._decoder.decode(data)
            if self._reader is not None:
                self._reader.feed(data)
            elif self._body is not None:
                self._body.append(data)
        except StreamFailure as exc:
            self._failure = exc
            self._reader = None
        except Exception:  # noqa: BLE001
            _log.warning(
                "statek could not read a %s answer; the call is recorded as not metered",
                self._request.format,
                exc_info=True,
            )
            self._reader = self._body = None

    def end(self) -> None:
        """The whole answer went through (or the caller closed it early: see :meth:`close`)."""
        if self._done:
            return
        self._done = True
        call, sent, received = self._call, self._sent, self._received
        if self._status >= 400:
            call.fail(None, str(self._status), sent, received)
            return
        if self._failure is not None:
            call.fail(self._failure, "stream_error", sent, received)
            return
        try:
            if self._decoder:
                tail = self._decoder.flush()
                if tail and self._reader is not None:
                    self._reader.feed(tail)
                elif tail and self._body is not None:
                    self._body.append(tail)
            if self._reader is not None:
                answer = self._reader.finish(sent, received)
            elif self._body is not None:
                answer = read_answer(self._request, b"".join(self._body), sent, received, self._route.profile)
            else:
                answer = None
        except StreamFailure as exc:
            call.fail(exc, "stream_error", sent, received)
            return
        except Exception:  # noqa: BLE001
            _log.warning(
                "statek could not read a %s answer; the call is recorded as not metered",
                self._request.format,
                exc_info=True,
            )
            answer = None
        if answer is None:
            from ..types import CallDetail

            call.succeed(CallDetail(sent, received, None, has_usage=False))
        else:
            call.succeed(answer.detail, answer.text, answer.tool_calls)

    def whole(self, content: bytes) -> None:
        """The answer arrived already read and decoded (built in memory, e.g. by a mock transport)."""
        self._decoder = None
        self.chunk(content)
        self.end()

    def broke(self, exc: BaseException) -> None:
        """Reading the answer raised ``exc`` (a timeout, a dropped connection)."""
        if not self._done:
            self._done = True
            self._call.fail(exc, type(exc).__qualname__, self._sent, self._received)

    def close(self) -> None:
        """The caller closed the answer: recorded with what was read (an abandoned stream keeps its
        bytes and whatever usage it had seen; without its usage event it is ``no_usage``)."""
        self.end()

    def __del__(self) -> None:
        # Dropped without being read to the end or closed: recorded with what was read, like close(),
        # by the next metering call (a finalizer must not take the consumers' locks itself).
        if not self._done:
            defer(self.end)
