"""What the call benchmarks share: the loopback chat-completions server, the telemetry stack,
the raw-httpx baselines and percentile helpers.

The server runs in a child process (so its CPU does not share our GIL) and answers every
``POST /v1/chat/completions`` with a fixed chat-completions body with usage, or, when the request
body asks for ``"stream":true``, the same answer as a server-sent event stream (five chunks, usage in
the last, then ``[DONE]``).
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "MODEL",
    "LoopbackServer",
    "RawClient",
    "RawTransportClient",
    "percentile",
    "telemetry_on",
]

_SERVER = r"""
import asyncio, os, sys
BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","model":"bench-model-2025",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":1200,"completion_tokens":3,"total_tokens":1203,'
        b'"prompt_tokens_details":{"cached_tokens":1024}}}')
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
CHUNK = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"bench-model-2025",'
         b'"choices":[{"index":0,"delta":%s,"finish_reason":%s}]}\n\n')
EVENTS = (CHUNK % (b'{"role":"assistant","content":""}', b"null")
          + CHUNK % (b'{"content":"Par"}', b"null") + CHUNK % (b'{"content":"is."}', b"null")
          + CHUNK % (b'{}', b'"stop"')
          + b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"bench-model-2025",'
            b'"choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":3,"total_tokens":1203,'
            b'"prompt_tokens_details":{"cached_tokens":1024}}}\n\ndata: [DONE]\n\n')
STREAM = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s"
          % (len(EVENTS), EVENTS))
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            writer.write(STREAM if b'"stream":true' in body else RESP)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    loop = asyncio.get_running_loop()
    # exit when the benchmark goes away, even if it was killed: our stdin is its pipe
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read() or os._exit(0))
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=2048)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

MODEL = "bench-model"
SYSTEM = "Be concise."
QUESTION = "What is the capital of France?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    """The fixed-answer chat-completions server in a child process, stopped by PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("loopback server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)


def telemetry_on(*, sdk_tracer: bool = True) -> None:
    """SDK providers as ``statek.instrument`` wires them, with exporters that discard (no network):
    a ``BatchSpanProcessor``, the Prometheus reader and the OTLP metric push sharing it (every 5 s).
    ``sdk_tracer=False``: OpenTelemetry's no-op tracer instead (what the SDK's span costs, by difference)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from prometheus_client import CollectorRegistry

    from statek.exporters import PrometheusExporter
    from statek.exporters.otlp import MetricPusher
    from statek.model_pricing import set_model_pricing
    from statek.telemetry import configure_telemetry
    from statek.telemetry_buckets import declare_plain

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DiscardMetrics(MetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    tracer_provider: Any = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    if not sdk_tracer:
        from opentelemetry.trace import NoOpTracerProvider

        tracer_provider = NoOpTracerProvider()
    prometheus = PrometheusExporter(registry=CollectorRegistry())
    meter_provider = MeterProvider(metric_readers=[prometheus.reader])
    MetricPusher(prometheus.reader, DiscardMetrics(), interval=5.0)
    declare_plain(meter_provider)  # as statek.instrument declares its own provider
    configure_telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    set_model_pricing("OPENAI", MODEL, "0.15", "0.60", "0.075")


class RawClient:
    """Raw httpx posting the body statek would send, and parsing the JSON answer.

    ``sharded=True`` uses statek's own pool layout (:class:`statek._http.ClientPool`: 16 clients of
    16 connections, used in turn); ``False`` one ``httpx.AsyncClient`` with 256 connections, the
    usual single-client setup (for reference: httpcore's pool scan slows it under concurrency).
    """

    def __init__(self, url: str, body: bytes, *, sharded: bool) -> None:
        from statek._http import ClientPool

        self.url = url
        self.body = body
        self.headers = {"content-type": "application/json", "authorization": "Bearer bench-key"}
        self._pool = ClientPool() if sharded else None
        self._single: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._pool is not None:
            return self._pool.get()
        if self._single is None:
            self._single = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=256), timeout=60.0
            )
        return self._single

    async def call(self) -> Any:
        response = await self._client().post(self.url, content=self.body, headers=self.headers)
        response.raise_for_status()
        return json.loads(response.content)

    async def stream_call(self, body: bytes) -> list[Any]:
        """Post ``body`` (a streamed request) and parse each server-sent event's JSON, as a raw
        streaming client does."""
        events = []
        async with self._client().stream("POST", self.url, content=body, headers=self.headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    events.append(json.loads(line[6:]))
        return events

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        if self._single is not None:
            await self._single.aclose()
            self._single = None


class RawTransportClient:
    """Raw httpx sent straight to its transports, past ``httpx.AsyncClient``'s client layer (URL
    parse, cookie jar, auth and redirect flows, hooks, logging): what statek's own pool clients do
    since issue 25's sixth pass, written by hand. The like-for-like baseline for statek's own part,
    beside ``RawClient`` (the issue's, through ``client.post``).

    16 transports of 16 connections used in turn (statek's pool layout); the URL, the headers (an
    ``httpx.AsyncClient``'s defaults, then the same two ``RawClient`` sends) and the timeout made once.
    """

    def __init__(self, url: str, body: bytes, shards: int = 16) -> None:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self._transports = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._turn = 0
        self.url = httpx.URL(url)
        self.body = body
        self.headers = httpx.Headers(httpx.AsyncClient().headers)
        self.headers.update({"content-type": "application/json", "authorization": "Bearer bench-key"})
        self.extensions = {"timeout": httpx.Timeout(60.0).as_dict()}

    async def call(self) -> Any:
        self._turn = turn = (self._turn + 1) % len(self._transports)
        request = httpx.Request(
            "POST", self.url, content=self.body, headers=self.headers, extensions=self.extensions
        )
        response = await self._transports[turn].handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"raw transport call answered HTTP {response.status_code}")
        return json.loads(content)

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``samples``, nearest rank (so 1.0 is the maximum)."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
