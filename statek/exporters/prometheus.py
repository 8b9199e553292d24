"""Prometheus pull export: ``/metrics`` from the same OpenTelemetry ``MeterProvider`` that feeds OTLP.

Three layers, as in ``prometheus_client``:

- collection: :class:`PullMetricReader`, an SDK ``MetricReader`` that collects on demand
  (cumulative), and :class:`OTelCollector`, a ``prometheus_client`` collector that turns what it
  read into metric families;
- registry: a ``prometheus_client.CollectorRegistry`` (``registry=``, default the global one);
- exposition: ``prometheus_client`` itself (text format, or OpenMetrics when the scraper asks for
  it in ``Accept``), served by :meth:`PrometheusExporter.start_http_server`, :meth:`~PrometheusExporter.wsgi_app`
  or :meth:`~PrometheusExporter.asgi_app`.

Why not ``opentelemetry-exporter-prometheus``: it drops exemplars and shows a new series at its
first value (so ``increase()`` misses it). The names agree: the catalogue's names and units are
chosen so that OpenTelemetry's translation (that exporter, the Collector, Prometheus' OTLP receiver)
gives exactly the pinned series names served here (``tests/e2e/test_dashboards_e2e.py`` runs every
dashboard query on both). Exemplars (``trace_id``, ``span_id``) are served on the samples that carry
them when the scraper asks for OpenMetrics; every new series is shown at zero once first
(:mod:`.debut`). Other instruments on the same provider follow the OpenTelemetry-to-Prometheus rules
(sanitised name, unit suffix, ``_total``).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from ..instruments import by_name
from .debut import SeriesDebut

__all__ = ["DEFAULT_PORT", "OTelCollector", "PrometheusExporter", "PullMetricReader", "has_target_info"]

DEFAULT_PORT = 9469
"""statek's default ``/metrics`` port. Not 9464: that is OpenTelemetry's Prometheus exporter's default
(``OTEL_EXPORTER_PROMETHEUS_PORT``), and an application running it beside statek would collide."""

_log = logging.getLogger("statek.telemetry")

_CUMULATIVE: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}


class PullMetricReader(MetricReader):
    """A ``MetricReader`` that collects only when asked (:meth:`read`), with cumulative temporality."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality=_CUMULATIVE)
        self._lock = threading.Lock()
        self._received: MetricsData | None = None

    def read(self) -> MetricsData | None:
        """Collect now and return what the provider produced (``None`` before it is attached)."""
        with self._lock:
            self._received = None
            self.collect()
            data, self._received = self._received, None
            return data

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._received = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush: a pull reader holds no data between scrapes."""


class OTelCollector(Collector):
    """Translates a :class:`PullMetricReader`'s data into Prometheus metric families on every scrape.

    ``target_info=True`` adds the OpenTelemetry ``target_info`` family with the resource attributes
    (``service_name``, ...). With ``debut=True`` each new series is served at zero on its first
    scrape (:mod:`.debut`); ``debut=False`` serves values as read (for a consumer that is not a
    scraper, such as the multiprocess mirror, whose files must always hold the real totals).
    """

    def __init__(self, reader: PullMetricReader, *, target_info: bool = True, debut: bool = True) -> None:
        self._reader = reader
        self._target_info = target_info
        self._debut = SeriesDebut() if debut else None

    def describe(self) -> list[Metric]:
        # No names up front: the registry then skips its duplicate-name check instead of collecting.
        return []

    def collect(self) -> Iterator[Metric]:
        data = self._reader.read()
        if data is None:
            return
        if self._debut is not None:
            data = self._debut.apply(data)
        families: dict[str, Metric] = {}
        for resource_metrics in data.resource_metrics:
            if self._target_info and "target" not in families and resource_metrics.resource.attributes:
                info = families["target"] = Metric("target", "Target metadata", "info")
                info.add_sample("target_info", _labels(resource_metrics.resource.attributes), 1.0)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    _translate(metric, families)
        yield from families.values()


def _translate(metric: Any, families: dict[str, Metric]) -> None:
    spec = by_name(metric.name)
    point_data = metric.data
    if isinstance(point_data, Sum):
        kind = "counter" if point_data.is_monotonic else "gauge"
    elif isinstance(point_data, Gauge):
        kind = "gauge"
    elif isinstance(point_data, HistogramData):
        kind = "histogram"
    else:  # exponential histograms have no classic Prometheus form
        return
    if spec is not None:
        name, unit = spec.prometheus_name, spec.prometheus_unit
    else:
        name, unit = _generic_name(metric.name, metric.unit or "")
    family = families.get(name)
    if family is None:
        family = families[name] = Metric(name, metric.description or "", kind, unit)
    elif family.type != kind:
        return
    name = family.name  # with the unit suffix, if the unit asked for one
    for point in point_data.data_points:
        labels = _labels(point.attributes)
        exemplars = getattr(point, "exemplars", None) or ()
        if kind == "counter":
            family.add_sample(
                name + "_total", labels, point.value, exemplar=_exemplar(exemplars[-1]) if exemplars else None
            )
        elif kind == "gauge":
            family.add_sample(name, labels, point.value)
        else:
            _histogram_samples(family, name, labels, point, exemplars)


def _histogram_samples(family: Metric, name: str, labels: dict[str, str], point: Any, exemplars: Any) -> None:
    bounds = list(point.explicit_bounds)
    by_bucket: dict[int, Exemplar] = {}
    for exemplar in exemplars:
        index = next((i for i, bound in enumerate(bounds) if exemplar.value <= bound), len(bounds))
        converted = _exemplar(exemplar)
        if converted is not None:
            by_bucket[index] = converted
    cumulative = 0
    for index, count in enumerate(point.bucket_counts):
        cumulative += count
        le = floatToGoString(bounds[index]) if index < len(bounds) else "+Inf"
        family.add_sample(name + "_bucket", {**labels, "le": le}, cumulative, exemplar=by_bucket.get(index))
    family.add_sample(name + "_count", labels, point.count)
    family.add_sample(name + "_sum", labels, point.sum)


def _exemplar(exemplar: Any) -> Exemplar | None:
    if not exemplar.trace_id:
        return None
    labels = {"trace_id": f"{exemplar.trace_id:032x}", "span_id": f"{exemplar.span_id:016x}"}
    return Exemplar(labels, exemplar.value, exemplar.time_unix_nano / 1e9)


_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]+")
_UNIT_WORDS = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "1": "",
    "%": "percent",
}


def _generic_name(name: str, unit: str) -> tuple[str, str]:
    """OpenTelemetry-to-Prometheus naming for an instrument outside statek's catalogue."""
    name = _INVALID_NAME.sub("_", name)
    if name[:1].isdigit():
        name = "_" + name
    unit = re.sub(r"\{.*?\}", "", unit)
    unit = _UNIT_WORDS.get(unit, _INVALID_LABEL.sub("_", unit).strip("_").lower())
    return name, unit


