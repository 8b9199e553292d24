"""The httpx metering transport: what it adds to official-SDK calls, streams and plain httpx traffic.

All three measurements use the full telemetry stack (SDK ``TracerProvider`` with a batch processor
and a discarding exporter, SDK ``MeterProvider`` with an in-memory reader, a priced model, an open
``Job``), interleave metered and unmetered runs in blocks, and report ratios within one run.

1. **SDK call**: ``OpenAI(...).chat.completions.create`` with and without
   ``http_client=statek.http_client()`` against the loopback simulator; p50 of each and the
   difference. Also the same with an in-memory transport (no sockets), and the transport alone (a
   request through ``handle_request`` without any SDK), which isolates statek's own work: recognise,
   read, price, record (span, counters, job). Goal: <= 50 us added at p50.
2. **Stream of N chunks** (default 1,000): chunks per second read through the SDK with and without
   metering (goal >= 0.95x), and the peak memory metering adds (traced peak metered minus unmetered)
   for a stream of N and of 4N chunks (goal: flat, the same whatever the length).
3. **Plain httpx**: GET and POST requests that are not LLM calls through an ``httpx.Client`` created
   under :func:`statek.instrument_httpx`, against an in-memory transport; p50 added. Goal <= 5 us.

    python -m benchmarks sdk_transport [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import httpx2
from openai import OpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import statek
from statek import Job
from statek.instrumentation.transport import transport_classes
from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.telemetry import configure_telemetry
from statek.testing import ModelBehavior, ProviderSimulator

MESSAGES = [{"role": "user", "content": "Capital of France?"}]
CHAT_BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"bench-model",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1200,"completion_tokens":3,"total_tokens":1203,'
    b'"prompt_tokens_details":{"cached_tokens":1024}}}'
)


class _Discard(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def discarding_telemetry() -> None:
    """statek's telemetry into SDK providers whose spans are discarded and whose metrics stay in
    memory, with an empty price registry (callers add the rows they price)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    configure_telemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider([InMemoryMetricReader()])
    )
    set_default_registry(PriceRegistry(shipped=False, model_info_dir=None))


def _telemetry() -> None:
    discarding_telemetry()
    for model in ("bench-model", "bench-stream"):
        set_model_pricing("openai", model, 2, 10, 1)


