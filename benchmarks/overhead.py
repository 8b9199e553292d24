"""Metering overhead: the telemetry wrapper (span + instruments + cost + job accumulation) per call,
and throughput at concurrency 64 against raw pooled httpx, on a loopback OpenAI-compatible server.

The server runs in a child process (so its CPU does not share our GIL) and answers every
``POST /v1/chat/completions`` with a fixed chat-completions body with usage. "on" is the full stack
as :func:`statek.instrument` wires it: an SDK ``MeterProvider`` with the Prometheus reader, which
the OTLP metric push (discarding exporter, every 5 s) shares, an SDK ``TracerProvider`` with a
``BatchSpanProcessor`` (discarding exporter), a priced model and an open ``Job``. "off" is the same
provider call without the wrapper (``_process_request`` called directly).

Printed figures:

- wrapper p50: ``observe_call`` around a provider step that does no I/O, minus that step: the work
  on the caller's path (span, pricing, job accumulation, counters, span close), and all the work
  including the histogram measurements that a call queues for the next collection (the CPU a call
  costs; see :class:`statek.instruments.Instruments` for why they are queued);
- loopback p50 on/off: whole calls to the server, interleaved in blocks, and their difference;
- throughput: calls/s at concurrency 64, statek (metering on) vs raw ``httpx`` posting the same body.

Goals (issue 4): wrapper <= 50 us p50; throughput >= 0.9x raw.

    python -m benchmarks.overhead [--calls 3000] [--concurrent 64] [--throughput-calls 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from typing_extensions import Self

_SERVER = r"""
import asyncio, sys
BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","model":"bench-model-2025",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":1200,"completion_tokens":3,"total_tokens":1203,'
        b'"prompt_tokens_details":{"cached_tokens":1024}}}')
RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(RESP)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=512)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

MODEL = "bench-model"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    """The fixed-answer chat-completions server in a child process, stopped by PID."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(self.port)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("loopback server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)


def _telemetry_on() -> None:
    """SDK providers as ``statek.instrument`` wires them, with exporters that discard (no network)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from prometheus_client import CollectorRegistry

    from statek.exporters import PrometheusExporter
    from statek.exporters.otlp import MetricPusher
    from statek.model_pricing import set_model_pricing
    from statek.telemetry import configure_telemetry

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

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    prometheus = PrometheusExporter(registry=CollectorRegistry())
    meter_provider = MeterProvider(metric_readers=[prometheus.reader])
    MetricPusher(prometheus.reader, DiscardMetrics(), interval=5.0)  # the OTLP push, sharing the reader
    configure_telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    set_model_pricing("OPENAI", MODEL, "0.15", "0.60", "0.075")


def _api(url: str) -> Any:
    from statek import LLM_API

    return LLM_API.get("OPENAI", model=MODEL, api_url=url, api_key="bench-key")


async def wrapper_p50(samples: int) -> tuple[float, float]:
    """p50 µs of ``observe_call`` around a provider step that returns at once (no I/O), minus the
    bare step's: (the caller's path, all work including the queued histogram measurements)."""
    from statek import ChatHistoryItem
    from statek.executors.job import Job
    from statek.llm_api import LLM_Response
    from statek.telemetry import observe_call, telemetry_config
    from statek.types import CallDetail

    api = _api("http://127.0.0.1:9/v1/chat/completions")
    params = api._prepare(None, MODEL, None, None, [ChatHistoryItem.user("hi")], None, None, False)
    response = LLM_Response(
        "Paris.", CallDetail(120, 330, None, 1200, 3, 1024, response_model="bench-model-2025"), None
    )

    async def run() -> LLM_Response:
        return response

    instruments = telemetry_config().instruments
    caller: list[int] = []
    total: list[int] = []
    bare: list[int] = []
    with Job("bench"):
        for i in range(samples + 500):
            t0 = time.perf_counter_ns()
            await observe_call(api, params, run)
            t1 = time.perf_counter_ns()
            instruments.flush_histograms()
            t2 = time.perf_counter_ns()
            await run()
            t3 = time.perf_counter_ns()
            if i >= 500:  # warm-up: series, caches, price lookups
                caller.append(t1 - t0)
                total.append(t2 - t0)
                bare.append(t3 - t2)
    base = statistics.median(bare)
    return (statistics.median(caller) - base) / 1000, (statistics.median(total) - base) / 1000


