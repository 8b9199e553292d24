"""Streaming for ``LLM_API`` callers: text as it is generated, then the same ``LLM_Response``.

``api.stream_request(...)`` takes :meth:`~statek.llm_api.LLM_API.process_request`'s arguments and
returns an :class:`LLM_Stream`::

    stream = api.stream_request(model="gpt-4o-mini", chat_history=history)
    async for piece in stream:
        print(piece, end="", flush=True)
    response = stream.response          # the LLM_Response process_request would have returned

The call is metered exactly like ``process_request`` (same span, counters, pricing, job usage), plus
the time to the first chunk. Built-in providers stream over server-sent events and read them with
the wire codecs (:mod:`statek.wire`) as they arrive; a provider without streaming support (a
seed-style subclass) answers whole and yields its text as one piece. A caller that stops iterating
early cancels the call (recorded as a failed call with error type ``CancelledError``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from . import telemetry
from ._http import WireBytes, exchange, json_body, note_wire_bytes
from .exceptions import MalformedToolCallError, ProviderConnectionError, ProviderError, ResponseFormatError
from .types import LLM_Response
from .wire.answer import StreamReader
from .wire.errors import StreamFailure, ToolCallFormatError, WireFormatError

if TYPE_CHECKING:
    from .llm_api import LLM_API

__all__ = ["LLM_Stream", "stream_answer"]

Emit = Callable[[str], None]


class LLM_Stream:
    """The pieces of one streamed answer (``async for piece in stream``), then :attr:`response`.

    Iterate it once. Provider errors are raised from the iteration, after the pieces that came
    before them; the call's telemetry is complete when the iteration ends.
    """

    def __init__(self, api: LLM_API, run: Callable[[Emit], Awaitable[LLM_Response]]) -> None:
        self._api = api
        self._run = run
        self._response: LLM_Response | None = None
        self._started = False

    @property
    def response(self) -> LLM_Response:
        """The whole answer, usage and cost included. ``RuntimeError`` before the stream ended."""
        if self._response is None:
            raise RuntimeError("the stream has not ended yet: iterate it (or await get_response()) first")
        return self._response

    async def get_response(self) -> LLM_Response:
        """Read the rest of the stream (if any) and return :attr:`response`."""
        if not self._started:
            async for _ in self:
                pass
        return self.response

    def __aiter__(self) -> AsyncIterator[str]:
        if self._started:
            raise RuntimeError("an LLM_Stream can be iterated only once")
        self._started = True
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        pieces = _Pieces()
        task = asyncio.ensure_future(self._run(pieces.add))
        task.add_done_callback(pieces.wake)
        try:
            while True:
                if pieces.ready:
                    ready, pieces.ready = pieces.ready, []
                    for piece in ready:
                        yield piece
                elif task.done():
                    break
                else:
                    await pieces.wait()
            self._response = task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


class _Pieces:
    """Text pieces handed from the call's task to the iterating caller: a list and, while the caller
    waits, one future (an ``asyncio.Queue`` costs a put and a get per piece; pieces come in bursts)."""

    __slots__ = ("_waiter", "ready")

    def __init__(self) -> None:
        self.ready: list[str] = []
        self._waiter: asyncio.Future[None] | None = None

    def add(self, piece: str) -> None:
        self.ready.append(piece)
        waiter = self._waiter  # as wake(), without its frame: this runs for every piece
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wake(self, _: object = None) -> None:
        """Wake the waiting caller (a piece came, or, as the task's done callback, the call ended)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until a piece is added or the call's task has ended."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


async def stream_answer(
    api: LLM_API,
    payload: Mapping[str, Any],
    reader: StreamReader,
    emit: Emit,
    *,
    url: str,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> LLM_Response:
    """POST ``payload`` for a streamed answer and read it with ``reader`` as it arrives.

    The exchange is :func:`statek._http.exchange`'s, as for every call: retries (per ``api.retry``)
    only before the answer starts, since a stream that broke is final; ``total_timeout`` bounds the
    whole call, reading the stream included, keeping the bytes read. Each text piece goes to
    ``emit``; the first chunk is reported to telemetry. Raises the same errors as ``process_request``.
    """
    body = json_body(payload)
    first_chunk = telemetry.current_first_chunk_hook()

    def read(response: httpx.Response, so_far: WireBytes) -> Awaitable[LLM_Response]:
        return _read(
            api,
            response,
            reader,
            emit,
            first_chunk,
            so_far.attempts,
            so_far.bytes_sent,
            so_far.bytes_received,
        )

    return await exchange(
        api._clients.get(),
        url,
        body=body,
        headers=headers,
        provider=api.provider_key,
        retry=api.retry,
        read=read,
        on_retry=telemetry.report_retry,
        params=params,
    )


async def _read(
    api: LLM_API,
    response: httpx.Response,
    reader: StreamReader,
    emit: Emit,
    first_chunk: Callable[[], None] | None,
    attempt: int,
    sent: int,
    received: int,
) -> LLM_Response:
    try:
        async for chunk in response.aiter_bytes():
            if not chunk:
                continue
            if first_chunk is not None:
                first_chunk()
                first_chunk = None
            received += len(chunk)
            for piece in reader.feed(chunk):
                if piece:
                    emit(piece)
        answer = reader.finish(sent, received)
    except asyncio.CancelledError as exc:
        note_wire_bytes(exc, attempt, sent, received)
        raise
    except (httpx.TransportError, WireFormatError) as exc:
        raise _stream_error(api, exc, attempt, sent, received) from exc
    return LLM_Response._of_detail(answer.text, answer.tool_calls, answer.detail)


def _stream_error(
    api: LLM_API, exc: httpx.TransportError | WireFormatError, attempt: int, sent: int, received: int
) -> ProviderError:
    """The error ``process_request`` raises for ``exc``, which broke the stream after ``received``
    bytes (built only when a stream breaks)."""
    context: dict[str, Any] = {
        "provider": api.provider_key,
        "attempts": attempt,
        "bytes_sent": sent,
        "bytes_received": received,
    }
    if isinstance(exc, httpx.TransportError):
        return ProviderConnectionError(
            f"{api.provider_key}: the stream broke: {type(exc).__name__}: {exc}", **context
        )
    if isinstance(exc, StreamFailure):
        return ProviderError(f"{api.provider_key} stream failed: {exc}", **context)
    if isinstance(exc, ToolCallFormatError):
        return MalformedToolCallError(f"{api.provider_key}: {exc}", **context)
    return ResponseFormatError(f"{api.provider_key}: {exc}", **context)