def _labels(attributes: Any) -> dict[str, str]:
    labels = {}
    for key, value in (attributes or {}).items():
        label = _INVALID_LABEL.sub("_", key)
        if label[:1].isdigit():
            label = "_" + label
        labels[label] = value if isinstance(value, str) else json.dumps(value, default=str)
    return labels


class PrometheusExporter:
    """Prometheus exposition of one ``MeterProvider``: add :attr:`reader` to the provider's readers.

    ``registry`` defaults to ``prometheus_client``'s global registry; tests pass a fresh
    ``CollectorRegistry()``. Serve it with :meth:`start_http_server` (a standalone ``/metrics``
    server), or mount :meth:`wsgi_app` / :meth:`asgi_app` in an existing web application.

    ``target_info=None`` (the default) adds ``target_info`` unless the registry already has a
    producer of it (an OpenTelemetry Prometheus exporter, another statek exporter): two in one
    exposition are invalid (``promtool check metrics``), so statek then leaves it out and warns.
    """

    def __init__(self, *, registry: CollectorRegistry = REGISTRY, target_info: bool | None = None) -> None:
        self.registry = registry
        self.reader = PullMetricReader()
        if target_info is None:
            target_info = not has_target_info(registry)
            if not target_info:
                _log.warning(
                    "statek: this Prometheus registry already serves target_info (an OpenTelemetry "
                    "Prometheus exporter?); statek's metrics join it without a second target_info. "
                    "To avoid double counting, serve statek on its own port (statek.instrument("
                    "prometheus_port=...)) or record into the application's MeterProvider instead"
                )
        self._collector = OTelCollector(self.reader, target_info=target_info)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        registry.register(self._collector)

    def start_http_server(self, port: int = DEFAULT_PORT, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; return the bound port (``port=0``
        picks a free one). One server per exporter."""
        if self._server is None:
            self._server, self._thread = _serve_metrics(port, addr, self.registry)
        return int(self._server.server_port)

    def wsgi_app(self) -> Callable[..., Iterable[bytes]]:
        """A WSGI application serving this registry (content negotiation included)."""
        return make_wsgi_app(self.registry)

    def asgi_app(self) -> Callable[..., Any]:
        """An ASGI application serving this registry (content negotiation included)."""
        return make_asgi_app(self.registry)

    def shutdown(self) -> None:
        """Stop the server (if any) and leave the registry. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.registry.unregister(self._collector)
        except KeyError:
            pass


class MetricsServer(ThreadingWSGIServer):
    """``/metrics`` over HTTP: a thread per scrape, and a listen backlog that holds a burst of scrapers.

    prometheus_client's own server listens with ``socketserver``'s default backlog of 5: under 200
    concurrent scrapes the kernel dropped the other connection attempts, and each retried SYN cost
    the scraper 1, 3, 7 s (p50 1.3 s, some timeouts). ``allow_reuse_address`` lets a restarted
    process bind its port again at once.
    """

    request_queue_size = 1024
    allow_reuse_address = True
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr: a scrape every few seconds is not news."""


def _serve_metrics(
    port: int, addr: str, registry: CollectorRegistry
) -> tuple[MetricsServer, threading.Thread]:
    """Bind ``addr:port`` (IPv4 or IPv6, as ``addr`` resolves) and serve ``registry`` from a daemon thread."""
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    server_class = type("MetricsServer", (MetricsServer,), {"address_family": family})
    server: MetricsServer = make_server(  # type: ignore[assignment]
        str(sockaddr[0]), port, make_wsgi_app(registry), server_class, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="statek-metrics-server", daemon=True)
    thread.start()
    return server, thread


def has_target_info(registry: CollectorRegistry) -> bool:
    """Whether something registered in ``registry`` already produces ``target_info``.

    Checks the registry's own target info and its collectors by type (statek's :class:`OTelCollector`
    with target info on, OpenTelemetry's Prometheus exporter's collector) without collecting them:
    collecting would run the application's metric callbacks.
    """
    if registry.get_target_info():
        return True
    with registry._lock:  # prometheus_client has no public listing of collectors
        collectors = list(registry._collector_to_names)
    for collector in collectors:
        if isinstance(collector, OTelCollector) and collector._target_info:
            return True
        module = type(collector).__module__
        if module.startswith("opentelemetry.exporter.prometheus") and not getattr(
            collector, "_disable_target_info", False
        ):
            return True
    return False