async def loopback_p50(url: str, samples: int, block: int = 50) -> tuple[float, float]:
    """p50 µs of whole calls with metering on and off, interleaved in blocks of ``block`` calls."""
    from statek import ChatHistoryItem
    from statek.executors.job import Job

    api = _api(url)
    history = [ChatHistoryItem.user("What is the capital of France?")]
    on: list[int] = []
    off: list[int] = []

    async def metered() -> None:
        await api.process_request("Be concise.", MODEL, chat_history=history)

    async def bare() -> None:
        same = api._prepare("Be concise.", MODEL, None, None, history, None, None, False)
        await api._process_request(same, api._build_request_payload(same))

    with Job("bench"):
        for _ in range(20):
            await metered()
            await bare()
        for round_ in range(samples // block):
            for fn, out in ((metered, on), (bare, off)) if round_ % 2 == 0 else ((bare, off), (metered, on)):
                for _ in range(block):
                    t0 = time.perf_counter_ns()
                    await fn()
                    out.append(time.perf_counter_ns() - t0)
    await api.aclose()
    return statistics.median(on) / 1000, statistics.median(off) / 1000


async def throughput(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """Calls per second at ``concurrency``: statek (metering on) and raw pooled httpx, same body."""
    from statek import ChatHistoryItem
    from statek.executors.job import Job

    api = _api(url)
    history = [ChatHistoryItem.user("What is the capital of France?")]
    body = json.dumps(
        api.preview_request("Be concise.", MODEL, chat_history=history), separators=(",", ":")
    ).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer bench-key"}
    per_task = calls // concurrency

    async def statek_worker() -> None:
        for _ in range(per_task):
            await api.process_request("Be concise.", MODEL, chat_history=history)

    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
    ) as client:

        async def raw_worker() -> None:
            for _ in range(per_task):
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()
                json.loads(response.content)

        async def rate(worker: Any) -> float:
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return per_task * concurrency / (time.perf_counter() - start)

        with Job("bench-throughput"):
            await rate(statek_worker)  # warm up both pools
            await rate(raw_worker)
            results: dict[str, list[float]] = {"statek": [], "raw": []}
            for _ in range(3):
                results["statek"].append(await rate(statek_worker))
                results["raw"].append(await rate(raw_worker))
    await api.aclose()
    return statistics.median(results["statek"]), statistics.median(results["raw"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="sequential calls per side for the p50s")
    parser.add_argument("--concurrent", type=int, default=64)
    parser.add_argument("--throughput-calls", type=int, default=3200)
    args = parser.parse_args(argv)
    _telemetry_on()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with LoopbackServer() as server:
        caller, total = asyncio.run(wrapper_p50(args.calls * 4))
        print(f"wrapper p50, caller's path (no I/O):  {caller:7.1f} us   (goal <= 50 us)")
        print(f"wrapper p50, incl. queued histograms: {total:7.1f} us   (CPU per call)")
        on, off = asyncio.run(loopback_p50(server.url, args.calls))
        print(
            f"loopback call p50, metering on/off:   {on:7.1f} / {off:7.1f} us   difference {on - off:6.1f} us"
        )
        statek_rate, raw_rate = asyncio.run(throughput(server.url, args.throughput_calls, args.concurrent))
        print(
            f"throughput at concurrency {args.concurrent}:       statek {statek_rate:7.0f}/s, raw httpx "
            f"{raw_rate:7.0f}/s = {statek_rate / raw_rate:4.2f}x   (goal >= 0.9x)"
        )


if __name__ == "__main__":
    main()
