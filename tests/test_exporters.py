"""Exporters: Prometheus exposition (golden text, OpenMetrics exemplars, server/WSGI/ASGI), OTLP
configuration, the shared-reader OTLP push, and ``statek.instrument`` / ``statek.shutdown``."""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from wsgiref.util import setup_testing_defaults

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanContext, TraceFlags
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from test_telemetry_support import call, prices_fixture, scripted_api  # noqa: F401 - fixtures

from statek.exceptions import ConfigurationError
from statek.exporters import PrometheusExporter, active_instrumentation, instrument, otlp, shutdown
from statek.instruments import COST, TOKENS, Instruments

GOLDEN = """\
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name="golden"} 1.0
# HELP gen_ai_client_token_usage Measures number of input and output tokens used
# TYPE gen_ai_client_token_usage histogram
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="1.0"} 0.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="4.0"} 0.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="16.0"} 0.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="64.0"} 0.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="256.0"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="1024.0"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="4096.0"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="16384.0"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="65536.0"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="262144.0"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="1.048576e+06"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="4.194304e+06"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="1.6777216e+07"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="6.7108864e+07"} 1.0
gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input",le="+Inf"} 1.0
gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input"} 1.0
gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_token_type="input"} 100.0
# HELP gen_ai_client_operation_duration_seconds GenAI operation duration
# TYPE gen_ai_client_operation_duration_seconds histogram
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.01"} 0.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.02"} 0.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.04"} 0.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.08"} 0.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.16"} 0.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.32"} 0.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.64"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="1.28"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="2.56"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="5.12"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="10.24"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="20.48"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="40.96"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="81.92"} 1.0
gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="+Inf"} 1.0
gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"} 1.0
gen_ai_client_operation_duration_seconds_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"} 0.5
# HELP statek_tokens_total Tokens used, by type: input (whole prompt), output (incl. reasoning), cache_read, cache_write, reasoning
# TYPE statek_tokens_total counter
statek_tokens_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",statek_token_type="input"} 100.0
# HELP statek_cost_usd_total Cost of provider calls in US dollars, by how it was obtained (calculated, reported, unpriced)
# TYPE statek_cost_usd_total counter
statek_cost_usd_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",statek_cost_status="calculated"} 0.0015
# HELP app_jobs_done_total Jobs done
# TYPE app_jobs_done_total counter
app_jobs_done_total{queue="a"} 3.0
# HELP app_latency_milliseconds 
# TYPE app_latency_milliseconds histogram
app_latency_milliseconds_bucket{le="10.0"} 0.0
app_latency_milliseconds_bucket{le="100.0"} 1.0
app_latency_milliseconds_bucket{le="+Inf"} 1.0
app_latency_milliseconds_count 1.0
app_latency_milliseconds_sum 42.0
"""

TRACE_ID, SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
LABELS = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}


@pytest.fixture
def golden() -> Iterator[PrometheusExporter]:
    """:func:`fresh_golden` after its first scrape (which shows every series at zero)."""
    for exporter in fresh_golden():
        generate_latest(exporter.registry)
        yield exporter


@pytest.fixture(name="fresh_golden")
def fresh_golden_fixture() -> Iterator[PrometheusExporter]:
    yield from fresh_golden()


def fresh_golden() -> Iterator[PrometheusExporter]:
    """Known data in every shape: both catalogue histograms, two counters (one with an exemplar),
    and an application's own counter and histogram on the same provider; not scraped yet."""
    registry = CollectorRegistry()
    exporter = PrometheusExporter(registry=registry)
    provider = MeterProvider(metric_readers=[exporter.reader], resource=Resource({"service.name": "golden"}))
    instruments = Instruments(provider.get_meter("statek"))
    instruments.token_usage.record(
        100, {**LABELS, "gen_ai.operation.name": "chat", "gen_ai.token.type": "input"}
    )
    instruments.duration.record(0.5, {**LABELS, "gen_ai.operation.name": "chat"})
    instruments.cell(TOKENS, {**LABELS, "statek.token.type": "input"}).value = 100
    cost = instruments.cell(COST, {**LABELS, "statek.cost.status": "calculated"}, Decimal(0))
    cost.value = Decimal("0.0015")
    cost.exemplar = SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(TraceFlags.SAMPLED))
    app = provider.get_meter("app")
    app.create_counter("app.jobs.done", unit="{job}", description="Jobs done").add(3, {"queue": "a"})
    app.create_histogram("app.latency", unit="ms", explicit_bucket_boundaries_advisory=[10, 100]).record(42)
    yield exporter
    exporter.shutdown()
    provider.shutdown()


