"""Which exporters :func:`statek.instrument` starts: its arguments, then the standard ``OTEL_*`` variables.

The variables read here decide *which* exporters run; the OpenTelemetry SDK and exporters read the
rest themselves (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER[_ARG]``,
``OTEL_EXPORTER_OTLP[_{SIGNAL}]_{ENDPOINT,HEADERS,TIMEOUT,PROTOCOL}``, ``OTEL_BSP_*``,
``OTEL_METRIC_EXPORT_INTERVAL`` / ``_TIMEOUT``). Decided here:

- ``OTEL_SDK_DISABLED=true``: nothing is exported (statek still prices calls and fills job usage).
- ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``; comma-separated): spans go over OTLP
  only when ``otlp`` is listed *and* an endpoint is known (``otlp_endpoint=``,
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), or when the variable
  names ``otlp`` explicitly (then the exporter's default endpoint, ``localhost:4318``, applies).
- ``OTEL_METRICS_EXPORTER`` (``otlp``, ``prometheus``, ``console``, ``none``): the same rule for OTLP
  metrics with the ``_METRICS_`` endpoint, so a traces-only endpoint never sends metrics to
  ``localhost:4318``. When the variable is set, Prometheus runs only if it lists ``prometheus``.
- ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT``: where ``/metrics`` is served when no
  ``prometheus_port=`` is given (setting the port is asking for the server).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..exceptions import ConfigurationError
from .prometheus import DEFAULT_PORT

__all__ = ["DEFAULT_HOST", "ExportPlan", "export_plan", "sdk_disabled"]

DEFAULT_HOST = "127.0.0.1"
"""Where ``/metrics`` listens by default: loopback only (the specification's default is ``localhost``)."""

_TRACE_EXPORTERS = frozenset({"otlp", "console", "none"})
_METRIC_EXPORTERS = frozenset({"otlp", "prometheus", "console", "none"})
_TRUE = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What to start. ``prometheus_port`` ``None`` = register the collector but serve no port."""

    traces_otlp: bool
    traces_console: bool
    metrics_otlp: bool
    metrics_console: bool
    prometheus: bool
    prometheus_port: int | None
    prometheus_host: str


def sdk_disabled(env: Mapping[str, str] | None = None) -> bool:
    """``OTEL_SDK_DISABLED`` is true (case-insensitive ``true``, as the specification says; ``1`` too)."""
    env = os.environ if env is None else env
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE


def export_plan(
    *,
    otlp_endpoint: str | None,
    prometheus_port: int | None,
    prometheus_host: str | None,
    env: Mapping[str, str] | None = None,
) -> ExportPlan:
    """Combine :func:`statek.instrument`'s arguments with the environment; bad values raise a
    one-line :class:`~statek.exceptions.ConfigurationError` naming the variable."""
    env = os.environ if env is None else env
    traces = _exporters(env, "OTEL_TRACES_EXPORTER", _TRACE_EXPORTERS)
    metrics = _exporters(env, "OTEL_METRICS_EXPORTER", _METRIC_EXPORTERS)
    base = bool(otlp_endpoint) or bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    traces_otlp = (
        traces is not None
        and "otlp" in traces
        or (traces is None and (base or bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))))
    )
    metrics_otlp = (
        metrics is not None
        and "otlp" in metrics
        or (metrics is None and (base or bool(env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))))
    )
    port = prometheus_port if prometheus_port is not None else _port(env)
    host = prometheus_host or env.get("OTEL_EXPORTER_PROMETHEUS_HOST") or DEFAULT_HOST
    prometheus = metrics is None or "prometheus" in metrics
    if metrics is not None and "prometheus" in metrics and port is None:
        port = DEFAULT_PORT  # asked for the Prometheus exporter: serve it, on statek's default port
    return ExportPlan(
        traces_otlp=traces_otlp,
        traces_console=traces is not None and "console" in traces,
        metrics_otlp=metrics_otlp,
        metrics_console=metrics is not None and "console" in metrics,
        prometheus=prometheus,
        prometheus_port=port if prometheus else None,
        prometheus_host=host,
    )


def _exporters(env: Mapping[str, str], name: str, allowed: frozenset[str]) -> frozenset[str] | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    chosen = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    unknown = sorted(chosen - allowed)
    if unknown:
        raise ConfigurationError(
            f"{name}={raw!r}: statek does not support {', '.join(unknown)}; use a comma-separated "
            f"subset of {', '.join(sorted(allowed))}"
        )
    if "none" in chosen and len(chosen) > 1:
        raise ConfigurationError(f"{name}={raw!r}: 'none' cannot be combined with other exporters")
    return chosen


def _port(env: Mapping[str, str]) -> int | None:
    raw = env.get("OTEL_EXPORTER_PROMETHEUS_PORT")
    if raw is None or not raw.strip():
        return None
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigurationError(
            f"OTEL_EXPORTER_PROMETHEUS_PORT={raw!r} is not a port: use a number from 0 to 65535"
        )
    return port
