"""One metered exchange: the request as it left, the answer's bytes as they pass, the record at the end.

Shared by the sync and async transports. Nothing here raises into the caller: a codec that cannot
read an answer is logged and the call is recorded as not metered (``no_usage``); the bytes the caller
receives are never touched.

Memory: a streamed answer is read event by event (one event at most
:data:`statek.wire.sse.MAX_EVENT_BYTES`); a whole answer is kept until it ends, up to
:data:`MAX_WHOLE_ANSWER_BYTES` (decompressed), past which metering gives up on the call (logged,
recorded ``no_usage``). Compressed answers are decompressed in bounded pieces (:mod:`._decoding`).

Redirects: a redirect answer (301, 302, 303, 307, 308 with a ``Location``) does not end the call. The
client that follows it sends the next request with a copy of the first one's ``extensions``, where the
transport left the exchange (:data:`FOLLOWS`): that request continues the same call (same model, same
budget reservation, bytes added up) and its answer ends it. A redirect nobody follows is recorded,
as a failed call with the redirect's status, when its request is garbage collected.
"""

from __future__ import annotations

import logging
import weakref
import zlib
from typing import Any

import httpx

from .._deferred import defer, drain, pending
from ..telemetry import WireCall
from ..wire.answer import StreamReader
from ..wire.errors import StreamFailure
from ..wire.requests import WireRequest, read_answer, stream_reader
from ._decoding import decoder_for
from .endpoints import ProviderRoute

__all__ = ["FOLLOWS", "MAX_WHOLE_ANSWER_BYTES", "Exchange"]

_log = logging.getLogger("statek.instrumentation")

MAX_WHOLE_ANSWER_BYTES = 32 * 1024 * 1024
"""The most bytes of a whole (not streamed) answer the transport keeps to read its usage: 32 MiB."""

FOLLOWS = "statek.metered_call"
"""The request ``extensions`` key under which a redirect's request carries its :class:`Exchange`."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_unread_encodings: set[str] = set()


class _GiveUp(Exception):
    """Metering gives up on this answer (its reason is the message); the caller's bytes go on."""


