"""An ``httpx`` transport that answers from the simulator in-process: same engine, no sockets.

Use it to test without a server thread: ``httpx.AsyncClient(transport=sim.transport())``. The answers
(status, headers that matter, body bytes, stream chunks, latency) are the ones the loopback server
sends; a planned disconnect raises ``httpx.RemoteProtocolError`` as a dropped connection does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from .engine import SimulatorEngine

__all__ = ["SimulatorTransport"]


class _ChunkStream(httpx.AsyncByteStream):
    def __init__(self, chunks: tuple[bytes, ...], interval: float) -> None:
        self._chunks = chunks
        self._interval = interval

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self._chunks):
            if i and self._interval:
                await asyncio.sleep(self._interval)
            yield chunk


class SimulatorTransport(httpx.AsyncBaseTransport):
    """Serves ``httpx.AsyncClient`` requests from a :class:`~statek.testing.engine.SimulatorEngine`.

    Requests are recorded in the same ``sim.requests`` as the server's, with the same per-model
    counters, so failure plans and seeds behave identically whichever path a request takes.
    """

    def __init__(self, engine: SimulatorEngine) -> None:
        self.engine = engine

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.headers.raw
        }
        answer = self.engine.handle(request.method, request.url.raw_path.decode("ascii"), headers, body)
        if answer.latency:
            await asyncio.sleep(answer.latency)
        if answer.disconnect:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        response_headers = [("server", "statek-simulator"), *answer.headers]
        if answer.chunks is None:
            response_headers.append(("content-length", str(len(answer.body))))
            return httpx.Response(
                answer.status, headers=response_headers, content=answer.body, request=request
            )
        return httpx.Response(
            answer.status,
            headers=[*response_headers, ("transfer-encoding", "chunked")],
            stream=_ChunkStream(answer.chunks, answer.interval),
            request=request,
        )
