"""The one wrapper around every provider call: span, instruments, cost and job usage.

:func:`observe_call` is called by ``LLM_API.process_request`` for every call, built-in or added with
``add_provider``. Per call it

1. opens a span ``chat {model}`` (kind CLIENT, OpenTelemetry GenAI semantic conventions) and makes
   it current while the provider runs; each retried HTTP attempt becomes a ``statek.retry`` event
   (``_http.post`` reports it through :func:`current_retry_hook`);
2. prices the usage with :func:`statek.metering.price_call` and fills ``stats.priced_cost`` /
   ``stats.cost_status``;
3. adds the priced call (or the failure, with its bytes) to the current
   :class:`~statek.executors.job.Job` and all its ancestors; when any of them has a budget, the call
   was first estimated and reserved against it (:mod:`statek.executors.budget`; a refusal raises
   ``BudgetExceededError`` before anything is sent) and the reservation is settled here;
4. records the instruments of :mod:`statek.instruments` and closes the span.

Contracts: the caller's exception comes back unchanged (same object); a failure inside telemetry
is logged, never raised, and never changes the response. Prompt and completion text are recorded
only when content capture is switched on. Only the OpenTelemetry *API* is used: by default the
global tracer and meter providers; :func:`configure_telemetry` injects others (tests inject SDK
providers with in-memory exporters, :func:`statek.instrument` its own).

The hot path is budgeted at 50 µs: attribute dicts, span names, counter cells and histogram cells are
built once per (provider, model, job labels) in a :class:`_Series`, and a call bumps its counters and
adds its histogram values to statek-owned buckets under one lock; a collection merges the buckets
into the SDK (see :class:`statek.instruments.Instruments` and :mod:`statek.telemetry_buckets`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from . import instruments as inst
from ._http import wire_tally
from .exceptions import BudgetExceededError, ProviderHTTPError
from .executors.budget import Reservation, reserve_call, reserve_request
from .executors.job import current_job
from .label_guards import guard_job_labels, model_admitter
from .limits import bounded
from .metering import price_call
from .metering.index import FROM_PROVIDER
from .metering.types import UNPRICED, CallCost, drifted
from .secrets import clip, scrub
from .settings import CAPTURE_CONTENT_ENV, parse_bool
from .telemetry_buckets import is_plain
from .types import LLM_Response

if TYPE_CHECKING:
    from ._http import RetryEvent
    from .executors.job import Job
    from .llm_api import LLM_API, PreparedRequest
    from .types import CallDetail

__all__ = [
    "TelemetryConfig",
    "WireCall",
    "WireEndpoint",
    "configure_telemetry",
    "count_budget_refusal",
    "current_first_chunk_hook",
    "current_retry_hook",
    "observe_call",
    "telemetry_config",
]

_log = logging.getLogger("statek.telemetry")

SCOPE = "statek"
"""Instrumentation scope name of statek's tracer and meter."""
OPERATION = "chat"
"""``gen_ai.operation.name`` of a provider call (except Gemini's: see :func:`operation_name`)."""
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
"""Semantic-conventions version statek's spans and metrics follow (the scope's ``schema_url``)."""
operation_name = inst.operation_name


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Where telemetry goes and what it may contain. Replace it with :func:`configure_telemetry`."""

    tracer: Tracer
    instruments: inst.Instruments
    capture_content: bool = False
    job_label_keys: tuple[str, ...] = ()
    latest_genai: bool = False
    """``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``: main-branch GenAI names too."""


_config: TelemetryConfig | None = None
_config_lock = threading.Lock()
_instruments_by_provider: weakref.WeakKeyDictionary[Any, inst.Instruments] = weakref.WeakKeyDictionary()
_series_by_instruments: weakref.WeakKeyDictionary[inst.Instruments, dict[tuple[Any, ...], _Series]] = (
    weakref.WeakKeyDictionary()
)


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
    from .exceptions import ConfigurationError

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
            _series_by_instruments[instruments] = {}
        _config = TelemetryConfig(
            tracer_provider.get_tracer(SCOPE, _version(), schema_url=SCHEMA_URL),
            instruments,
            bool(capture_content),
            keys,
            latest,
        )
        return _config


def telemetry_config() -> TelemetryConfig:
    """The configuration in force (the global providers' until :func:`configure_telemetry` is called)."""
    config = _config
    if config is None:
        config = configure_telemetry()
    return config


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("statek")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "0"


# ----------------------------------------------------------------------------- per-series cache
class _Series:
    """Everything that is the same for every call to one (provider, model, job labels)."""

    __slots__ = (
        "admit_response",
        "base",
        "cost",
        "drift",
        "error_durations",
        "error_requests",
        "first_chunk",
        "histograms",
        "instruments",
        "lock",
        "model",
        "ok_requests",
        "operation",
        "received",
        "retries",
        "sent",
        "server",
        "span_attrs",
        "span_name",
        "tokens",
    )

    def __init__(
        self,
        instruments: inst.Instruments,
        provider: str,
        model: str,
        labels: dict[str, str],
        server: dict[str, Any],
        operation: str | None = None,
        admit_response: Callable[[str], str] = lambda model: model,
    ) -> None:
        self.instruments = instruments
        self.admit_response = admit_response
        """The cardinality guard of response model names."""
        self.model = model
        self.lock = threading.Lock()
        self.operation = operation = operation or operation_name(provider)
        self.span_name = f"{operation} {model}"
        self.span_attrs = {
            inst.GEN_AI_OPERATION_NAME: operation,
            inst.GEN_AI_PROVIDER_NAME: provider,
            inst.GEN_AI_REQUEST_MODEL: model,
        }
        base = {inst.GEN_AI_PROVIDER_NAME: provider, inst.GEN_AI_REQUEST_MODEL: model, **labels}
        self.base = base
        self.server = server  # server.address / server.port: on spans and the GenAI histograms
        # Series are created when they first happen, never ahead: a pre-created zero would claim a
        # state that did not occur (statek_cost_usd_total{statek_cost_status="calculated"} 0 for a
        # model nothing prices). The first increment of a new series is still seen: /metrics and
        # the OTLP push show it at zero first (statek.exporters.debut), the multiprocess files hold
        # it at zero until a scrape has read it (statek.exporters.multiprocess).
        self.tokens = _Cells(instruments, inst.TOKENS, base, inst.STATEK_TOKEN_TYPE, self.lock)
        self.tokens["input"], self.tokens["output"]  # every success adds to both: created now
        self.cost = _Cells(instruments, inst.COST, base, inst.STATEK_COST_STATUS, self.lock, Decimal(0))
        self.ok_requests = _Cells(
            instruments,
            inst.REQUESTS,
            {**base, inst.STATEK_OUTCOME: "success"},
            inst.STATEK_COST_STATUS,
            self.lock,
        )
        self.drift = instruments.cell(inst.COST_DRIFT, base)
        self.sent = instruments.cell(inst.BYTES, {**base, inst.NETWORK_IO_DIRECTION: "transmit"})
        self.received = instruments.cell(inst.BYTES, {**base, inst.NETWORK_IO_DIRECTION: "receive"})
        self.error_requests: dict[str, inst.CounterCell] = {}
        self.retries: dict[str, inst.CounterCell] = {}
        self.histograms: dict[
            str | None, tuple[inst.HistogramCell, inst.HistogramCell, inst.HistogramCell]
        ] = {}
        self.error_durations: dict[str, inst.HistogramCell] = {}
        self.first_chunk: inst.HistogramCell | None = None

    def success_cells(
        self, stats: CallDetail
    ) -> tuple[inst.CounterCell | None, inst.CounterCell, list[tuple[inst.CounterCell, int]]]:
        """A successful call's cost series (``None`` without a priced cost), its request series and
        its (series, count) of the optional token types it used. Call it outside the instruments'
        lock: a series that does not exist yet is created here."""
        status = stats.cost_status
        cost = self.cost[status] if stats.priced_cost is not None else None
        extra = [
            (self.tokens[kind], count)
            for kind, count in (
                ("cache_read", stats.cached_tokens),
                ("cache_write", stats.cache_write_tokens),
                ("reasoning", stats.reasoning_tokens),
            )
            if count
        ]
        return cost, self.ok_requests[status], extra

    def span_for(self, model: str) -> tuple[str, dict[str, Any]]:
        """The span name and attributes of a call to ``model``: the series' own, unless the series
        is the cardinality guard's overflow (spans keep the real model name)."""
        if model == self.model:
            return self.span_name, self.span_attrs
        return f"{self.operation} {model}", {**self.span_attrs, inst.GEN_AI_REQUEST_MODEL: model}

    def histogram_cells(
        self, response_model: str | None
    ) -> tuple[inst.HistogramCell, inst.HistogramCell, inst.HistogramCell]:
        """(input tokens, output tokens, duration) histogram series of a successful call."""
        cells = self.histograms.get(response_model)
        if cells is None and response_model:
            response_model = self.admit_response(response_model)
            cells = self.histograms.get(response_model)
        if cells is None:
            with self.lock:  # two cells with one attribute set would be merged twice
                cells = self.histograms.get(response_model)
                if cells is None:
                    common = {inst.GEN_AI_OPERATION_NAME: self.operation, **self.base, **self.server}
                    if response_model:
                        common[inst.GEN_AI_RESPONSE_MODEL] = response_model
                    instruments = self.instruments
                    cells = self.histograms[response_model] = (
                        instruments.histogram_cell(
                            instruments.token_usage, {**common, inst.GEN_AI_TOKEN_TYPE: "input"}
                        ),
                        instruments.histogram_cell(
                            instruments.token_usage, {**common, inst.GEN_AI_TOKEN_TYPE: "output"}
                        ),
                        instruments.histogram_cell(instruments.duration, common),
                    )
        return cells

    def first_chunk_cell(self) -> inst.HistogramCell:
        """The time-to-first-chunk series (the duration's attributes without a response model)."""
        cell = self.first_chunk
        if cell is None:
            with self.lock:
                cell = self.first_chunk
                if cell is None:
                    attributes = {inst.GEN_AI_OPERATION_NAME: self.operation, **self.base, **self.server}
                    instruments = self.instruments
                    cell = self.first_chunk = instruments.histogram_cell(
                        instruments.time_to_first_chunk, attributes
                    )
        return cell

    def error_duration_cell(self, error_type: str) -> inst.HistogramCell:
        cell = self.error_durations.get(error_type)
        if cell is None:
            with self.lock:
                cell = self.error_durations.get(error_type)
                if cell is None:
                    attributes = {
                        inst.GEN_AI_OPERATION_NAME: self.operation,
                        **self.base,
                        **self.server,
                        inst.ERROR_TYPE: error_type,
                    }
                    instruments = self.instruments
                    cell = self.error_durations[error_type] = instruments.histogram_cell(
                        instruments.duration, attributes
                    )
        return cell

    def error_cell(self, error_type: str) -> inst.CounterCell:
        return self._keyed(
            self.error_requests,
            inst.REQUESTS,
            error_type,
            {
                inst.STATEK_OUTCOME: "error",
                inst.ERROR_TYPE: error_type,
                inst.STATEK_COST_STATUS: "unpriced",
            },
        )

    def retry_cell(self, error_type: str) -> inst.CounterCell:
        return self._keyed(self.retries, inst.RETRIES, error_type, {inst.ERROR_TYPE: error_type})

    def _keyed(
        self, cells: dict[str, inst.CounterCell], spec: inst.InstrumentSpec, key: str, extra: dict[str, str]
    ) -> inst.CounterCell:
        cell = cells.get(key)
        if cell is None:
            with self.lock:  # two cells with one attribute set would be observed twice
                cell = cells.get(key)
                if cell is None:
                    cell = cells[key] = self.instruments.cell(spec, {**self.base, **extra})
        return cell


class _Cells(dict[str, inst.CounterCell]):
    """Counter series of one family that differ in one attribute, each created on first use.

    Look a value up outside the instruments' lock (creating a cell takes it)."""

    __slots__ = ("base", "instruments", "key", "lock", "spec", "zero")

    def __init__(
        self,
        instruments: inst.Instruments,
        spec: inst.InstrumentSpec,
        base: dict[str, str],
        key: str,
        lock: threading.Lock,
        zero: int | Decimal = 0,
    ) -> None:
        super().__init__()
        self.instruments, self.spec, self.base, self.key, self.lock, self.zero = (
            instruments,
            spec,
            base,
            key,
            lock,
            zero,
        )

    def __missing__(self, value: str) -> inst.CounterCell:
        with self.lock:  # two cells with one attribute set would be observed twice
            cell = self.get(value)
            if cell is None:
                cell = self[value] = self.instruments.cell(
                    self.spec, {**self.base, self.key: value}, self.zero
                )
            return cell


def _series(
    config: TelemetryConfig,
    provider: str,
    model: str,
    job: Job | None,
    server: tuple[str | None, int | None] = (None, None),
    operation: str | None = None,
    *,
    pricing_provider: str | None = None,
) -> _Series:
    labels: tuple[str, ...] = ()
    if config.job_label_keys:
        attributes = job.attributes if job is not None else {}
        labels = tuple(attributes.get(k, "") for k in config.job_label_keys)
    key = (provider, model, labels, server, operation)
    cache = _series_by_instruments[config.instruments]
    series = cache.get(key)
    if series is None:  # a new series, or a value the cardinality guard refused
        model = model_admitter(config.instruments, pricing_provider or provider)(model)
        labels = guard_job_labels(config.instruments, config.job_label_keys, labels)
        key = (provider, model, labels, server, operation)
        series = cache.get(key)
    if series is None:
        with _config_lock:
            series = cache.get(key)
            if series is None:
                named = {inst.JOB_LABEL_PREFIX + k: v for k, v in zip(config.job_label_keys, labels)}
                where: dict[str, Any] = {}
                if server[0]:
                    where[inst.SERVER_ADDRESS] = server[0]
                    if server[1]:
                        where[inst.SERVER_PORT] = server[1]
                admit_response = model_admitter(
                    config.instruments, pricing_provider or provider, inst.GEN_AI_RESPONSE_MODEL
                )
                series = cache[key] = _Series(
                    config.instruments, provider, model, named, where, operation, admit_response
                )
    return series


# ----------------------------------------------------------------------------- one call
_invocation: ContextVar[_Invocation | None] = ContextVar("statek_invocation", default=None)
_servers: dict[tuple[type, str | None], tuple[str | None, int | None]] = {}


def current_retry_hook() -> Callable[[RetryEvent], None] | None:
    """The callback ``_http.post`` must call on each retry of the call being observed, or ``None``."""
    invocation = _invocation.get()
    return invocation.on_retry if invocation is not None else None


class _Invocation:
    """One observed call: :meth:`start` opens it, then exactly one of :meth:`stop` / :meth:`fail`.

    None of its methods raises: telemetry problems are logged and the call goes on.
    """

    __slots__ = (
        "config",
        "duration",
        "job",
        "retries",
        "series",
        "span",
        "started",
        "started_wall",
        "tokens",
    )

    def __init__(self, config: TelemetryConfig | None, job: Job | None) -> None:
        self.config = config
        self.job = job
        self.retries = 0
        self.span: Span | None = None
        self.series: _Series | None = None
        self.tokens: tuple[Any, Any] | None = None
        self.duration = 0.0
        self.started = time.perf_counter()
        self.started_wall = time.time()

    def start(self, api: LLM_API, params: PreparedRequest) -> None:
        config = self.config
        if config is None:
            return
        try:
            where = (type(api), api.settings.api_url)
            server = _servers.get(where)
            if server is None:
                server = _servers[where] = api.server_address()
            series = self.series = _series(
                config,
                api.genai_provider_name,
                params.model,
                self.job,
                server,
                pricing_provider=api.pricing_provider or api.provider_key,
            )
            span_name, span_attrs = series.span_for(params.model)
            attributes: dict[str, Any] = {**span_attrs, **series.server}
            if getattr(api, "stream", False):
                attributes["gen_ai.request.stream"] = True
            attributes["gen_ai.output.type"] = (
                "json" if getattr(api.settings, "response_format_file", None) else "text"
            )
            if params.temperature is not None:
                attributes["gen_ai.request.temperature"] = params.temperature
            if params.max_tokens is not None:
                attributes["gen_ai.request.max_tokens"] = params.max_tokens
            if self.job is not None:
                attributes["statek.job.id"] = self.job.job_id
            if config.capture_content:
                attributes.update(_input_content(params))
            span = self.span = config.tracer.start_span(
                span_name, kind=SpanKind.CLIENT, attributes=attributes
            )
            self.tokens = (
                otel_context.attach(trace.set_span_in_context(span)),
                _invocation.set(self),
            )
        except Exception:  # noqa: BLE001 - telemetry never breaks the call
            _log.exception("statek telemetry could not start a span; the call goes on unobserved")

    def on_retry(self, event: RetryEvent) -> None:
        """Record one retried attempt: a span event and the ``statek.retries`` counter."""
        try:
            self.retries += 1
            attributes: dict[str, Any] = {
                "statek.retry.attempt": event.attempt,
                inst.ERROR_TYPE: event.error_type,
                "statek.retry.delay_s": event.delay,
            }
            if event.status_code is not None:
                attributes["http.response.status_code"] = event.status_code
            if self.span is not None:
                self.span.add_event("statek.retry", attributes)
            if self.series is not None:
                cell = self.series.retry_cell(event.error_type)
                with self.series.instruments.lock:
                    cell.value += 1
        except Exception:  # noqa: BLE001
            _log.exception("statek telemetry could not record a retry")

    def stop(self, stats: CallDetail, response: LLM_Response, priced: CallCost | None = None) -> None:
        """The call succeeded with priced ``stats``: record the instruments and close the span.

        ``priced`` carries the table's price of a call whose cost was reported (the drift)."""
        self.duration = time.perf_counter() - self.started
        self._leave()
        series, span = self.series, self.span
        if series is None:  # start failed: nothing was opened
            return
        try:
            exemplar = span.get_span_context() if span is not None else None
            if exemplar is not None and not exemplar.trace_flags.sampled:
                exemplar = None
            tokens = series.tokens
            cost, ok_requests, extra_tokens = series.success_cells(stats)
            in_cell, out_cell, duration_cell = series.histogram_cells(stats.response_model)
            instruments = series.instruments
            aggregating = instruments.aggregating
            with instruments.lock:
                _bump(tokens["input"], stats.input_tokens, exemplar)
                _bump(tokens["output"], stats.output_tokens, exemplar)
                for cell, count in extra_tokens:
                    _bump(cell, count, exemplar)
                if cost is not None and stats.priced_cost is not None:
                    _bump(cost, stats.priced_cost, exemplar)
                ok_requests.value += 1
                if priced is not None and priced.table_amount is not None and drifted(priced):
                    series.drift.value += 1
                series.sent.value += stats.total_bytes_sent
                series.received.value += stats.total_bytes_received
                if aggregating:
                    duration_cell.add(self.duration, exemplar)
                    in_cell.add(stats.input_tokens)
                    out_cell.add(stats.output_tokens)
            if not aggregating:
                instruments.record_now(duration_cell, self.duration, exemplar)
                instruments.record_now(in_cell, stats.input_tokens)
                instruments.record_now(out_cell, stats.output_tokens)
        except Exception:  # noqa: BLE001
            _log.exception("statek telemetry could not count the call")
        self._close(stats, response, priced)

    def _close(self, stats: CallDetail, response: LLM_Response, priced: CallCost | None = None) -> None:
        span = self.span
        if span is None:
            return
        try:
            attributes: dict[str, Any] = {
                "gen_ai.usage.input_tokens": stats.input_tokens,
                "gen_ai.usage.output_tokens": stats.output_tokens,
                "statek.cost.status": stats.cost_status,
                "statek.bytes.sent": stats.total_bytes_sent,
                "statek.bytes.received": stats.total_bytes_received,
            }
            if stats.response_model:
                attributes[inst.GEN_AI_RESPONSE_MODEL] = stats.response_model
            if stats.finish_reason:
                attributes["gen_ai.response.finish_reasons"] = (stats.finish_reason,)
            if stats.response_id:
                attributes["gen_ai.response.id"] = stats.response_id
            if stats.cached_tokens:
                attributes["gen_ai.usage.cache_read.input_tokens"] = stats.cached_tokens
            latest = self.config is not None and self.config.latest_genai
            if stats.cache_write_tokens:
                key = (
                    "gen_ai.usage.cache_write.input_tokens"
                    if latest
                    else "gen_ai.usage.cache_creation.input_tokens"
                )
                attributes[key] = stats.cache_write_tokens
            if latest and stats.priced_cost is not None:  # the proposed gen_ai.usage.cost.* attributes
                attributes["gen_ai.usage.cost.amount"] = float(stats.priced_cost)
                attributes["gen_ai.usage.cost.currency"] = "USD"
                attributes["gen_ai.usage.cost.source"] = stats.cost_status
            if stats.reasoning_tokens:
                attributes["gen_ai.usage.reasoning.output_tokens"] = stats.reasoning_tokens
            if stats.priced_cost is not None:
                attributes["statek.cost.usd"] = float(stats.priced_cost)
            if stats.cost is not None:
                attributes["statek.cost.reported_usd"] = float(stats.cost)
            if priced is not None and priced.table_amount is not None:
                attributes["statek.cost.table_usd"] = float(priced.table_amount)
                attributes["statek.cost.drift_usd"] = float(priced.drift)  # type: ignore[arg-type]
            if self.retries:
                attributes["statek.retry.count"] = self.retries
            if self.config is not None and self.config.capture_content:
                attributes.update(_output_content(response))
            span.set_attributes(attributes)
            span.end()
        except Exception:  # noqa: BLE001
            _log.exception("statek telemetry could not close the call's span")

    def fail(
        self, exc: BaseException, error_type: str | None = None, wire_bytes: tuple[int, int] | None = None
    ) -> None:
        """The call raised ``exc``: record the error outcome. ``exc`` itself is left untouched.

        ``error_type`` and ``wire_bytes`` (sent, received) override what ``exc`` says (the httpx
        transport knows both from the exchange itself)."""
        duration = time.perf_counter() - self.started
        self._leave()
        if error_type is None:
            error_type = (
                str(exc.status_code) if isinstance(exc, ProviderHTTPError) else type(exc).__qualname__
            )
        if wire_bytes is not None:
            sent, received = wire_bytes
        else:
            tally = wire_tally(exc)  # also a cancelled call's: what it sent still counts
            sent, received = tally.bytes_sent, tally.bytes_received
        series, span = self.series, self.span
        try:
            if series is not None:
                instruments = series.instruments
                duration_cell = series.error_duration_cell(error_type)
                cell = series.error_cell(error_type)
                aggregating = instruments.aggregating
                with instruments.lock:
                    cell.value += 1
                    series.sent.value += sent
                    series.received.value += received
                    if aggregating:
                        duration_cell.add(duration)
                if not aggregating:
                    instruments.record_now(duration_cell, duration)
        except Exception:  # noqa: BLE001
            _log.exception("statek telemetry could not record the failed call's metrics")
        if span is None:
            return
        try:
            attributes: dict[str, Any] = {
                inst.ERROR_TYPE: error_type,
                "statek.bytes.sent": sent,
                "statek.bytes.received": received,
                "statek.cost.status": "unpriced",
            }
            if self.retries:
                attributes["statek.retry.count"] = self.retries
            span.set_attributes(attributes)
            # Scrubbed: an error body may echo the request's key, and this is exported with content capture off.
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {clip(exc, 200)}"))
            span.end()
        except Exception:  # noqa: BLE001
            _log.exception("statek telemetry could not close the failed call's span")

    def _leave(self) -> None:
        tokens, self.tokens = self.tokens, None
        if tokens is None:
            return
        try:
            _invocation.reset(tokens[1])
            otel_context.detach(tokens[0])
        except Exception:  # noqa: BLE001 - e.g. finished in another context than it started in
            _log.debug("statek telemetry could not restore the context", exc_info=True)


def _bump(cell: inst.CounterCell, amount: int | Decimal, exemplar: Any) -> None:
    cell.value += amount
    if exemplar is not None:
        cell.exemplar = exemplar


async def observe_call(
    api: LLM_API, params: PreparedRequest, run: Callable[[], Awaitable[LLM_Response]]
) -> LLM_Response:
    """Run one provider call (``run``) under telemetry; return its response with the cost filled in.

    Exceptions from ``run`` propagate unchanged after their outcome is recorded.
    """
    job = current_job()
    reservation = None
    if job is not None and job.budgets:
        try:  # before anything is sent: a refused call opens no span and sends no byte
            reservation = reserve_call(job, api, params)
        except BudgetExceededError as refused:
            count_budget_refusal(api.genai_provider_name, params.model, refused)
            raise
        except Exception:  # noqa: BLE001 - a fault in statek's estimate never breaks the call
            _log.exception("statek could not check a call against its job's budget; it goes unbudgeted")
    invocation = _Invocation(_config or _safe_config(), job)
    invocation.start(api, params)
    try:
        response = await run()
    except BaseException as exc:
        invocation.fail(exc)
        if job is not None:
            _record_failure_in_jobs(job, api.provider_key, params.model, exc, invocation.span)
        if reservation is not None:
            _settle_failure(reservation, exc)
        raise
    if not isinstance(response, LLM_Response):  # a seed-style provider may return a plain 3-tuple
        response = LLM_Response(*response)
    answered = response.detail
    detail = _bounded(api, params, answered)
    stats, cost = _price(api, params, detail, invocation.started_wall)
    if job is not None:
        _record_in_jobs(job, api.provider_key, params.model, stats, invocation.span, cost.table_amount)
    if reservation is not None:
        try:
            reservation.settle(
                stats.priced_cost,
                stats.input_tokens,
                stats.output_tokens,
                stats.total_bytes_sent,
                stats.total_bytes_received,
            )
        except Exception:  # noqa: BLE001
            _log.exception("statek could not settle a call against its job's budget")
    if detail is answered:  # pricing changed no seed number: share the answer's tuple
        response = response._with_detail(stats)
    else:
        response = LLM_Response(response.text, None, response.call_requests, detail=stats)
    invocation.stop(stats, response, cost)
    return response


# ----------------------------------------------------------------------------- budgets
_refusal_cells: weakref.WeakKeyDictionary[inst.Instruments, dict[tuple[str, str], inst.CounterCell]] = (
    weakref.WeakKeyDictionary()
)
_refusal_lock = threading.Lock()


def count_budget_refusal(provider: str, model: str, refused: BudgetExceededError) -> None:
    """Count a call a budget refused: ``statek.budget.refusals`` by ``provider`` (the
    ``gen_ai.provider.name``) and ``model``, never by job, and a ``statek.budget.refused`` event on
    the span of the job that made the call (see :meth:`Job.note_refusal`), or on the current span
    outside any job. For every caller that refuses a call: ``observe_call`` and the httpx transport.
    Never raises."""
    try:
        config = _config or _safe_config()
        if config is None:
            return
        with _refusal_lock:  # one cell per series, ever: a second one would be reported twice
            cells = _refusal_cells.setdefault(config.instruments, {})
            cell = cells.get((provider, model))
            if cell is None:
                attributes = {inst.GEN_AI_PROVIDER_NAME: provider, inst.GEN_AI_REQUEST_MODEL: model}
                cell = cells[(provider, model)] = config.instruments.cell(inst.BUDGET_REFUSALS, attributes)
        with config.instruments.lock:
            cell.value += 1
        event = {"statek.job.id": refused.job_id, "statek.budget.reason": refused.reason, **cell.attributes}
        job = current_job()
        if job is not None:
            job.note_refusal(event)
        else:
            trace.get_current_span().add_event("statek.budget.refused", event)
    except Exception:  # noqa: BLE001 - the refusal stands; only its telemetry is lost
        _log.exception("statek telemetry could not count a budget refusal")


def _settle_failure(reservation: Reservation, exc: BaseException) -> None:
    wire = wire_tally(exc)  # a cancelled call's bytes count against the budget too
    sent, received = wire.bytes_sent, wire.bytes_received
    try:
        reservation.settle_failure(sent, received)
    except Exception:  # noqa: BLE001
        _log.exception("statek could not settle a failed call against its job's budget")


def _safe_config() -> TelemetryConfig | None:
    try:
        return telemetry_config()
    except Exception:  # noqa: BLE001 - e.g. a meter provider that cannot create instruments
        _log.exception("statek telemetry is not configured; calls go on unobserved")
        return None


def _price(
    api: LLM_API, params: PreparedRequest, stats: CallDetail, started: float
) -> tuple[CallDetail, CallCost]:
    pricing_provider = api.pricing_provider or api.provider_key
    database_provider = getattr(api, "price_provider", FROM_PROVIDER)
    return _price_as(pricing_provider, params.model, stats, started, database_provider)


def _price_as(
    pricing_provider: str, model: str, stats: CallDetail, started: float, database_provider: Any = None
) -> tuple[CallDetail, CallCost]:
    try:
        at = datetime.fromtimestamp(started, timezone.utc)
        cost = price_call(
            pricing_provider,
            model,
            stats,
            at=at,
            database_provider=FROM_PROVIDER if database_provider is None else database_provider,
        )
        return _with_cost(stats, cost.amount, cost.status), cost
    except Exception:  # noqa: BLE001 - an unpriced call beats a failed one
        _log.exception(
            "statek could not price a %s call to %s; recorded as unpriced", pricing_provider, model
        )
        return _with_cost(stats, None, "unpriced"), UNPRICED


def _bounded(api: LLM_API, params: PreparedRequest, stats: CallDetail) -> CallDetail:
    """``stats`` with any number outside :mod:`statek.limits` removed, so no exporter is poisoned by it.

    Built-in providers refuse such answers already; this guards providers added with ``add_provider``.
    """
    checked, problems = bounded(stats)
    if problems:
        _log.warning(
            "statek dropped out-of-range numbers from a %s call to %s: %s",
            api.provider_key,
            params.model,
            "; ".join(problems),
        )
    return checked


def _with_cost(stats: CallDetail, amount: Decimal | None, status: str) -> CallDetail:
    # Positional rebuild: NamedTuple._replace costs three times as much on this hot path.
    i = stats._fields.index("priced_cost")
    rebuild: Callable[..., CallDetail] = type(stats)
    return rebuild(*stats[:i], amount, status, *stats[i + 2 :])


def _record_in_jobs(
    job: Job,
    provider: str,
    model: str,
    stats: CallDetail,
    span: Span | None,
    table_cost: Decimal | None = None,
) -> None:
    context = span.get_span_context() if span is not None else None
    for each in job.lineage:
        try:
            each.usage.record(provider, model, stats, table_cost=table_cost)
            each.note_call_span(context)
        except Exception:  # noqa: BLE001
            _log.exception("statek could not add a call to job %r", each.job_id)


def _record_failure_in_jobs(
    job: Job,
    provider: str,
    model: str,
    exc: BaseException,
    span: Span | None,
    wire_bytes: tuple[int, int] | None = None,
) -> None:
    if wire_bytes is not None:
        sent, received = wire_bytes
    else:
        tally = wire_tally(exc)  # also a cancelled call's: what it sent still counts
        sent, received = tally.bytes_sent, tally.bytes_received
    context = span.get_span_context() if span is not None else None
    for each in job.lineage:
        try:
            each.usage.record_failure(provider, model, sent, received)
            each.note_call_span(context)
        except Exception:  # noqa: BLE001
            _log.exception("statek could not add a failed call to job %r", each.job_id)


# ----------------------------------------------------------------------------- calls read off the wire
def current_first_chunk_hook() -> Callable[[], None] | None:
    """The callback a streaming ``LLM_API`` call must call when its first chunk arrives, or ``None``."""
    invocation = _invocation.get()
    if invocation is None:
        return None
    return lambda: _record_first_chunk(invocation, time.perf_counter() - invocation.started)


def _record_first_chunk(invocation: _Invocation, seconds: float) -> None:
    """``gen_ai.client.operation.time_to_first_chunk`` and the span's ``statek.first_chunk`` event."""
    try:
        series, span = invocation.series, invocation.span
        if series is not None:
            cell, instruments = series.first_chunk_cell(), series.instruments
            if instruments.aggregating:
                with instruments.lock:
                    cell.add(seconds)
            else:
                instruments.record_now(cell, seconds)
        if span is not None:
            span.set_attribute("statek.time_to_first_chunk_s", seconds)
            span.add_event("statek.first_chunk", {"statek.time_to_first_chunk_s": seconds})
    except Exception:  # noqa: BLE001
        _log.exception("statek telemetry could not record the time to the first chunk")


@dataclass(frozen=True, slots=True)
class WireEndpoint:
    """Who a call read off the wire went to: statek's provider key (job usage), the
    ``gen_ai.provider.name``, the price-table provider, and the server's host and port."""

    provider_key: str
    genai_provider_name: str
    pricing_provider: str
    server_address: str | None = None
    server_port: int | None = None


class WireCall:
    """One call the httpx transport (:mod:`statek.instrumentation`) saw, reported like an ``LLM_API`` call.

    Created when the request leaves; then :meth:`first_chunk` (streams) and exactly one of
    :meth:`succeed` / :meth:`fail`. The span is not made current (the answer may be read in another
    context than the request was sent from). Never raises.
    """

    __slots__ = ("_endpoint", "_invocation", "_model", "_reservation")

    def __init__(
        self,
        endpoint: WireEndpoint,
        operation: str,
        model: str,
        *,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        reservation: Reservation | None = None,
    ) -> None:
        self._endpoint, self._model, self._reservation = endpoint, model, reservation
        invocation = self._invocation = _Invocation(_config or _safe_config(), current_job())
        config = invocation.config
        if config is None:
            return
        try:
            server = (endpoint.server_address, endpoint.server_port)
            # "chat" is the default: the provider decides (Gemini's is generate_content, issue 12).
            series = invocation.series = _series(
                config,
                endpoint.genai_provider_name,
                model,
                invocation.job,
                server,
                None if operation == OPERATION else operation,
                pricing_provider=endpoint.pricing_provider,
            )
            span_name, span_attrs = series.span_for(model)
            attributes: dict[str, Any] = {**span_attrs, **series.server}
            if stream:
                attributes["gen_ai.request.stream"] = True
            if temperature is not None:
                attributes["gen_ai.request.temperature"] = temperature
            if max_tokens is not None:
                attributes["gen_ai.request.max_tokens"] = max_tokens
            if invocation.job is not None:
                attributes["statek.job.id"] = invocation.job.job_id
            invocation.span = config.tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attributes)
        except Exception:  # noqa: BLE001 - telemetry never breaks the call
            _log.exception("statek telemetry could not start a span; the call goes on unobserved")

    def first_chunk(self) -> None:
        """The first bytes of a streamed answer arrived now."""
        _record_first_chunk(self._invocation, time.perf_counter() - self._invocation.started)

    def succeed(self, detail: CallDetail, text: str = "", calls: list[Any] | None = None) -> CallDetail:
        """The answer was read: price it (an answer without usage is ``no_usage``, never $0), add it to
        the current job and record it. Returns the priced detail."""
        endpoint, invocation = self._endpoint, self._invocation
        detail, cost = _price_as(endpoint.pricing_provider, self._model, detail, invocation.started_wall)
        if invocation.job is not None:
            _record_in_jobs(
                invocation.job, endpoint.provider_key, self._model, detail, invocation.span, cost.table_amount
            )
        if self._reservation is not None:
            try:
                self._reservation.settle(
                    detail.priced_cost,
                    detail.input_tokens,
                    detail.output_tokens,
                    detail.total_bytes_sent,
                    detail.total_bytes_received,
                )
            except Exception:  # noqa: BLE001
                _log.exception("statek could not settle a call against its job's budget")
        invocation.stop(detail, LLM_Response(text, None, calls, detail=detail), cost)
        return detail

    def fail(self, exc: BaseException | None, error_type: str, sent: int, received: int) -> None:
        """The call failed (an HTTP error status, a transport error, a stream that broke)."""
        invocation = self._invocation
        error = exc if exc is not None else RuntimeError(error_type)
        invocation.fail(error, error_type, (sent, received))
        if invocation.job is not None:
            _record_failure_in_jobs(
                invocation.job,
                self._endpoint.provider_key,
                self._model,
                error,
                invocation.span,
                (sent, received),
            )
        if self._reservation is not None:
            try:
                self._reservation.settle_failure(sent, received)
            except Exception:  # noqa: BLE001
                _log.exception("statek could not settle a failed call against its job's budget")


