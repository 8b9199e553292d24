"""Where the demo's telemetry goes: ``/metrics`` for Prometheus, and OTLP when an endpoint is given.

A thin wrapper over :func:`statek.exporters.instrument`, the one-call setup applications use, so the
demo exports exactly what an instrumented application would. Each demo run gets its own registry and
meter provider (fresh counters), and :meth:`DemoExporters.shutdown` flushes OTLP and stops the server.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from ..exceptions import ConfigurationError
from ..exporters import Instrumentation, instrument
from ..exporters import shutdown as shutdown_exporters
from ..exporters.otlp import otlp_configured

__all__ = ["SERVICE_NAME", "DemoExporters", "ExporterError"]

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""The standard OpenTelemetry variable; :func:`statek.exporters.instrument` reads it (and the per-signal ones)."""
SERVICE_NAME = "statek-demo"
"""``service.name`` of the demo's telemetry."""


class ExporterError(Exception):
    """The exporters could not start (port taken, bad endpoint); the message says why in one line."""


@dataclass
class DemoExporters:
    """The running exporters of one demo run. ``otlp_endpoint`` says where OTLP goes, for display:
    ``None`` when OTLP is off (no ``--otlp-endpoint``, no ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variable)."""

    metrics_url: str
    otlp_endpoint: str | None
    instrumentation: Instrumentation

    @classmethod
    def start(cls, host: str, port: int, *, otlp_endpoint: str | None = None) -> DemoExporters:
        """Serve ``/metrics`` on ``host:port`` (``0``: a free port) and export OTLP when configured."""
        try:
            active = instrument(
                SERVICE_NAME,
                prometheus_port=port,
                prometheus_host=host,
                registry=CollectorRegistry(),
                otlp_endpoint=otlp_endpoint,
            )
        except OSError as exc:
            hint = (
                "another process uses it: choose another --metrics-port, or 0 for any free port"
                if exc.errno == errno.EADDRINUSE
                else "--metrics-host must be an address of this machine, e.g. 127.0.0.1"
            )
            raise ExporterError(
                f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc} ({hint})"
            ) from None
        except ConfigurationError as exc:
            raise ExporterError(f"cannot set up telemetry export: {exc}") from None
        shown_host = f"[{host}]" if ":" in host else host
        otlp = (
            otlp_endpoint
            or os.environ.get(OTLP_ENDPOINT_ENV)
            or ("OTEL_* environment" if otlp_configured() else None)
        )
        return cls(f"http://{shown_host}:{active.prometheus_port}/metrics", otlp, active)

    def shutdown(self) -> None:
        """Flush OTLP, stop ``/metrics`` and give telemetry back to the global providers. Idempotent."""
        shutdown_exporters()
