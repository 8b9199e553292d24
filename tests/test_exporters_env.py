"""``statek.instrument`` honours the standard ``OTEL_*`` variables, one test each, and plays well with
an application's own telemetry (private registry, one ``target_info``, the application's providers).

OTLP traffic goes to a loopback receiver that records each request's path and headers.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from test_telemetry_support import call, prices_fixture, scripted_api  # noqa: F401 - fixtures

from statek.exceptions import ConfigurationError
from statek.exporters import instrument, shutdown
from statek.exporters.environment import export_plan
from statek.exporters.prometheus import DEFAULT_PORT

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_PROMETHEUS_HOST",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_BSP_SCHEDULE_DELAY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    shutdown()
    yield
    shutdown(timeout=1)


class Receiver:
    """A loopback OTLP/HTTP receiver: answers 200 to everything, keeps (path, headers) per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> set[str]:
        return {path for path, _ in self.requests}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


# ----------------------------------------------------------------------------- which exporters run
async def test_sdk_disabled_exports_nothing_but_calls_are_still_priced(
    prices: Any, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    active = instrument("disabled", prometheus_port=0)
    assert active.disabled and active.prometheus is None and active.prometheus_port is None
    response = await call(scripted_api(), "in=10 out=2")
    assert response.detail.priced_cost is not None
    shutdown(timeout=1)
    assert receiver.requests == []


async def test_traces_exporter_none_keeps_metrics_on_otlp(
    prices: Any, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    active = instrument("no-traces", otlp_endpoint=receiver.url, registry=CollectorRegistry())
    assert not active.owns_tracer_provider and active.metric_pusher is not None
    await call(scripted_api(), "in=10 out=2")
    shutdown(timeout=2)
    assert receiver.paths() == {"/v1/metrics"}


async def test_metrics_exporter_none_keeps_traces_on_otlp(
    prices: Any, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    active = instrument("no-metrics", otlp_endpoint=receiver.url, prometheus_port=0)
    assert active.prometheus is None and active.prometheus_port is None and active.metric_pusher is None
    await call(scripted_api(), "in=10 out=2")
    shutdown(timeout=2)
    assert receiver.paths() == {"/v1/traces"}


async def test_metrics_exporter_prometheus_serves_on_the_prometheus_host_and_port(
    prices: Any, monkeypatch: pytest.MonkeyPatch, receiver: Receiver, unused_tcp_port: int
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(unused_tcp_port))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)  # traces only: metrics said prometheus
    active = instrument("prom")
    assert active.prometheus_port == unused_tcp_port and active.metric_pusher is None
    await call(scripted_api(), "in=10 out=2")
    url = f"http://127.0.0.1:{unused_tcp_port}/metrics"
    async with httpx.AsyncClient() as client:
        await client.get(url)  # the first scrape shows the new series at zero
        assert 'statek_token_type="input"} 10.0' in (await client.get(url)).text
    shutdown(timeout=2)
    assert receiver.paths() == {"/v1/traces"}


def test_metrics_exporter_prometheus_without_a_port_uses_statek_default() -> None:
    plan = export_plan(
        otlp_endpoint=None,
        prometheus_port=None,
        prometheus_host=None,
        env={"OTEL_METRICS_EXPORTER": "prometheus"},
    )
    assert plan.prometheus and plan.prometheus_port == DEFAULT_PORT != 9464
    assert plan.prometheus_host == "127.0.0.1" and not plan.metrics_otlp and not plan.traces_otlp


def test_metrics_exporter_otlp_alone_has_no_prometheus() -> None:
    plan = export_plan(
        otlp_endpoint=None, prometheus_port=9999, prometheus_host=None, env={"OTEL_METRICS_EXPORTER": "otlp"}
    )
    assert plan.metrics_otlp and not plan.prometheus and plan.prometheus_port is None


async def test_a_traces_endpoint_alone_sends_no_metrics_anywhere(
    prices: Any, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/v1/traces")
    active = instrument("traces-only", registry=CollectorRegistry())
    assert active.owns_tracer_provider and active.metric_pusher is None
    await call(scripted_api(), "in=10 out=2")
    shutdown(timeout=2)
    assert receiver.paths() == {"/v1/traces"}  # and nothing went to localhost:4318 (no metric exporter)


async def test_a_metrics_endpoint_alone_sends_no_traces(
    prices: Any, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.url + "/v1/metrics")
    active = instrument("metrics-only", registry=CollectorRegistry())
    assert not active.owns_tracer_provider and active.metric_pusher is not None
    await call(scripted_api(), "in=10 out=2")
    shutdown(timeout=2)
    assert receiver.paths() == {"/v1/metrics"}


async def test_headers_variable_reaches_the_collector(
    prices: Any, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,authorization=Bearer%20t0k")
    instrument("headers", otlp_endpoint=receiver.url, registry=CollectorRegistry())
    await call(scripted_api(), "in=10 out=2")
    shutdown(timeout=2)
    assert receiver.paths() == {"/v1/traces", "/v1/metrics"}
    for _, headers in receiver.requests:
        assert headers["x-tenant"] == "acme" and headers["authorization"] == "Bearer t0k"


def test_protocol_variable_picks_grpc_per_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    from statek.exporters import otlp

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf")
    assert type(otlp.span_exporter("http://127.0.0.1:4317")).__module__.startswith(
        "opentelemetry.exporter.otlp.proto.grpc"
    )
    assert type(otlp.metric_exporter("http://127.0.0.1:4318")).__module__.startswith(
        "opentelemetry.exporter.otlp.proto.http"
    )


def test_missing_grpc_exporter_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # As under `opentelemetry-instrument` (which sets the grpc protocol) without the grpc extra installed.
    for module in (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    ):
        monkeypatch.setitem(sys.modules, module, None)  # the import now raises ImportError
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError) as raised:
        instrument("grpc", otlp_endpoint="http://127.0.0.1:4317", registry=CollectorRegistry())
    message = str(raised.value)
    assert "\n" not in message and 'pip install "statek[grpc]"' in message
    assert generate_latest(REGISTRY).find(b"statek_") == -1  # nothing half set up was left behind


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER='zipkin'"),
        ("OTEL_METRICS_EXPORTER", "none,otlp", "'none' cannot be combined"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "ninety", "OTEL_EXPORTER_PROMETHEUS_PORT='ninety' is not a port"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "from 0 to 65535"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        instrument("bad")
    assert needle in str(raised.value) and "\n" not in str(raised.value)


# ----------------------------------------------------------------------------- what the SDK reads itself
async def test_service_name_and_resource_attributes_come_from_the_environment(
    prices: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=billing")
    active = instrument(registry=CollectorRegistry())
    assert active.prometheus is not None
    await call(scripted_api(), "in=10 out=2")  # target_info comes with the first data
    text = generate_latest(active.prometheus.registry).decode()
    assert 'service_name="from-env"' in text and 'deployment_environment="prod"' in text
    shutdown()
    again = instrument("from-argument", registry=CollectorRegistry())  # the argument wins
    assert again.prometheus is not None
    await call(scripted_api(), "in=10 out=2")
    assert 'service_name="from-argument"' in generate_latest(again.prometheus.registry).decode()


@pytest.mark.parametrize(
    ("sampler", "arg", "description"),
    [("always_off", None, "AlwaysOffSampler"), ("traceidratio", "0.25", "TraceIdRatioBased{0.25}")],
)
def test_sampler_variables_configure_statek_tracer_provider(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, sampler: str, arg: str | None, description: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    active = instrument("sampled", otlp_endpoint=receiver.url, registry=CollectorRegistry())
    assert active.owns_tracer_provider
    assert active.tracer_provider.sampler.get_description() == description  # type: ignore[attr-defined]


def test_interval_variables_reach_the_metric_pusher_and_span_batching(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1234")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "777")
    active = instrument("intervals", otlp_endpoint=receiver.url, registry=CollectorRegistry())
    assert active.metric_pusher is not None and active.metric_pusher.interval == 1.234
    processors = active.tracer_provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    assert [_schedule_delay(p) for p in processors] == [0.777]


def _schedule_delay(processor: Any) -> float:
    """A BatchSpanProcessor's delay in seconds: SDK 1.31+ keeps it in a shared batch processor,
    1.30 (the lowest pyproject.toml allows) on the processor itself."""
    inner = getattr(processor, "_batch_processor", None)
    if inner is not None:
        return float(inner._schedule_delay)
    return float(processor.schedule_delay_millis) / 1000


# ----------------------------------------------------------------------------- living with the app's telemetry
async def test_serving_a_port_uses_a_private_registry(prices: Any) -> None:
    active = instrument("private", prometheus_port=0)
    assert active.prometheus is not None and active.prometheus.registry is not REGISTRY
    await call(scripted_api(), "in=10 out=2")
    assert b"statek_" not in generate_latest(REGISTRY) and b'service_name="private"' not in generate_latest(
        REGISTRY
    )
    async with httpx.AsyncClient() as client:
        served = await client.get(f"http://127.0.0.1:{active.prometheus_port}/metrics")
    assert b'service_name="private"' in served.content


def test_another_target_info_producer_gets_a_warning_and_a_single_target_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The application's own OpenTelemetry exporter: on a registry of its own where the exporter
    # takes one (newer releases), else (0.51b0, which the lowest allowed SDK, 1.30, pairs with)
    # on the global registry, which its shutdown leaves as it found it.
    if "registry" in inspect.signature(PrometheusMetricReader).parameters:
        registry = CollectorRegistry()
        app_reader = PrometheusMetricReader(registry=registry)
    else:
        registry, app_reader = REGISTRY, PrometheusMetricReader()
    app_provider = MeterProvider(metric_readers=[app_reader], resource=Resource({"service.name": "app"}))
    app_provider.get_meter("app").create_counter("app.jobs").add(1)
    with caplog.at_level("WARNING", logger="statek.telemetry"):
        active = instrument("statek-side", registry=registry)
    assert "already serves target_info" in caplog.text
    text = generate_latest(registry).decode()
    assert text.count("# TYPE target_info") == 1 and 'service_name="app"' in text
    assert active.prometheus is not None
    app_provider.shutdown()


async def test_the_application_meter_provider_is_reused_not_duplicated(prices: Any) -> None:
    app_reader = InMemoryMetricReader()
    app_provider = MeterProvider(metric_readers=[app_reader])
    active = instrument(meter_provider=app_provider)
    assert active.meter_provider is app_provider and active.prometheus is None
    await call(scripted_api(), "in=10 out=2")
    data = app_reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"statek.tokens", "statek.cost.usd", "gen_ai.client.operation.duration"} <= names
    shutdown()
    assert app_reader.get_metrics_data() is not None  # statek did not shut the application's provider down


def test_global_sdk_providers_are_reused_by_a_bare_instrument_call() -> None:
    # In a fresh interpreter: OpenTelemetry's global providers can be set only once per process.
    script = textwrap.dedent(
        """
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from prometheus_client import REGISTRY, generate_latest
        import statek

        meters, tracers = MeterProvider(metric_readers=[InMemoryMetricReader()]), TracerProvider()
        metrics.set_meter_provider(meters)
        trace.set_tracer_provider(tracers)
        active = statek.instrument()
        assert active.reused and active.prometheus is None, active
        assert active.meter_provider is meters and active.tracer_provider is tracers
        assert b"statek" not in generate_latest(REGISTRY)
        statek.shutdown()
        print("reused")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "reused", result.stderr
