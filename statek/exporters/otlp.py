"""OTLP push export of traces and metrics, configured like any OpenTelemetry application.

Everything left unset comes from the standard environment variables, read by the OpenTelemetry
exporters themselves: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the ``_TRACES_`` / ``_METRICS_``
variants), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_TIMEOUT``,
``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or ``grpc`` when
``opentelemetry-exporter-otlp-proto-grpc`` is installed: ``pip install statek[grpc]``),
``OTEL_BSP_*`` for span batching and ``OTEL_METRIC_EXPORT_INTERVAL`` for metrics.

A collector that is down or slow never reaches a provider call: spans wait in the
``BatchSpanProcessor``'s bounded queue (dropped when full, never blocking) and are sent from its
worker thread; metrics are sent from the ``PeriodicExportingMetricReader``'s thread. Each export
gives up after the exporter timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from ..exceptions import ConfigurationError
from ..secrets import redact_url
from .debut import SeriesDebut
from .prometheus import PullMetricReader

__all__ = [
    "ENDPOINT_ENVS",
    "MetricPusher",
    "batch_span_processor",
    "check_endpoint",
    "final_attempt",
    "metric_exporter",
    "otlp_configured",
    "periodic_metric_reader",
    "protocol_for",
    "span_exporter",
    "wants_cumulative",
]

_log = logging.getLogger("statek.telemetry")

ENDPOINT_ENVS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
"""Any of these set means "export over OTLP" even without ``otlp_endpoint=``."""

_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics"}


def otlp_configured(endpoint: str | None = None) -> bool:
    """Whether OTLP export is asked for: an explicit endpoint or an endpoint variable."""
    return bool(endpoint) or any(os.environ.get(name) for name in ENDPOINT_ENVS)


def protocol_for(signal: str, protocol: str | None = None) -> str:
    """``http/protobuf`` or ``grpc`` for ``signal`` (traces or metrics): argument, then
    ``OTEL_EXPORTER_OTLP_{SIGNAL}_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``."""
    chosen = (
        (
            protocol
            or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        .strip()
        .lower()
    )
    if chosen not in ("http/protobuf", "grpc"):
        raise ConfigurationError(f"OTLP protocol {chosen!r} is not supported: use 'http/protobuf' or 'grpc'")
    return chosen


def _endpoint(signal: str, endpoint: str | None, protocol: str) -> str | None:
    if endpoint is None or protocol == "grpc":
        return endpoint
    return endpoint.rstrip("/") + _PATHS[signal]


def span_exporter(
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> SpanExporter:
    """An OTLP span exporter. ``endpoint`` is the collector's base URL (``http://host:4318``;
    ``/v1/traces`` is appended for HTTP); ``None`` leaves it to the environment."""
    chosen = protocol_for("traces", protocol)
    url = _endpoint("traces", endpoint, chosen)
    if chosen == "grpc":
        with _grpc_extra():
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )

        return GrpcSpanExporter(endpoint=url, headers=dict(headers) if headers else None, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=url, headers=dict(headers) if headers else None, timeout=timeout)


def metric_exporter(
    endpoint: str | None = None,
    *,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> MetricExporter:
    """An OTLP metric exporter; arguments as for :func:`span_exporter` (``/v1/metrics`` for HTTP)."""
    chosen = protocol_for("metrics", protocol)
    url = _endpoint("metrics", endpoint, chosen)
    if chosen == "grpc":
        with _grpc_extra():
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )

        return GrpcMetricExporter(endpoint=url, headers=dict(headers) if headers else None, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=url, headers=dict(headers) if headers else None, timeout=timeout)


GRPC_EXTRA_MISSING = (
    'OTLP over gRPC (OTEL_EXPORTER_OTLP_PROTOCOL=grpc) needs the grpc extra: pip install "statek[grpc]"'
)


@contextlib.contextmanager
def _grpc_extra() -> Iterator[None]:
    """Turn a missing ``opentelemetry-exporter-otlp-proto-grpc`` into one line naming the extra."""
    try:
        yield
    except ImportError:
        raise ConfigurationError(GRPC_EXTRA_MISSING) from None


def batch_span_processor(exporter: SpanExporter, *, max_queue_size: int | None = None) -> BatchSpanProcessor:
    """Batching with a bounded queue (``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048): a span that does
    not fit is dropped, so a stuck collector costs memory up to the bound and never a wait."""
    return BatchSpanProcessor(exporter, max_queue_size=max_queue_size)


def periodic_metric_reader(
    exporter: MetricExporter, *, interval: float | None = None
) -> PeriodicExportingMetricReader:
    """Push metrics every ``interval`` seconds (default ``OTEL_METRIC_EXPORT_INTERVAL``, 60 s)."""
    millis = interval * 1000 if interval is not None else None
    return PeriodicExportingMetricReader(exporter, export_interval_millis=millis)


def exponential_histograms() -> bool:
    """Whether ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`` asks the OTLP exporter
    for exponential histograms (then statek's histograms are recorded measurement by measurement)."""
    raw = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "")
    return raw.strip().lower() == "base2_exponential_bucket_histogram"


def wants_cumulative() -> bool:
    """Whether OTLP metrics go out cumulative (the default of
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``), so Prometheus' reader can serve both."""
    preference = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "cumulative")
    return preference.strip().lower() == "cumulative"


