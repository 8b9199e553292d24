"""The loopback HTTP/1.1 server: an asyncio loop in one background thread, HTTP parsed by ``h11``.

Connections are kept alive (HTTP/1.1 default) and served concurrently, one task each; a large listen
backlog lets a thousand clients connect at once. Latency is an ``asyncio.sleep`` in the connection's
task, so slow answers do not hold other connections up. Streams go out with chunked encoding, each
server-sent event written and drained on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import h11

from .engine import SimulatorEngine
from .exchange import SimResponse

__all__ = ["LoopbackServer"]

_log = logging.getLogger(__name__)

_READ_SIZE = 65536
_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
_SERVER_HEADER = ("server", "statek-simulator")


class LoopbackServer:
    """Serves an engine on ``host:port`` (``port=0``: a free one) from a daemon thread.

    :meth:`start` returns once the socket listens (``port`` is then the real one) and raises if it
    cannot bind. :meth:`stop` closes the listener and every open connection, then joins the thread.
    """

    def __init__(self, engine: SimulatorEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.connections_accepted = 0
        """TCP connections accepted since the last start: with keep-alive, far fewer than requests."""

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve in a new thread; returns when ready."""
        if self.running:
            raise RuntimeError("the simulator server is already running")
        self._ready.clear()
        self._error = None
        self.connections_accepted = 0
        self._thread = threading.Thread(target=self._run, name=f"statek-simulator-{id(self):x}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the simulator server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread. Safe to call twice."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the simulator server thread did not stop within {timeout} s")
        self._thread = None

    # ------------------------------------------------------------------ the server thread
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - e.g. a bind error: start() re-raises it in the caller
            self._error = exc
        finally:
            self._ready.set()
            loop.close()
            self._loop = None

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, self.host, self.port, backlog=_BACKLOG)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections_accepted += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(conn, reader, writer)
                if request is None:
                    return
                head, body = request
                headers = {
                    name.decode("latin-1").lower(): value.decode("latin-1") for name, value in head.headers
                }
                response = self.engine.handle(
                    head.method.decode(), head.target.decode("latin-1"), headers, body
                )
                if response.latency:
                    await asyncio.sleep(response.latency)
                if response.disconnect:
                    return
                await self._send(conn, writer, response)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(Exception):
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    writer.write(
                        conn.send(h11.Response(status_code=status, headers=[("content-length", "0")]))
                    )
                    writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, h11.LocalProtocolError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one broken connection must not stop the server
            _log.exception("statek simulator: connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _read_request(
        conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[h11.Request, bytes] | None:
        """The next request and its whole body; ``None`` when the client closed the connection."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:  # curl does this for bodies over 1 KiB
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
                conn.receive_data(await reader.read(_READ_SIZE))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return head, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    @staticmethod
    async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, response: SimResponse) -> None:
        headers = [_SERVER_HEADER, *response.headers]
        if response.chunks is None:
            headers.append(("content-length", str(len(response.body))))
            writer.write(
                conn.send(h11.Response(status_code=response.status, headers=headers))
                + conn.send(h11.Data(data=response.body))
                + conn.send(h11.EndOfMessage())
            )
            await writer.drain()
            return
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
        for i, chunk in enumerate(response.chunks):
            if i and response.interval:
                await asyncio.sleep(response.interval)
            writer.write(conn.send(h11.Data(data=chunk)))
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
