"""Telemetry export for applications: Prometheus ``/metrics`` (pull) and OTLP (push) from one
OpenTelemetry ``MeterProvider``, set up with one call.

The library itself needs only the OpenTelemetry API (:mod:`statek.telemetry`); this package wires
the SDK for applications that want statek to do it:

- :func:`instrument` / :func:`shutdown` (:mod:`.setup`): everything at once, idempotent, flushing;
- :class:`PrometheusExporter` (:mod:`.prometheus`): a ``MetricReader`` plus ``prometheus_client``
  collector with statek's pinned series names and exemplars; standalone server, WSGI or ASGI app;
- :mod:`.otlp`: OTLP span/metric exporters (HTTP/protobuf, gRPC optional) honouring ``OTEL_*``.
"""

from __future__ import annotations

from .prometheus import OTelCollector, PrometheusExporter, PullMetricReader
from .setup import Instrumentation, active_instrumentation, instrument, shutdown

__all__ = [
    "Instrumentation",
    "OTelCollector",
    "PrometheusExporter",
    "PullMetricReader",
    "active_instrumentation",
    "instrument",
    "shutdown",
]