def _zeroed(exposition: str) -> str:
    """The exposition with every counter and histogram sample at zero (``target_info`` kept)."""
    return re.sub(r"^((?!target_info)\w+(\{.*\})?) [0-9.e+]+$", r"\1 0.0", exposition, flags=re.MULTILINE)


def test_first_scrape_shows_every_new_series_at_zero(fresh_golden: PrometheusExporter) -> None:
    assert generate_latest(fresh_golden.registry).decode() == _zeroed(GOLDEN) != GOLDEN


def test_openmetrics_first_scrape_then_values(fresh_golden: PrometheusExporter) -> None:
    # So rate()/increase() see the first increment: 0 on this scrape, the value on the next.
    first = generate_openmetrics(fresh_golden.registry).decode()
    assert "statek_cost_usd_total{" in first and "trace_id" not in first  # a zero has no exemplar
    assert generate_latest(fresh_golden.registry).decode() == GOLDEN


def test_text_exposition_matches_the_golden_file(golden: PrometheusExporter) -> None:
    assert generate_latest(golden.registry).decode() == GOLDEN


def test_openmetrics_exposition_adds_units_and_the_trace_id_exemplar(golden: PrometheusExporter) -> None:
    text = generate_openmetrics(golden.registry).decode()
    assert "# UNIT statek_cost_usd usd\n" in text and "# UNIT statek_tokens" not in text
    assert "# UNIT gen_ai_client_operation_duration_seconds seconds\n" in text
    assert re.search(
        r'^statek_cost_usd_total\{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",'
        r'statek_cost_status="calculated"\} 0\.0015 # \{span_id="b7ad6b7169203331",'
        r'trace_id="0af7651916cd43dd8448eb211c80319c"\} 0\.0015 \d+\.\d+$',
        text,
        re.MULTILINE,
    )
    assert text.endswith("# EOF\n")
    assert "trace_id" not in generate_latest(golden.registry).decode()  # the text format has no exemplars


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_standalone_server_negotiates_the_format_and_stops(golden: PrometheusExporter) -> None:
    port = golden.start_http_server(0)
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url) as plain:
        assert plain.headers["content-type"].startswith("text/plain")
        assert plain.read().decode() == GOLDEN
    request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request) as openmetrics:
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert b'trace_id="0af7651916cd43dd8448eb211c80319c"' in openmetrics.read()
    golden.shutdown()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_wsgi_and_asgi_apps_serve_the_registry(golden: PrometheusExporter) -> None:
    environ: dict[str, Any] = {"PATH_INFO": "/metrics", "HTTP_ACCEPT": "application/openmetrics-text"}
    setup_testing_defaults(environ)
    statuses: list[str] = []
    body = b"".join(golden.wsgi_app()(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"] and b"# EOF" in body and b"trace_id=" in body

    async def asgi() -> httpx.Response:
        transport = httpx.ASGITransport(app=golden.asgi_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/metrics")

    response = asyncio.run(asgi())
    assert response.status_code == 200 and response.text == GOLDEN


# ----------------------------------------------------------------------------- OTLP configuration
def test_otlp_protocol_and_endpoint_follow_arguments_then_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (*otlp.ENDPOINT_ENVS, "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert not otlp.otlp_configured()
    assert otlp.protocol_for("traces") == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert otlp.protocol_for("metrics") == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert otlp.protocol_for("traces") == "http/protobuf"
    assert otlp.protocol_for("traces", "grpc") == "grpc"
    with pytest.raises(ConfigurationError):
        otlp.protocol_for("traces", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://127.0.0.1:4318/v1/metrics")
    assert otlp.otlp_configured()

    http = otlp.span_exporter("http://127.0.0.1:4318/", protocol="http/protobuf")
    assert type(http).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
    assert http._endpoint == "http://127.0.0.1:4318/v1/traces"
    grpc = otlp.metric_exporter("http://127.0.0.1:4317", protocol="grpc")
    assert type(grpc).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    grpc.shutdown()


class Collected(MetricExporter):
    """An in-memory OTLP stand-in: keeps every batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.closed = True


def _tokens(batch: MetricsData) -> dict[str, int]:
    return {
        point.attributes["statek.token.type"]: point.value
        for rm in batch.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "statek.tokens"
        for point in m.data.data_points
    }


def test_otlp_push_shares_the_prometheus_reader_and_pushes_once_more_at_shutdown() -> None:
    exporter, collected = PrometheusExporter(registry=CollectorRegistry()), Collected()
    provider = MeterProvider(metric_readers=[exporter.reader])
    pusher = otlp.MetricPusher(exporter.reader, collected, interval=3600)
    cell = Instruments(provider.get_meter("statek")).cell(TOKENS, {**LABELS, "statek.token.type": "input"})
    cell.value = 5
    assert pusher.push()
    cell.value = 8
    assert b"statek_tokens_total" in generate_latest(exporter.registry)  # a scrape in between changes nothing
    pusher.shutdown(timeout=1)
    # The new series goes out at zero first (its first increment stays visible), then its values;
    # the scrape in between has a zero of its own and does not take the pusher's.
    assert [_tokens(b)["input"] for b in collected.batches] == [0, 8] and collected.closed


def test_otlp_push_holds_a_new_series_at_zero_for_the_debut_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Collector keeps only the latest push until Prometheus scrapes it: the zero must outlast a
    scrape interval, so pushes keep a new series at zero for STATEK_OTLP_DEBUT_HOLD_SECONDS."""
    import time

    monkeypatch.setenv(otlp.DEBUT_HOLD_ENV, "0.5")
    exporter, collected = PrometheusExporter(registry=CollectorRegistry()), Collected()
    provider = MeterProvider(metric_readers=[exporter.reader])
    pusher = otlp.MetricPusher(exporter.reader, collected, interval=3600)
    cell = Instruments(provider.get_meter("statek")).cell(TOKENS, {**LABELS, "statek.token.type": "input"})
    cell.value = 5
    assert pusher.push() and pusher.push()  # two pushes within the hold: both zero
    time.sleep(0.6)
    assert pusher.push()
    assert [_tokens(b)["input"] for b in collected.batches] == [0, 0, 5]
    pusher.shutdown(timeout=1)


# ----------------------------------------------------------------------------- instrument / shutdown
@pytest.fixture
def clean_instrumentation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in otlp.ENDPOINT_ENVS:
        monkeypatch.delenv(name, raising=False)
    shutdown()
    yield
    shutdown()


async def test_instrument_serves_metrics_and_is_idempotent(prices: Any, clean_instrumentation: None) -> None:
    registry = CollectorRegistry()
    first = instrument("unit-test", prometheus_port=0, registry=registry)
    assert instrument("unit-test", prometheus_port=0, registry=registry) is first is active_instrumentation()
    with pytest.raises(ConfigurationError):
        instrument("another-name", prometheus_port=0, registry=registry)

    await call(scripted_api(), "in=41 out=1")
    url = f"http://127.0.0.1:{first.prometheus_port}/metrics"
    async with httpx.AsyncClient() as client:
        debut = (await client.get(url)).text
        text = (await client.get(url)).text
    series = 'statek_tokens_total{gen_ai_provider_name="scripted",gen_ai_request_model="priced",statek_token_type="input"}'
    assert f"{series} 0.0" in debut
    assert (
        'statek_tokens_total{gen_ai_provider_name="scripted",gen_ai_request_model="priced",statek_token_type="input"}'
        " 41.0" in text
    )
    assert 'service_name="unit-test"' in text

    shutdown()
    assert active_instrumentation() is None and first.closed
    assert generate_latest(registry) == b""  # the collector left the registry
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)
    shutdown()  # twice is fine
    again = instrument("another-name", registry=registry)
    assert again is not first and again.prometheus_port is None


async def test_a_down_collector_never_fails_a_call(prices: Any, clean_instrumentation: None) -> None:
    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    instrumentation = instrument("down", otlp_endpoint=down, otlp_timeout=1, registry=CollectorRegistry())
    assert instrumentation.owns_tracer_provider and instrumentation.metric_pusher is not None
    api = scripted_api()
    responses = [await call(api, f"in={n} out=1") for n in range(1, 51)]
    assert [r.stats.input_tokens for r in responses] == list(range(1, 51))
    assert instrumentation.metric_pusher.push(timeout_millis=500) is False  # the export failed, quietly
    shutdown(timeout=1)


def test_statek_aggregates_histograms_only_on_providers_known_to_be_plain(
    clean_instrumentation: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """statek.instrument's own provider (its readers, no views) aggregates between collections; an
    application's provider, which may have views, records each measurement; an exponential-histogram
    preference for OTLP makes statek's own provider record each measurement too."""
    from statek.telemetry import telemetry_config

    instrument("plain", registry=CollectorRegistry())
    assert telemetry_config().instruments.aggregating
    shutdown()
    app_provider = MeterProvider(metric_readers=[])
    instrument(meter_provider=app_provider)
    assert not telemetry_config().instruments.aggregating
    shutdown()
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "base2_exponential_bucket_histogram"
    )
    instrument("exponential", registry=CollectorRegistry())
    assert not telemetry_config().instruments.aggregating
