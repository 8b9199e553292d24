"""Resources under the usual patterns (issue 10, items 10-12): client pools across ``asyncio.run``,
``/metrics`` under a burst of scrapers, and ``statek.shutdown()`` with a dead or stuck collector."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

import statek
from statek import ChatHistoryItem
from statek.exporters.prometheus import MetricsServer, PrometheusExporter
from statek.providers.openai_compat import OpenAICompatible_API
from statek.settings import ProviderSettings
from statek.testing import ModelBehavior, ProviderSimulator
from statek.testing.blackhole import BlackHole


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(name="simulator")
def simulator_fixture() -> Iterator[ProviderSimulator]:
    with ProviderSimulator({"m": ModelBehavior(text="ok")}) as sim:
        yield sim


def _api(simulator: ProviderSimulator) -> OpenAICompatible_API:
    return OpenAICompatible_API(ProviderSettings(api_url=simulator.openai_url, api_key="simulated"))


async def _one_call(api: OpenAICompatible_API) -> str:
    response = await api.process_request(model="m", chat_history=[ChatHistoryItem.user("hi")])
    return response.text


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_file_descriptors_stay_flat_over_1000_asyncio_runs_of_one_cached_provider(
    simulator: ProviderSimulator,
) -> None:
    api = _api(simulator)
    for _ in range(20):  # warm up: simulator threads, TLS context, imports
        assert asyncio.run(_one_call(api)) == "ok"
    gc.collect()
    before = _fds()
    for _ in range(1000):
        asyncio.run(_one_call(api))
    gc.collect()
    assert _fds() - before <= 4
    assert api._clients.loops() == 0  # every loop's clients closed with it


def test_a_loop_closed_without_shutting_down_its_generators_is_forgotten_on_next_use(
    simulator: ProviderSimulator,
) -> None:
    api = _api(simulator)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_one_call(api))
    loop.close()  # no shutdown_asyncgens: the pool cannot close its clients in that loop
    assert api._clients.loops() == 1
    assert asyncio.run(_one_call(api)) == "ok"
    assert api._clients.loops() == 0


async def test_aclose_releases_the_running_loops_clients(simulator: ProviderSimulator) -> None:
    api = _api(simulator)
    await _one_call(api)
    client = api._clients.get()
    assert api._clients.loops() == 1
    await api.aclose()
    assert api._clients.loops() == 0 and client.is_closed
    assert await _one_call(api) == "ok"  # and it can be used again
    await api.aclose()


# ----------------------------------------------------------------------------- /metrics
def test_metrics_server_holds_200_concurrent_scrapes() -> None:
    assert MetricsServer.request_queue_size >= 200
    exporter = PrometheusExporter(registry=CollectorRegistry())
    meter_provider = MeterProvider(metric_readers=[exporter.reader])
    meter_provider.get_meter("test").create_counter("scrapes").add(1)
    port = exporter.start_http_server(0)
    try:
        # 200 connections opened at once, before any is served: with a backlog of 5 the kernel drops
        # the rest and each dropped SYN costs its client a 1 s retransmit (then 3 s, 7 s).
        started = time.monotonic()
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(200)]
        connect_time = time.monotonic() - started
        for sock in sockets:
            sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        answers = []
        for sock in sockets:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answers.append(b"".join(chunks))
            sock.close()
        assert connect_time < 1.0
        assert all(answer.startswith(b"HTTP/1.0 200") for answer in answers)
        assert all(b"\nscrapes_total " in answer for answer in answers)

        def scrape(_: int) -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                return int(reply.status)

        with ThreadPoolExecutor(200) as pool:
            assert list(pool.map(scrape, range(200))) == [200] * 200
    finally:
        exporter.shutdown()
        meter_provider.shutdown()


# ----------------------------------------------------------------------------- shutdown
def _statek_threads(before: set[int]) -> list[str]:
    return [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]


def _export_something(instrumentation: statek.Instrumentation) -> None:
    tracer = instrumentation.tracer_provider.get_tracer("test")
    for _ in range(20):
        tracer.start_span("work").end()


def test_shutdown_with_a_dead_collector_is_quick_and_leaves_no_exporter_threads() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once closed
    before = {t.ident for t in threading.enumerate()}
    instrumentation = statek.instrument(
        otlp_endpoint=dead, registry=CollectorRegistry(), metric_export_interval=0.2
    )
    _export_something(instrumentation)
    time.sleep(0.5)  # the batch processor and the metric pusher have tried (and are backing off)
    started = time.monotonic()
    statek.shutdown(timeout=3.0)
    assert time.monotonic() - started < 1.5
    deadline = time.monotonic() + 1.0
    while _statek_threads(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _statek_threads(before) == []


def test_shutdown_with_a_stuck_collector_returns_within_its_timeout_and_its_threads_end() -> None:
    with BlackHole() as hole:
        before = {t.ident for t in threading.enumerate()}
        instrumentation = statek.instrument(otlp_endpoint=hole.url, registry=CollectorRegistry())
        _export_something(instrumentation)
        started = time.monotonic()
        statek.shutdown(timeout=1.0)
        assert time.monotonic() - started < 1.6
        # The queued spans got one attempt bounded by shutdown's timeout, not the exporter's own 10 s.
        deadline = time.monotonic() + 1.5
        while _statek_threads(before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _statek_threads(before) == []