class MetricPusher:
    """Pushes what a :class:`PullMetricReader` collects to a ``MetricExporter`` every ``interval`` seconds.

    One reader for both exporters: the SDK aggregates every measurement once per reader, so
    Prometheus and OTLP sharing one cumulative reader halves the cost of each histogram record
    compared with a second ``PeriodicExportingMetricReader``. ``interval`` defaults to
    ``OTEL_METRIC_EXPORT_INTERVAL`` (ms, 60 000) and each export's timeout to
    ``OTEL_METRIC_EXPORT_TIMEOUT`` (ms, 30 000). Export errors are logged; the thread goes on.
    """

    def __init__(
        self, reader: PullMetricReader, exporter: MetricExporter, *, interval: float | None = None
    ) -> None:
        self.reader = reader
        self.exporter = exporter
        self.interval = (
            interval if interval is not None else _env_millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000) / 1000
        )
        self.timeout_millis = _env_millis("OTEL_METRIC_EXPORT_TIMEOUT", 30_000)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._debut = SeriesDebut(hold=debut_hold())
        self._thread = threading.Thread(target=self._run, name="statek-otlp-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.push()

    def push(self, timeout_millis: float | None = None, *, last: bool = False) -> bool:
        """Collect now and export; ``True`` when the exporter accepted the batch. New series go out
        at zero first, for :func:`debut_hold` seconds (:mod:`.debut`), except in the ``last`` push
        before shutdown."""
        with self._lock:
            try:
                data = self.reader.read()
                if data is None:
                    return True
                data = self._debut.apply(data, hold_back=not last)
                result = self.exporter.export(data, timeout_millis=timeout_millis or self.timeout_millis)
                return getattr(result, "name", "") == "SUCCESS"
            except Exception:  # noqa: BLE001 - a broken collector must not kill the thread
                _log.exception("statek could not export metrics over OTLP")
                return False

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread, push one last time (at most ``timeout`` seconds), close the exporter."""
        self._stop.set()
        self._thread.join(timeout)
        final_attempt(self.exporter, timeout)
        self.push(timeout * 1000, last=True)
        self.exporter.shutdown(timeout_millis=timeout * 1000)


DEBUT_HOLD_ENV = "STATEK_OTLP_DEBUT_HOLD_SECONDS"
DEFAULT_DEBUT_HOLD = 60.0
"""Seconds a new series is pushed at zero before its value. What reads the pushes decides whether
the zero is seen: Prometheus' OTLP receiver stores every push (0 would do); a Collector keeps only
the latest value until Prometheus scrapes it, so the zero must outlast one scrape interval (the
Prometheus default is 1 minute)."""


def debut_hold() -> float:
    """:data:`DEBUT_HOLD_ENV` in seconds (default :data:`DEFAULT_DEBUT_HOLD`; invalid values logged)."""
    raw = os.environ.get(DEBUT_HOLD_ENV, "").strip()
    if not raw:
        return DEFAULT_DEBUT_HOLD
    try:
        value = float(raw)
        if not value >= 0:
            raise ValueError(raw)
    except ValueError:
        _log.warning(
            "statek: %s=%r is not a number of seconds >= 0; using %s", DEBUT_HOLD_ENV, raw, DEFAULT_DEBUT_HOLD
        )
        return DEFAULT_DEBUT_HOLD
    return value


def _env_millis(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def final_attempt(exporter: object, timeout: float) -> None:
    """Make an OTLP exporter's exports from now on a single attempt of at most ``timeout`` seconds.

    For shutdown: a collector that is down will not come back within the seconds shutdown may take,
    and the SDK exporters retry with back-off up to their own timeout (10 s) before
    ``BatchSpanProcessor.shutdown`` returns; a stuck one holds each attempt that long. The SDK
    exposes no public switch: its exporters check a shutdown event (``_shutdown_event`` on their HTTP
    client, ``_shutdown_in_progress`` on gRPC and older ones) before each back-off, which does not
    refuse the export itself, and read their deadline from ``_timeout``. Exporters without those
    attributes are left alone (shutdown is then bounded by its own deadline only).
    """
    for holder in (exporter, getattr(exporter, "_client", None)):
        for name in ("_shutdown_event", "_shutdown_in_progress"):
            event = getattr(holder, name, None)
            if isinstance(event, threading.Event):
                event.set()
        current = getattr(holder, "_timeout", None)
        if isinstance(current, (int, float)) and not isinstance(current, bool) and current > timeout:
            holder._timeout = timeout  # type: ignore[union-attr]


def check_endpoint(endpoint: str, protocol: str | None = None) -> None:
    """Raise :class:`ConfigurationError` unless ``endpoint`` is a collector base URL:
    ``http(s)://host[:port][/path]`` (gRPC also takes ``host:port``)."""
    grpc = protocol_for("traces", protocol) == "grpc"
    candidate = endpoint if "://" in endpoint or not grpc else f"http://{endpoint}"
    try:
        parts = urlsplit(candidate)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"OTLP endpoint {redact_url(endpoint)!r} is not a URL: give the collector's base URL, "
            "e.g. http://127.0.0.1:4318"
        )