def reserve_wire_call(
    endpoint: WireEndpoint, model: str, body: bytes, max_tokens: int | None
) -> Reservation | None:
    """Before the httpx transport sends an LLM request: when the current job (or an ancestor) has a
    budget, estimate the request from its JSON body and reserve it (pass the result to
    :class:`WireCall`, which settles it); else ``None``. Raises
    :class:`~statek.exceptions.BudgetExceededError`, counted as a refusal: the transport must then
    send nothing. A fault in the estimate is logged and the call goes on unbudgeted."""
    job = current_job()
    if job is None or not job.budgets:
        return None
    try:
        return reserve_request(
            job,
            endpoint.provider_key,
            model,
            body,
            pricing_provider=endpoint.pricing_provider,
            max_output_tokens=max_tokens,
        )
    except BudgetExceededError as refused:
        count_budget_refusal(endpoint.genai_provider_name, model, refused)
        raise
    except Exception:  # noqa: BLE001 - a fault in statek's estimate never breaks the call
        _log.exception("statek could not check a call against its job's budget; it goes unbudgeted")
        return None


# ----------------------------------------------------------------------------- content (opt-in)
def _input_content(params: PreparedRequest) -> dict[str, str]:
    messages = []
    for item in params.chat_history:
        parts: list[dict[str, Any]] = []
        if item.role.value == "tool":
            parts.append({"type": "tool_call_response", "id": item.tool_call_id, "response": item.content})
        elif item.content:
            parts.append({"type": "text", "content": item.content})
        for call in item.tool_calls:
            parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.kwargs})
        messages.append({"role": item.role.value, "parts": parts})
    out = {"gen_ai.input.messages": scrub(json.dumps(messages, ensure_ascii=False, default=str))}
    if params.system_prompt:
        out["gen_ai.system_instructions"] = scrub(
            json.dumps([{"type": "text", "content": params.system_prompt}])
        )
    return out


def _output_content(response: LLM_Response) -> dict[str, str]:
    parts: list[dict[str, Any]] = []
    if response.text:
        parts.append({"type": "text", "content": response.text})
    for call in response.call_requests or ():
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.kwargs})
    message = {"role": "assistant", "parts": parts, "finish_reason": response.detail.finish_reason or ""}
    return {"gen_ai.output.messages": scrub(json.dumps([message], ensure_ascii=False, default=str))}