def _p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def interleaved_times(
    calls: int, block: int, off: Callable[[], Any], on: Callable[[], Any]
) -> dict[str, list[float]]:
    """Seconds per call of ``off`` and ``on`` (after 20 warm-up calls each), measured in alternating
    blocks of ``block`` calls."""
    times: dict[str, list[float]] = {"off": [], "on": []}
    for fn in (off, on):  # warm up
        for _ in range(20):
            fn()
    for start in range(0, calls, block):
        for name, fn in (("off", off), ("on", on)):
            for _ in range(min(block, calls - start)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return times


def _interleaved(
    calls: int, block: int, off: Callable[[], Any], on: Callable[[], Any]
) -> tuple[float, float]:
    """p50 (us) of ``off`` and ``on``, measured in alternating blocks."""
    times = interleaved_times(calls, block, off, on)
    return _p50(times["off"]), _p50(times["on"])


def sdk_call(sim: ProviderSimulator, calls: int) -> None:
    base = sim.base_url + "/v1"
    plain = OpenAI(base_url=base, api_key="k", http_client=httpx2.Client(), max_retries=0)
    metered = OpenAI(
        base_url=base, api_key="k", http_client=statek.http_client(provider="OPENAI"), max_retries=0
    )
    create = lambda c: lambda: c.chat.completions.create(model="bench-model", messages=MESSAGES)
    off, on = _interleaved(calls, 50, create(plain), create(metered))
    print(
        f"SDK call, loopback:   p50 off {off:8.1f} us   on {on:8.1f} us   added {on - off:6.1f} us  (goal <= 50)"
    )

    mock = lambda: httpx2.MockTransport(lambda r: httpx2.Response(200, content=iter([CHAT_BODY])))
    plain = OpenAI(base_url=base, api_key="k", http_client=httpx2.Client(transport=mock()), max_retries=0)
    metered = OpenAI(
        base_url=base,
        api_key="k",
        http_client=statek.http_client(provider="OPENAI", transport=mock()),
        max_retries=0,
    )
    off, on = _interleaved(calls, 50, create(plain), create(metered))
    print(
        f"SDK call, in-memory:  p50 off {off:8.1f} us   on {on:8.1f} us   added {on - off:6.1f} us  (goal <= 50)"
    )


def transport_alone(calls: int) -> None:
    """The transport's own work per call (recognise, read, price, record), no SDK and no sockets."""
    sync, _ = transport_classes("httpx2")
    inner = httpx2.MockTransport(lambda r: httpx2.Response(200, content=iter([CHAT_BODY])))
    metered = sync(inner, provider="OPENAI")
    body = json.dumps({"model": "bench-model", "messages": MESSAGES}).encode()

    def exchange(transport: Any) -> Callable[[], None]:
        def once() -> None:
            response = transport.handle_request(
                httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions", content=body)
            )
            for _ in response.stream:
                pass
            response.stream.close()

        return once

    off, on = _interleaved(calls, 100, exchange(inner), exchange(metered))
    print(f"transport alone:      p50 off {off:8.1f} us   on {on:8.1f} us   added {on - off:6.1f} us")


def stream(sim: ProviderSimulator, chunks: int, rounds: int) -> None:
    sim.engine.set_behavior(
        "bench-stream",
        ModelBehavior(text="x" * chunks, stream_chunk_chars=1, input_tokens=10, output_tokens=chunks),
    )
    base = sim.base_url + "/v1"
    plain = OpenAI(base_url=base, api_key="k", http_client=httpx2.Client(), max_retries=0)
    metered = OpenAI(
        base_url=base, api_key="k", http_client=statek.http_client(provider="OPENAI"), max_retries=0
    )

    def read(client: OpenAI) -> int:
        n = 0
        for _ in client.chat.completions.create(
            model="bench-stream", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            n += 1
        return n

    rates: dict[str, list[float]] = {"off": [], "on": []}
    read(plain), read(metered)
    for _ in range(rounds):
        for name, client in (("off", plain), ("on", metered)):
            t = time.perf_counter()
            n = read(client)
            rates[name].append(n / (time.perf_counter() - t))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(
        f"stream of {chunks} chunks: {off:9.0f} chunks/s off  {on:9.0f} on   ratio {on / off:5.3f}  (goal >= 0.95)"
    )

    def peak(client: OpenAI, n: int) -> int:
        sim.engine.set_behavior(
            "bench-stream",
            ModelBehavior(text="x" * n, stream_chunk_chars=1, input_tokens=10, output_tokens=n),
        )
        gc.collect()
        tracemalloc.start()
        try:
            read(client)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # The simulator (same process) builds the whole stream before sending it, so the traced peak grows
    # with the length either way; what metering adds is the difference between the two clients.
    added = {n: peak(metered, n) - peak(plain, n) for n in (chunks, 4 * chunks)}
    print(
        f"stream memory added by metering (traced peak, on - off): {added[chunks] / 1024:7.1f} KiB for {chunks} "
        f"chunks, {added[4 * chunks] / 1024:7.1f} KiB for {4 * chunks}  (goal: flat)"
    )


def plain_httpx(calls: int) -> None:
    mock = httpx.MockTransport(lambda r: httpx.Response(200, content=b"{}"))
    plain = httpx.Client(transport=mock)
    statek.instrument_httpx()
    try:
        instrumented = httpx.Client(transport=mock)
    finally:
        statek.uninstrument_httpx()
    for method, url in (("GET", "https://example.com/health"), ("POST", "https://api.example.com/v1/items")):

        def request(client: httpx.Client, method: str = method, url: str = url) -> Callable[[], Any]:
            return lambda: client.request(method, url, content=b"{}" if method == "POST" else None)

        off, on = _interleaved(calls, 200, request(plain), request(instrumented))
        print(
            f"plain httpx {method:4}: p50 off {off:8.2f} us   on {on:8.2f} us   added {on - off:6.2f} us  (goal <= 5)"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks sdk_transport", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run, noisier figures)")
    parser.add_argument("--chunks", type=int, default=1000)
    args = parser.parse_args(argv)
    calls, rounds, plain_calls = (300, 3, 2000) if args.quick else (2000, 7, 20000)
    _telemetry()
    with (
        Job("benchmark"),
        ProviderSimulator(default=ModelBehavior(text="Paris.", input_tokens=1200, output_tokens=3)) as sim,
    ):
        sdk_call(sim, calls)
        transport_alone(calls * 2)
        stream(sim, args.chunks, rounds)
        plain_httpx(plain_calls)


if __name__ == "__main__":
    main()
