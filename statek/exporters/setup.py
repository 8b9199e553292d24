"""One call that sets up telemetry export for an application: :func:`instrument`, and :func:`shutdown`.

::

    import statek
    statek.instrument(service_name="billing-worker", prometheus_port=9469)   # + OTLP from OTEL_* env
    ...
    statek.shutdown()                                                         # flushes

One SDK ``MeterProvider`` feeds both exporters (Prometheus pull and OTLP push): no double
bookkeeping. Spans go to an SDK ``TracerProvider`` with OTLP batching when OTLP is configured;
otherwise to the global tracer provider (the application's own, or none). The providers are
statek's and are not made global unless ``set_global=True``. An application that already set up
OpenTelemetry SDK providers (itself or through ``opentelemetry-instrument``) gets statek's
telemetry in *its* pipeline instead: :func:`instrument` then builds none of its own.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from prometheus_client import REGISTRY, CollectorRegistry

from ..exceptions import ConfigurationError
from ..secrets import REDACTED, register_headers, register_url, scrub
from ..telemetry import configure_telemetry
from ..telemetry_buckets import declare_plain
from . import multiprocess, otlp
from .environment import export_plan, sdk_disabled
from .prometheus import PrometheusExporter

__all__ = ["Instrumentation", "active_instrumentation", "instrument", "shutdown"]

_log = logging.getLogger("statek.telemetry")
_lock = threading.Lock()
_active: Instrumentation | None = None


class _Headers(dict[str, Any]):
    """The OTLP headers as given (usually a collector credential): equal to the plain dict, but shown
    with every value redacted, so ``repr(instrumentation.arguments)`` or a log line cannot leak them."""

    def __repr__(self) -> str:
        return repr(dict.fromkeys(self, REDACTED))

    __str__ = __repr__


@dataclass(eq=False, repr=False)
class Instrumentation:
    """What :func:`instrument` set up. ``prometheus_port`` is the bound port of the standalone
    ``/metrics`` server (``None`` without one); mount ``prometheus.wsgi_app()`` / ``asgi_app()``
    to serve it from an existing web application instead. ``prometheus`` is ``None`` when no
    Prometheus exporter runs (``OTEL_METRICS_EXPORTER`` without ``prometheus``, ``reused``
    application providers, ``disabled`` by ``OTEL_SDK_DISABLED``)."""

    arguments: Mapping[str, Any]
    meter_provider: metrics.MeterProvider
    tracer_provider: trace.TracerProvider
    prometheus: PrometheusExporter | None
    prometheus_port: int | None = None
    owns_tracer_provider: bool = False
    metric_pusher: otlp.MetricPusher | None = None
    multiprocess: multiprocess.MultiprocessMirror | None = None
    owns_meter_provider: bool = False
    reused: bool = False
    disabled: bool = False
    closed: bool = field(default=False)
    span_exporter: Any = None
    ledger: Any = None
    """The usage ledger's writer (:class:`statek.ledger.writer.LedgerWriter`), ``None`` without one."""

    def __repr__(self) -> str:
        # arguments holds the OTLP headers, usually a collector credential: shown scrubbed.
        return scrub(
            f"Instrumentation(arguments={dict(self.arguments)!r}, prometheus_port={self.prometheus_port!r}, "
            f"otlp_metrics={self.metric_pusher is not None!r}, closed={self.closed!r})"
        )

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and stop everything this instrumentation started; later calls do nothing.

        Returns within about ``timeout`` seconds even when the collector is down or never answers:
        what has not been sent by then is dropped (its export may finish on a daemon thread).
        """
        if self.closed:
            return
        self.closed = True
        millis = timeout * 1000
        if self.ledger is not None:  # first: its last rows may still become OTLP log records
            _run("usage ledger", lambda: _close_ledger(self.ledger, timeout))
        pusher = self.metric_pusher
        if self.span_exporter is not None:
            otlp.final_attempt(self.span_exporter, timeout)  # what is queued: one bounded attempt
        # Traces and OTLP metrics flush side by side on threads joined against one deadline: the SDK
        # bounds neither by our timeout (BatchSpanProcessor.force_flush ignores its timeout, the
        # OTLP/HTTP exporters retry for their own 10 s), so a down or black-hole collector held
        # shutdown 15-20 s when they ran one after the other in this thread.
        flushes = [
            _start(what, action)
            for what, action in (
                ("traces", self._shutdown_tracer),
                ("OTLP metrics", lambda: pusher.shutdown(timeout) if pusher is not None else None),
            )
        ]
        deadline = time.monotonic() + timeout
        for what, thread in flushes:
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():
                _log.warning("statek gave up flushing its %s export after %.1f s", what, timeout)
        if self.multiprocess is not None:  # the final totals, before the reader closes
            _run("multiprocess metrics", self.multiprocess.shutdown)
        meter_provider, prometheus = self.meter_provider, self.prometheus
        if self.owns_meter_provider and isinstance(meter_provider, MeterProvider):
            _run("metrics", lambda: meter_provider.shutdown(timeout_millis=millis))
        if prometheus is not None:
            _run("prometheus", prometheus.shutdown)

    def _shutdown_tracer(self) -> None:
        if self.owns_tracer_provider and isinstance(self.tracer_provider, TracerProvider):
            # shutdown() exports what is queued. No force_flush() first: it ignores its timeout, and
            # while it hangs the processor stays open, so the SDK's atexit hook waits for it (30 s) again.
            self.tracer_provider.shutdown()


def _close_ledger(writer: Any, timeout: float) -> None:
    from .ledger import close_ledger

    close_ledger(writer, timeout)


def _run(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - shut down the rest regardless
        _log.exception("statek could not shut down its %s export cleanly", what)


def _start(what: str, action: Callable[[], object]) -> tuple[str, threading.Thread]:
    thread = threading.Thread(target=_run, args=(what, action), name=f"statek-shutdown-{what}", daemon=True)
    thread.start()
    return what, thread


def instrument(
    service_name: str | None = None,
    *,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    registry: CollectorRegistry | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    otlp_timeout: float | None = None,
    metric_export_interval: float | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    capture_content: bool | None = None,
    job_label_keys: Iterable[str] = (),
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    set_global: bool = False,
    multiprocess_mode: bool | None = None,
    httpx: bool = False,
    clients: bool = False,
    ledger: str | os.PathLike[str] | None = None,
    ledger_url: str | None = None,
) -> Instrumentation:
    """Export statek's spans and metrics; idempotent.

    - The application's own telemetry first: ``meter_provider`` / ``tracer_provider``, or else the
      global providers when they are OpenTelemetry *SDK* providers (the application, or
      ``opentelemetry-instrument``, set them up) and no statek exporter was asked for by argument
      (``prometheus_port``, ``registry``, ``otlp_endpoint``): statek then records into them and
      starts no pipeline of its own, so nothing is exported twice.
    - Prometheus: served on ``prometheus_host:prometheus_port`` (``0`` = a free port;
      default host 127.0.0.1; ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT`` when not given) from a
      private registry; without a port, registered in ``registry`` (default the global one) for
      the application to serve. statek's default port is :data:`~.prometheus.DEFAULT_PORT` (9469),
      not OpenTelemetry's 9464.
    - OTLP: traces and metrics each when an endpoint for that signal is known (``otlp_endpoint``, a
      base URL such as ``http://127.0.0.1:4318``, or the ``OTEL_EXPORTER_OTLP_*ENDPOINT``
      variables); see :mod:`.environment` for ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``
      and ``OTEL_SDK_DISABLED``.
    - ``service_name`` wins over ``OTEL_SERVICE_NAME``; ``OTEL_RESOURCE_ATTRIBUTES`` is honoured.
    - ``capture_content`` and ``job_label_keys``: see :func:`statek.telemetry.configure_telemetry`.
    - ``set_global``: also install statek's own providers as OpenTelemetry's global ones.
    - ``multiprocess_mode``: write this worker's totals into ``prometheus_client``'s multiprocess files
      (see :mod:`statek.exporters.multiprocess`); ``None`` (default) turns it on when
      ``PROMETHEUS_MULTIPROC_DIR`` is set. It serves no port of its own: mount
      ``multiprocess.make_asgi_app()`` or serve from the gunicorn master.
    - ``httpx``: also meter every httpx client created from now on (the official OpenAI, Anthropic
      and Google SDKs): :func:`statek.instrument_httpx`; :func:`shutdown` undoes it.
    - ``clients``: also meter every supported client library, clients made before included (httpx,
      botocore for Bedrock, aiohttp): :func:`statek.instrument_clients`; :func:`shutdown` undoes it.
    - ``ledger`` (default ``STATEK_LEDGER_DIR``) and ``ledger_url`` (default ``STATEK_LEDGER_URL``):
      the usage ledger, one record per call and per job, to a Parquet directory and to Postgres,
      and as OTLP log records by the same rule as spans (``OTEL_LOGS_EXPORTER``); see
      :mod:`statek.exporters.ledger` and ``docs/ledger.md``. :func:`shutdown` writes what is left.

    Calling it again with the same arguments returns the same :class:`Instrumentation`; with
    different ones it raises :class:`ConfigurationError` (call :func:`shutdown` first). A port that
    cannot be served raises :class:`MetricsServerError` (an ``OSError`` naming the address and what
    to do). When no exporter is set up at all, a warning says so (nothing would leave the process).
    """
    label_keys = tuple(job_label_keys)
    _register_credentials(otlp_endpoint, otlp_headers)
    if otlp_endpoint:
        otlp.check_endpoint(otlp_endpoint, otlp_protocol)
    if prometheus_port is not None and not 0 <= prometheus_port <= 65535:
        raise ConfigurationError(
            f"prometheus_port must be from 0 to 65535 (0: any free port), got {prometheus_port}"
        )
    arguments = {
        "service_name": service_name,
        "prometheus_port": prometheus_port,
        "prometheus_host": prometheus_host,
        "registry": id(registry),
        "otlp_endpoint": otlp_endpoint,
        "otlp_protocol": otlp_protocol,
        "otlp_headers": _Headers(otlp_headers or {}),
        "otlp_timeout": otlp_timeout,
        "metric_export_interval": metric_export_interval,
        "resource_attributes": dict(resource_attributes or {}),
        "capture_content": capture_content,
        "job_label_keys": label_keys,
        "tracer_provider": id(tracer_provider),
        "meter_provider": id(meter_provider),
        "set_global": set_global,
        "multiprocess_mode": multiprocess_mode,
        "httpx": httpx,
        "clients": clients,
        "ledger": os.fspath(ledger) if ledger is not None else None,
        "ledger_url": ledger_url,
    }
    global _active
    with _lock:
        if _active is not None and not _active.closed:
            if dict(_active.arguments) == arguments:
                return _active
            raise ConfigurationError(
                "statek.instrument() was already called with other arguments; call statek.shutdown() first"
            )
        if multiprocess_mode is None:
            multiprocess_mode = multiprocess.multiprocess_directory() is not None
        if multiprocess_mode and prometheus_port is not None:
            raise ConfigurationError(
                "prometheus_port cannot be used with PROMETHEUS_MULTIPROC_DIR (every worker would bind it): "
                "mount statek.exporters.multiprocess.make_asgi_app() or serve it from the gunicorn master"
            )
        _active = _build(
            arguments,
            service_name=service_name,
            prometheus_port=prometheus_port,
            prometheus_host=prometheus_host,
            registry=registry,
            otlp_endpoint=otlp_endpoint,
            exporter_args={"protocol": otlp_protocol, "headers": otlp_headers, "timeout": otlp_timeout},
            metric_export_interval=metric_export_interval,
            resource_attributes=resource_attributes,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            set_global=set_global,
            multiprocess_mode=multiprocess_mode,
        )
        configure_telemetry(
            tracer_provider=_active.tracer_provider,
            meter_provider=_active.meter_provider,
            capture_content=capture_content,
            job_label_keys=label_keys,
        )
        if httpx:
            from ..instrumentation import instrument_httpx

            instrument_httpx()
        if clients:
            from ..instrumentation import instrument_clients

            instrument_clients()
        from .ledger import start_ledger

        _active.ledger = start_ledger(
            directory=ledger,
            url=ledger_url,
            otlp_endpoint=otlp_endpoint,
            exporter_args={"protocol": otlp_protocol, "headers": otlp_headers, "timeout": otlp_timeout},
            resource_attributes={
                **(resource_attributes or {}),
                **({"service.name": service_name} if service_name else {}),
            },
        )
        return _active


def _build(
    arguments: Mapping[str, Any],
    *,
    service_name: str | None,
    prometheus_port: int | None,
    prometheus_host: str | None,
    registry: CollectorRegistry | None,
    otlp_endpoint: str | None,
    exporter_args: dict[str, Any],
    metric_export_interval: float | None,
    resource_attributes: Mapping[str, str] | None,
    tracer_provider: trace.TracerProvider | None,
    meter_provider: metrics.MeterProvider | None,
    set_global: bool,
    multiprocess_mode: bool,
) -> Instrumentation:
    if sdk_disabled():
        _log.info("statek: OTEL_SDK_DISABLED is set; no spans or metrics are exported")
        return Instrumentation(
            arguments, metrics.NoOpMeterProvider(), trace.NoOpTracerProvider(), None, disabled=True
        )
    own_exporters_asked = (
        prometheus_port is not None or registry is not None or bool(otlp_endpoint) or multiprocess_mode
    )
    app_meter = meter_provider or (
        None if own_exporters_asked else _sdk_or_none(metrics.get_meter_provider(), MeterProvider)
    )
    app_tracer = tracer_provider or (
        None if own_exporters_asked else _sdk_or_none(trace.get_tracer_provider(), TracerProvider)
    )
    if app_meter is not None and app_tracer is not None:
        _log.info("statek records into the application's OpenTelemetry providers; no exporter of its own")
        return Instrumentation(arguments, app_meter, app_tracer, None, reused=True)

    plan = export_plan(
        otlp_endpoint=otlp_endpoint, prometheus_port=prometheus_port, prometheus_host=prometheus_host
    )
    attributes = dict(resource_attributes or {})
    if service_name:
        attributes["service.name"] = service_name
    resource = Resource.create(attributes)
    prometheus: PrometheusExporter | None = None
    readers: list[Any] = []
    chosen_tracer: trace.TracerProvider = app_tracer or trace.get_tracer_provider()
    owns_tracer = False
    span_exporter = None
    pusher: otlp.MetricPusher | None = None
    mirror: multiprocess.MultiprocessMirror | None = None
    port: int | None = None
    try:
        if app_meter is None and plan.prometheus:
            # Serving our own port: a private registry, so an application serving the global one
            # (or running OpenTelemetry's Prometheus exporter) never shows statek's families twice.
            chosen_registry = registry or (
                CollectorRegistry() if plan.prometheus_port is not None else REGISTRY
            )
            prometheus = PrometheusExporter(registry=chosen_registry)
            readers.append(prometheus.reader)
        if app_meter is None and plan.metrics_otlp:
            metric_exporter = otlp.metric_exporter(otlp_endpoint, **exporter_args)
            if prometheus is not None and otlp.wants_cumulative():
                pusher = otlp.MetricPusher(
                    prometheus.reader, metric_exporter, interval=metric_export_interval
                )
            else:  # delta temporality (or no Prometheus reader) needs a reader of its own
                readers.append(otlp.periodic_metric_reader(metric_exporter, interval=metric_export_interval))
        if app_meter is None and plan.metrics_console:
            readers.append(
                otlp.periodic_metric_reader(ConsoleMetricExporter(), interval=metric_export_interval)
            )
        if app_tracer is None and (plan.traces_otlp or plan.traces_console):
            sdk_tracer = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER[_ARG] read by the SDK
            if plan.traces_otlp:
                span_exporter = otlp.span_exporter(otlp_endpoint, **exporter_args)
                sdk_tracer.add_span_processor(otlp.batch_span_processor(span_exporter))
            if plan.traces_console:
                sdk_tracer.add_span_processor(otlp.batch_span_processor(ConsoleSpanExporter()))
            chosen_tracer, owns_tracer = sdk_tracer, True
        chosen_meter = app_meter or MeterProvider(resource=resource, metric_readers=readers)
        if app_meter is None and not otlp.exponential_histograms():
            declare_plain(chosen_meter)  # statek's readers, no views: histograms aggregate between scrapes
        if multiprocess_mode and prometheus is not None:
            mirror = multiprocess.MultiprocessMirror(prometheus.reader)
            mirror.start()
        if prometheus is not None and plan.prometheus_port is not None:
            try:
                port = prometheus.start_http_server(plan.prometheus_port, plan.prometheus_host)
            except OSError as exc:
                raise MetricsServerError(exc, plan.prometheus_host, plan.prometheus_port) from exc
        _warn_if_nothing_leaves(plan, registry, multiprocess_mode)
    except BaseException:
        if pusher is not None:
            pusher.shutdown(0)
        if mirror is not None:
            mirror.shutdown()
        if prometheus is not None:
            prometheus.shutdown()
        raise
    if set_global:
        if app_meter is None:
            metrics.set_meter_provider(chosen_meter)
        if owns_tracer:
            trace.set_tracer_provider(chosen_tracer)
    return Instrumentation(
        arguments,
        chosen_meter,
        chosen_tracer,
        prometheus,
        port,
        owns_tracer,
        pusher,
        mirror,
        owns_meter_provider=app_meter is None,
        span_exporter=span_exporter,
    )


class MetricsServerError(OSError):
    """``/metrics`` could not be served. ``errno`` and ``strerror`` are the operating system's; the
    message also names the address and what to do (an ``OSError``, so ``except OSError`` still works)."""

    def __init__(self, error: OSError, host: str, port: int) -> None:
        super().__init__(error.errno, error.strerror)
        self.host, self.port = host, port

    def __str__(self) -> str:
        if self.errno == errno.EADDRINUSE:
            advice = (
                "another process, or an earlier statek.instrument() in this one, holds it: pass "
                "prometheus_port=0 for any free port, another port, or set OTEL_EXPORTER_PROMETHEUS_PORT"
            )
        else:
            advice = "prometheus_host must be an address of this machine, e.g. 127.0.0.1"
        return f"cannot serve /metrics on {self.host}:{self.port}: {self.strerror or 'error'} ({advice})"


def _warn_if_nothing_leaves(plan: Any, registry: CollectorRegistry | None, multiprocess_mode: bool) -> None:
    """Say so (once per setup, at WARNING) when no exporter was set up: nothing would leave the process."""
    served = plan.prometheus_port is not None or registry is not None or multiprocess_mode
    if served or plan.metrics_otlp or plan.metrics_console or plan.traces_otlp or plan.traces_console:
        return
    _log.warning(
        "statek.instrument(): no exporter set up, so no span or metric leaves this process unless the "
        "application serves prometheus_client's global registry; pass prometheus_port=9469 to serve "
        "/metrics, or set OTEL_EXPORTER_OTLP_ENDPOINT (or otlp_endpoint=...) to push OTLP"
    )


def _register_credentials(endpoint: str | None, headers: Mapping[str, str] | None) -> None:
    """Tell :mod:`statek.secrets` the collector credentials, so nothing statek prints shows them."""
    register_headers(headers)
    register_url(endpoint)
    for name in _OTLP_CREDENTIAL_ENV:
        register_headers(os.environ.get(name))
    register_url(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


_OTLP_CREDENTIAL_ENV = (
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
)


def _sdk_or_none(provider: Any, sdk_type: type) -> Any:
    """The application's global provider when it is an SDK one (the API's proxy resolves to it)."""
    return provider if isinstance(provider, sdk_type) else None


def active_instrumentation() -> Instrumentation | None:
    """The instrumentation :func:`instrument` set up and :func:`shutdown` has not closed, if any."""
    active = _active
    return active if active is not None and not active.closed else None


def shutdown(timeout: float = 5.0) -> None:
    """Flush and stop what :func:`instrument` set up, and send telemetry back to the global providers.

    Waits at most about ``timeout`` seconds per signal for a collector. Safe to call when nothing
    was set up, and more than once.
    """
    global _active
    with _lock:
        active, _active = _active, None
    if active is None:
        return
    if active.arguments.get("httpx"):
        from ..instrumentation import uninstrument_httpx

        uninstrument_httpx()
    if active.arguments.get("clients"):
        from ..instrumentation import uninstrument_clients

        uninstrument_clients()
    active.shutdown(timeout)
    configure_telemetry()