class Exchange:
    """The state of one metered call between the request and the end of its answer."""

    __slots__ = (
        "_body",
        "_body_size",
        "_call",
        "_decoder",
        "_done",
        "_failure",
        "_first_sent",
        "_followable",
        "_read_any",
        "_reader",
        "_received",
        "_redirect",
        "_request",
        "_route",
        "_sent",
        "_status",
    )

    def __init__(self, request: WireRequest, route: ProviderRoute, call: WireCall, sent: int) -> None:
        if pending:  # answers dropped unclosed since the last call: record them now (see __del__)
            drain()
        self._request, self._route, self._call, self._sent = request, route, call, sent
        self._first_sent = sent
        self._followable = False
        self._received = 0
        self._status = 0
        self._done = False
        self._read_any = False
        self._reader: StreamReader | None = None
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._decoder: Any = None
        self._failure: BaseException | None = None
        self._redirect: weakref.finalize | None = None

    def follow(self, request: Any) -> bool:
        """``request`` follows this exchange's redirect: it continues the call (its bytes are added,
        nothing else is reserved). ``False`` when this exchange is not waiting for one."""
        if self._redirect is None or self._done:
            return False
        self._redirect.detach()
        self._redirect = None
        self._sent += self._first_sent if request.method == "POST" else 0
        self._status = 0
        self._followable = self._read_any = False
        self._reader = self._body = self._decoder = None
        self._body_size = 0
        return True

    def redirected(self, request: Any) -> None:
        """If the answer is a redirect the client may follow, leave this exchange on ``request`` for
        the request that follows it (see the module docstring)."""
        if self._followable and self._redirect is None and not self._done:
            request.extensions[FOLLOWS] = self
            self._redirect = weakref.finalize(request, _not_followed, self)

    def answered(self, response: httpx.Response) -> None:
        """The status and headers arrived."""
        try:
            self._status = status = response.status_code
            if status >= 300:
                self._followable = status in _REDIRECTS and "location" in response.headers
                return
            encoding = response.headers.get("content-encoding", "")
            self._decoder = decoder_for(encoding)
            if self._decoder is False:
                if encoding not in _unread_encodings and len(_unread_encodings) < 64:
                    _unread_encodings.add(encoding)  # logged once per encoding: it comes with every call
                    _log.warning(
                        "statek does not read answers with content-encoding %r; such calls are recorded "
                        "as not metered (no_usage)",
                        encoding,
                    )
                return
            if self._request.stream and "text/event-stream" in response.headers.get("content-type", ""):
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
        if not self._read_any:
            self._read_any = True
            if self._request.stream and self._status < 300:
                self._call.first_chunk()
        self._received += len(data)
        if self._reader is None and self._body is None or self._status >= 300:
            return
        try:
            if self._decoder is None:
                self._take(data)
            else:
                for piece in self._decoder.decode(data):
                    self._take(piece)
        except StreamFailure as exc:
            self._failure = exc
            self._reader = None
        except Exception as exc:  # noqa: BLE001
            self._give_up(exc)

    def _take(self, data: bytes) -> None:
        """Hand decoded bytes to the stream reader, or keep them for the whole answer (bounded)."""
        if self._reader is not None:
            self._reader.feed(data)
        elif self._body is not None:
            self._body_size += len(data)
            if self._body_size > MAX_WHOLE_ANSWER_BYTES:
                raise _GiveUp(f"the answer is longer than {MAX_WHOLE_ANSWER_BYTES} bytes")
            self._body.append(data)

    def _give_up(self, exc: Exception) -> None:
        """Metering stops reading this answer: logged once, recorded ``no_usage`` at its end."""
        self._reader = self._body = self._decoder = None
        _log.warning(
            "statek could not read a %s answer (%s: %s); the call is recorded as not metered",
            self._request.format,
            type(exc).__name__,
            exc,
            exc_info=not isinstance(exc, (_GiveUp, ValueError, zlib.error)),
        )

    def end(self) -> None:
        """The whole answer went through (or the caller closed it early: see :meth:`close`)."""
        if self._done or self._redirect is not None:
            return  # a redirect's answer: the call goes on with the request that follows it
        self._done = True
        call, sent, received = self._call, self._sent, self._received
        if self._status >= 300:
            call.fail(None, str(self._status), sent, received)
            return
        if self._failure is not None:
            call.fail(self._failure, "stream_error", sent, received)
            return
        answer = None
        try:
            if self._decoder:
                for piece in self._decoder.flush():
                    self._take(piece)
            if self._reader is not None:
                answer = self._reader.finish(sent, received)
            elif self._body is not None:
                answer = read_answer(self._request, b"".join(self._body), sent, received, self._route.profile)
        except StreamFailure as exc:
            call.fail(exc, "stream_error", sent, received)
            return
        except Exception as exc:  # noqa: BLE001
            self._give_up(exc)
        self._body = None
        if answer is None:
            from ..types import CallDetail

            call.succeed(CallDetail(sent, received, None, has_usage=False))
        else:
            call.succeed(answer.detail, answer.text, answer.tool_calls)

    def not_followed(self) -> None:
        """The redirect this exchange waited on was never followed: the call ends with its status."""
        if self._redirect is not None:
            self._redirect = None
            self.end()

    def whole(self, content: bytes) -> None:
        """The answer arrived already read and decoded (built in memory, e.g. by a mock transport)."""
        self._decoder = None
        self.chunk(content)
        self.end()

    def broke(self, exc: BaseException) -> None:
        """Reading the answer raised ``exc`` (a timeout, a dropped connection)."""
        if self._redirect is not None:
            self._redirect.detach()
            self._redirect = None
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


def _not_followed(exchange: Exchange) -> None:
    # Runs when the redirect's request is collected: like __del__, the recording waits for the next
    # metering call (a finalizer must not take the consumers' locks itself).
    defer(exchange.not_followed)
