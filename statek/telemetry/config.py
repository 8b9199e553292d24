"""Where statek's telemetry goes and what it may contain: :func:`configure_telemetry`.

Only the OpenTelemetry *API* is used: by default the global tracer and meter providers;
:func:`configure_telemetry` injects others (tests inject SDK providers with in-memory exporters,
:func:`statek.instrument` its own).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Tracer

from .. import instruments as inst
from ..exceptions import ConfigurationError
from ..settings import CAPTURE_CONTENT_ENV, parse_bool
from ..telemetry_buckets import is_plain

__all__ = [
    "SCHEMA_URL",
    "SCOPE",
    "TelemetryConfig",
    "configure_telemetry",
    "current_config",
    "telemetry_config",
]

_log = logging.getLogger("statek.telemetry")

SCOPE = "statek"
"""Instrumentation scope name of statek's tracer and meter."""
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
"""Semantic-conventions version statek's spans and metrics follow (the scope's ``schema_url``)."""


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Where telemetry goes and what it may contain. Replace it with :func:`configure_telemetry`."""

    tracer: Tracer
    instruments: inst.Instruments
    capture_content: bool = False
    job_label_keys: tuple[str, ...] = ()
    latest_genai: bool = False
    """``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``: main-branch GenAI names too."""
    traces: bool = True
    """False when ``tracer`` is OpenTelemetry's :class:`~opentelemetry.trace.NoOpTracer` (tracing
    switched off with a ``NoOpTracerProvider``): its spans would only repeat the current span, so
    none is started."""


_config: TelemetryConfig | None = None
_config_lock = threading.Lock()
_instruments_by_provider: weakref.WeakKeyDictionary[Any, inst.Instruments] = weakref.WeakKeyDictionary()


def configure_telemetry(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    capture_content: bool | None = None,
    job_label_keys: Iterable[str] = (),
) -> TelemetryConfig:
    """Send statek's spans and metrics to these providers (default: the global ones).

    ``capture_content`` records prompts and completions on spans (``gen_ai.input.messages``,
    ``gen_ai.output.messages``); default off, or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
    ``job_label_keys`` is the allow-list of job attributes that become metric attributes
    ``statek.job.<key>``; keep it to low-cardinality keys such as ``tenant`` or ``feature`` (``id`` is
    refused: job ids go on spans only). Instruments are created once per meter provider, so
    configuring the same provider again keeps its counters. Returns the new configuration.
    """
    keys = tuple(job_label_keys)
    for key in keys:
        if not key or key == "id" or not key.replace("_", "").isalnum():
            raise ConfigurationError(
                f"job label key {key!r} is not allowed: use a short identifier other than 'id'"
            )
    if capture_content is None:
        raw = os.environ.get(CAPTURE_CONTENT_ENV, "")
        capture_content = parse_bool(raw) or raw.strip().upper() in ("SPAN_ONLY", "SPAN_AND_EVENT")
    latest = inst.latest_genai_opted_in(os.environ.get(inst.SEMCONV_OPT_IN_ENV))
    tracer_provider = tracer_provider or trace.get_tracer_provider()
    meter_provider = meter_provider or metrics.get_meter_provider()
    global _config
    with _config_lock:
        instruments = _instruments_by_provider.get(meter_provider)
        if instruments is None:
            instruments = inst.Instruments(
                meter_provider.get_meter(SCOPE, _version(), schema_url=SCHEMA_URL),
                latest_genai=latest,
                aggregate=is_plain(meter_provider),
            )
            _instruments_by_provider[meter_provider] = instruments
        tracer = tracer_provider.get_tracer(SCOPE, _version(), schema_url=SCHEMA_URL)
        _config = TelemetryConfig(
            tracer,
            instruments,
            bool(capture_content),
            keys,
            latest,
            traces=not isinstance(tracer, trace.NoOpTracer),
        )
        return _config


def telemetry_config() -> TelemetryConfig:
    """The configuration in force (the global providers' until :func:`configure_telemetry` is called)."""
    config = _config
    if config is None:
        config = configure_telemetry()
    return config


def current_config() -> TelemetryConfig | None:
    """:func:`telemetry_config`, or ``None`` (logged) when it cannot be made, e.g. under a meter
    provider that cannot create instruments: calls then go on unobserved. Never raises."""
    config = _config
    if config is not None:
        return config
    try:
        return telemetry_config()
    except Exception:  # noqa: BLE001
        _log.exception("statek telemetry is not configured; calls go on unobserved")
        return None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("statek")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "0"
