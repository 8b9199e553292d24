"""The one instrument catalogue: every metric statek records, with its name, unit, description,
histogram buckets and Prometheus series.

The Grafana dashboards are tested against :data:`PROMETHEUS_SERIES`, so a rename here that would
silently break a panel fails a test instead. Histogram buckets are the OpenTelemetry GenAI semantic
conventions' ``ExplicitBucketBoundaries`` (``gen-ai-metrics.md``; the same lists as
``opentelemetry-instrumentation-openai-v2``'s ``instruments.py``).

Labels are low-cardinality only: provider, model, token type, outcome, error type, cost status and
direction. A job id, request id or user id is never a metric attribute (it goes on spans).
:class:`Instruments` binds the catalogue to one ``Meter``; see its docstring for why the counters
are asynchronous.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.trace import NonRecordingSpan, SpanContext, set_span_in_context

from . import telemetry_buckets
from .cardinality import LabelGuard
from .telemetry_buckets import HistogramCell

_log = logging.getLogger("statek.telemetry")

__all__ = [
    "BUDGET_LEASE_EXPIRIES",
    "BUDGET_REFUSALS",
    "BUDGET_STORE_ERRORS",
    "BYTES",
    "CATALOGUE",
    "COST",
    "COST_DRIFT",
    "DURATION_BUCKETS",
    "FAULT_INSTRUMENTS",
    "FAULT_SERIES",
    "LABEL_OVERFLOW",
    "NO_EXEMPLAR",
    "OPERATION_DURATION",
    "PROMETHEUS_SERIES",
    "REQUESTS",
    "RETRIES",
    "TIME_TO_FIRST_CHUNK",
    "TOKENS",
    "TOKEN_BUCKETS",
    "TOKEN_USAGE",
    "UNMETERED_REQUESTS",
    "CounterCell",
    "HistogramCell",
    "InstrumentSpec",
    "Instruments",
    "by_name",
]

# ----------------------------------------------------------------------------- attribute keys
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
"""The standard key: only ``input`` and ``output`` (on ``gen_ai.client.token.usage``)."""
STATEK_TOKEN_TYPE = "statek.token.type"
"""statek's own key on ``statek.tokens``, whose values go beyond the standard two (see :data:`TOKEN_TYPES`)."""
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
NETWORK_IO_DIRECTION = "network.io.direction"
STATEK_COST_STATUS = "statek.cost.status"
STATEK_OUTCOME = "statek.outcome"
JOB_LABEL_PREFIX = "statek.job."
"""Allow-listed job attributes become metric attributes ``statek.job.<key>`` (never ``statek.job.id``)."""

GEN_AI_TOKEN_MODALITY = "gen_ai.token.modality"

SEMCONV_OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_GENAI = "gen_ai_latest_experimental"
"""Value of :data:`SEMCONV_OPT_IN_ENV` that adds the GenAI conventions' main-branch names (see
:data:`INFERENCE_USAGE`), as OpenTelemetry's own instrumentations handle the transition."""

INFERENCE_USAGE: tuple[tuple[str, str], ...] = (
    ("gen_ai.client.inference.usage.input_tokens", "input"),
    ("gen_ai.client.inference.usage.output_tokens", "output"),
    ("gen_ai.client.inference.usage.cache_read.input_tokens", "cache_read"),
    ("gen_ai.client.inference.usage.cache_write.input_tokens", "cache_write"),
    ("gen_ai.client.inference.usage.reasoning.output_tokens", "reasoning"),
)
"""The main branch's token counters (semantic-conventions-genai, after PR #374) and the
``statek.token.type`` each one reads: they are the same cells as ``statek.tokens``, observed under the
standard names with ``gen_ai.token.modality="text"``, so they cost the call nothing."""

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
"""Values of ``statek.token.type`` on ``statek.tokens``. Not ``gen_ai.token.type``: that standard key
allows only ``input`` and ``output``, which is all ``gen_ai.client.token.usage`` records."""

# ----------------------------------------------------------------------------- buckets
TOKEN_BUCKETS: tuple[float, ...] = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
"""``gen_ai.client.token.usage`` bucket boundaries (OpenTelemetry GenAI semantic conventions)."""
DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""``gen_ai.client.operation.duration`` bucket boundaries in seconds (same source)."""


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One instrument: its OpenTelemetry identity and its Prometheus exposition.

    ``prometheus_name`` is the metric family name (counters get ``_total`` on their sample);
    ``prometheus_unit`` is the OpenMetrics ``# UNIT`` (the family name already ends with it).
    """

    name: str
    kind: Literal["histogram", "counter"]
    unit: str
    description: str
    prometheus_name: str
    prometheus_unit: str
    attributes: tuple[str, ...]
    buckets: tuple[float, ...] | None = None

    @property
    def prometheus_series(self) -> tuple[str, ...]:
        """Every sample name this instrument produces in the exposition."""
        if self.kind == "histogram":
            return tuple(self.prometheus_name + suffix for suffix in ("_bucket", "_sum", "_count"))
        return (self.prometheus_name + "_total",)


_MODEL = (GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL)

TOKEN_USAGE = InstrumentSpec(
    "gen_ai.client.token.usage",
    "histogram",
    "{token}",
    "Measures number of input and output tokens used",
    "gen_ai_client_token_usage",
    "",
    (GEN_AI_OPERATION_NAME, *_MODEL, GEN_AI_RESPONSE_MODEL, GEN_AI_TOKEN_TYPE, SERVER_ADDRESS, SERVER_PORT),
    TOKEN_BUCKETS,
)
OPERATION_DURATION = InstrumentSpec(
    "gen_ai.client.operation.duration",
    "histogram",
    "s",
    "GenAI operation duration",
    "gen_ai_client_operation_duration_seconds",
    "seconds",
    (GEN_AI_OPERATION_NAME, *_MODEL, GEN_AI_RESPONSE_MODEL, ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT),
    DURATION_BUCKETS,
)
TIME_TO_FIRST_CHUNK = InstrumentSpec(
    "gen_ai.client.operation.time_to_first_chunk",
    "histogram",
    "s",
    "Time from the request to the first chunk of a streamed answer",
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "seconds",
    (GEN_AI_OPERATION_NAME, *_MODEL, GEN_AI_RESPONSE_MODEL, ERROR_TYPE),
    DURATION_BUCKETS,
)
TOKENS = InstrumentSpec(
    "statek.tokens",
    "counter",
    "{token}",
    "Tokens used, by type: input (whole prompt), output (incl. reasoning), cache_read, cache_write, reasoning",
    "statek_tokens",
    "",
    (*_MODEL, STATEK_TOKEN_TYPE),
)
COST = InstrumentSpec(
    # The currency is in the name and the unit is an annotation: every OpenTelemetry-to-Prometheus
    # translation (the Collector, Prometheus' OTLP receiver, opentelemetry-exporter-prometheus) drops
    # a braced unit, so all of them name it statek_cost_usd_total, like statek's own /metrics. With
    # unit "USD" they appended "_USD" (statek_cost_USD_total) and the dashboard's cost panels went empty.
    "statek.cost.usd",
    "counter",
    "{USD}",
    "Cost of provider calls in US dollars, by how it was obtained (calculated, reported, unpriced)",
    "statek_cost_usd",
    "usd",
    (*_MODEL, STATEK_COST_STATUS),
)
COST_DRIFT = InstrumentSpec(
    "statek.cost.drift_requests",
    "counter",
    "{request}",
    "Calls whose provider-reported cost differs from the price table's by more than 1 % (a stale table)",
    "statek_cost_drift_requests",
    "",
    _MODEL,
)
REQUESTS = InstrumentSpec(
    "statek.requests",
    "counter",
    "{request}",
    "Provider calls by outcome (success, error), error type and cost status",
    "statek_requests",
    "",
    (*_MODEL, STATEK_OUTCOME, ERROR_TYPE, STATEK_COST_STATUS),
)
BYTES = InstrumentSpec(
    "statek.bytes",
    "counter",
    "By",
    "Request and response body bytes on the wire, over all attempts",
    "statek_bytes",
    "bytes",
    (*_MODEL, NETWORK_IO_DIRECTION),
)
RETRIES = InstrumentSpec(
    "statek.retries",
    "counter",
    "{retry}",
    "HTTP attempts that failed and were retried, by error type (HTTP status or exception class)",
    "statek_retries",
    "",
    (*_MODEL, ERROR_TYPE),
)

BUDGET_REFUSALS = InstrumentSpec(
    "statek.budget.refusals",
    "counter",
    "{call}",
    "Calls a job's budget refused before they were sent (nothing sent, nothing billed)",
    "statek_budget_refusals",
    "",
    _MODEL,
)

STATEK_LABEL = "statek.label"
"""On :data:`LABEL_OVERFLOW`: the metric attribute whose values overflowed (``gen_ai.request.model``, ...)."""

LABEL_OVERFLOW = InstrumentSpec(
    "statek.metric_label.overflow",
    "counter",
    "{use}",
    "Uses of a label value recorded as _other_ because the label had too many distinct values "
    "(the cardinality guard; see statek.cardinality)",
    "statek_metric_label_overflow",
    "",
    (STATEK_LABEL,),
)

UNMETERED_REQUESTS = InstrumentSpec(
    "statek.unmetered_requests",
    "counter",
    "{request}",
    "Requests that looked like LLM calls but could not be metered, by host and reason",
    "statek_unmetered_requests",
    "",
    (SERVER_ADDRESS, "statek.unmetered.reason"),
)

STATEK_CONSUMER = "statek.consumer"
"""Which consumer of the call record failed (``span``, ``metrics``, ``jobs``, ``budget``, ``ledger``, ...)."""

CONSUMER_ERRORS = InstrumentSpec(
    "statek.consumer.errors",
    "counter",
    "{error}",
    "Calls or jobs a consumer of the metering record (span, metrics, job usage, budget, ledger) failed to record",
    "statek_consumer_errors",
    "",
    (STATEK_CONSUMER,),
)

STATEK_BUDGET_STORE = "statek.budget.store"
"""Which shared-budget store (``redis://host:port/db``, never with credentials)."""

BUDGET_STORE_ERRORS = InstrumentSpec(
    "statek.budget.store.errors",
    "counter",
    "{error}",
    "Commands to the shared budget store (Redis) that failed; the call followed the store's on_error policy",
    "statek_budget_store_errors",
    "",
    (STATEK_BUDGET_STORE,),
)

BUDGET_LEASE_EXPIRIES = InstrumentSpec(
    "statek.budget.lease_expiries",
    "counter",
    "{reservation}",
    "Budget reservations returned to the shared store because their process stopped renewing them",
    "statek_budget_lease_expiries",
    "",
    (STATEK_BUDGET_STORE,),
)

CATALOGUE: tuple[InstrumentSpec, ...] = (
    TOKEN_USAGE,
    OPERATION_DURATION,
    TIME_TO_FIRST_CHUNK,
    TOKENS,
    COST,
    COST_DRIFT,
    REQUESTS,
    BYTES,
    RETRIES,
    BUDGET_REFUSALS,
    CONSUMER_ERRORS,
    BUDGET_STORE_ERRORS,
    BUDGET_LEASE_EXPIRIES,
    UNMETERED_REQUESTS,
    LABEL_OVERFLOW,
)
"""Every instrument statek records, in exposition order."""

PROMETHEUS_SERIES: frozenset[str] = frozenset(s for spec in CATALOGUE for s in spec.prometheus_series)
"""Every Prometheus sample name statek exposes (histograms with ``_bucket``/``_sum``/``_count``)."""

FAULT_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    CONSUMER_ERRORS,
    UNMETERED_REQUESTS,
    BUDGET_STORE_ERRORS,
    BUDGET_LEASE_EXPIRIES,
    LABEL_OVERFLOW,
)
FAULT_SERIES: frozenset[str] = frozenset(s for spec in FAULT_INSTRUMENTS for s in spec.prometheus_series)
"""The series of counters of faults (a consumer that failed, a request that could not be metered, a
budget store that failed or lost a lease, a label value past the cardinality guard): they appear once the first fault happened, with the labels
that say where; traffic without faults shows every other series."""

_BY_NAME = {spec.name: spec for spec in CATALOGUE}


def by_name(name: str) -> InstrumentSpec | None:
    """The catalogue entry for an OpenTelemetry instrument name, ``None`` for anything else."""
    return _BY_NAME.get(name)


# ----------------------------------------------------------------------------- binding to a meter
class CounterCell:
    """The cumulative value of one counter series (one attribute set) and its latest exemplar.

    Written only under the owning :class:`Instruments`' lock; read without it by the collection
    callback (reading one attribute is atomic). ``value`` is an ``int`` or, for cost, an exact
    ``Decimal`` that becomes a float only when it is observed.
    """

    __slots__ = ("attributes", "exemplar", "value")

    def __init__(self, attributes: Mapping[str, str], zero: int | Decimal = 0) -> None:
        self.attributes = attributes
        self.value: int | Decimal = zero
        self.exemplar: SpanContext | None = None


class Instruments:
    """The catalogue bound to one ``Meter``: three synchronous histograms and six asynchronous counters.

    Why the counters are asynchronous: a synchronous ``Counter.add`` through the OpenTelemetry SDK
    costs 6-12 µs (attribute cleaning and hashing per reader), and a call touches six or more counter
    series, which alone would blow the 50 µs per-call budget. So each counter series is a
    :class:`CounterCell` that a call bumps under one lock (well under a microsecond), and an
    ``ObservableCounter`` reports the cumulative values whenever a reader collects. Exporters see
    ordinary OpenTelemetry counters; nothing is counted twice. Token and cost observations carry the
    context of the latest sampled span that touched the series, so exemplars hold a real trace id
    (the exemplar's value is the series total at collection, as for any asynchronous counter).

    The histograms stay synchronous instruments (the API has no asynchronous histogram). When
    ``aggregate`` is true (the meter provider aggregates them with explicit buckets at statek's
    boundaries: :func:`statek.telemetry_buckets.declare_plain`), a call adds to a
    :class:`~statek.telemetry_buckets.HistogramCell` (statek-owned buckets per series, under the same
    lock), and :meth:`flush_histograms`, run by the counters' collection callback before the SDK reads
    any storage, replays the deltas through the public ``Histogram.record``
    (:mod:`statek.telemetry_buckets`). Under that aggregation a finished call is not even counted on
    the calling thread: the metrics consumer hands it to :meth:`defer`, and it is counted before the
    next collection or by a background thread (:data:`BACKLOG_WAKE`). Every collection sees every
    call that finished before it. Otherwise (``aggregating`` false: an application's provider
    that may have views, a no-op meter) calls record synchronously, exact under any aggregation.
    """

    def __init__(self, meter: Meter, *, latest_genai: bool = False, aggregate: bool = False) -> None:
        self.lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._backlog: deque[Any] = deque()
        self._drain_lock = threading.Lock()
        _all_instruments.add(self)
        self._histogram_cells: list[HistogramCell] = []
        self.token_usage: Histogram = meter.create_histogram(
            TOKEN_USAGE.name,
            unit=TOKEN_USAGE.unit,
            description=TOKEN_USAGE.description,
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self.duration: Histogram = meter.create_histogram(
            OPERATION_DURATION.name,
            unit=OPERATION_DURATION.unit,
            description=OPERATION_DURATION.description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.time_to_first_chunk: Histogram = meter.create_histogram(
            TIME_TO_FIRST_CHUNK.name,
            unit=TIME_TO_FIRST_CHUNK.unit,
            description=TIME_TO_FIRST_CHUNK.description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.aggregating = aggregate
        """Whether calls add to :class:`HistogramCell` s (replayed at collection) rather than record."""
        self._cells: dict[str, list[CounterCell]] = {}
        for spec, exemplars in (
            (TOKENS, True),
            (COST, True),
            (COST_DRIFT, False),
            (REQUESTS, False),
            (BYTES, False),
            (RETRIES, False),
            (BUDGET_REFUSALS, False),
            (CONSUMER_ERRORS, False),
            (UNMETERED_REQUESTS, False),
        ):
            cells: list[CounterCell] = []
            self._cells[spec.name] = cells
            meter.create_observable_counter(
                spec.name,
                callbacks=[_observer(cells, exemplars, self.flush_histograms)],
                unit=spec.unit,
                description=spec.description,
            )
        for spec, event in ((BUDGET_STORE_ERRORS, "error"), (BUDGET_LEASE_EXPIRIES, "lease_expiry")):
            meter.create_observable_counter(
                spec.name, callbacks=[_store_observer(event)], unit=spec.unit, description=spec.description
            )
        self._guards: dict[str, LabelGuard] = {}
        meter.create_observable_counter(
            LABEL_OVERFLOW.name,
            callbacks=[self._observe_overflow],
            unit=LABEL_OVERFLOW.unit,
            description=LABEL_OVERFLOW.description,
        )
        if latest_genai:
            for name, token_type in INFERENCE_USAGE:
                meter.create_observable_counter(
                    name,
                    callbacks=[_inference_usage_observer(self._cells[TOKENS.name], token_type)],
                    unit="{token}",
                    description=f"Provider-reported {token_type.replace('_', ' ')} tokens",
                )

    def guard(self, label: str, limit: int, fix: str = "") -> LabelGuard:
        """The cardinality guard of metric attribute ``label`` for these instruments (created on first
        use with ``limit`` and ``fix``); its overflow count is exported as :data:`LABEL_OVERFLOW`."""
        guard = self._guards.get(label)
        if guard is None:
            with self.lock:
                guard = self._guards.get(label)
                if guard is None:
                    guard = self._guards[label] = LabelGuard(label, limit, fix=fix)
        return guard

    def _observe_overflow(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(guard.overflowed, {STATEK_LABEL: label}, NO_EXEMPLAR)
            for label, guard in tuple(self._guards.items())
        ]

    def histogram_cell(self, histogram: Histogram, attributes: Mapping[str, str]) -> HistogramCell:
        """A new series of ``histogram`` (``token_usage`` or ``duration``). Callers cache it: one cell
        per attribute set, ever. Add to it under :attr:`lock` when :attr:`aggregating`, else
        :meth:`record_now`."""
        boundaries = TOKEN_BUCKETS if histogram is self.token_usage else DURATION_BUCKETS
        cell = HistogramCell(histogram, attributes, boundaries)
        with self.lock:
            self._histogram_cells.append(cell)
        return cell

    def record_now(self, cell: HistogramCell, value: float, exemplar: SpanContext | None = None) -> None:
        """Record one measurement of ``cell`` through the SDK at once (when not :attr:`aggregating`);
        ``exemplar``: the sampled span it may become an exemplar of."""
        cell.histogram.record(value, cell.attributes, _exemplar_context(exemplar))

    def defer(self, item: Any) -> None:
        """Hand ``item`` (a finished call's counts) to the backlog counter (:func:`count_backlog_with`):
        it is counted before the next collection of these instruments, by the collecting thread, or
        by a background thread once :data:`BACKLOG_WAKE` items wait, whichever comes first. So the
        calling thread pays one append, and no item waits past a collection or grows memory without
        bound. Thread-safe; never blocks."""
        backlog = self._backlog
        backlog.append(item)
        if len(backlog) % BACKLOG_WAKE == 0:
            _drainer.wake(self)

    @property
    def pending(self) -> int:
        """Deferred calls not counted yet (see :meth:`defer`)."""
        return len(self._backlog)

    def drain_backlog(self) -> None:
        """Count every deferred item now (see :meth:`defer`); run before every collection."""
        backlog = self._backlog
        if not backlog:
            return
        count = _backlog_counter
        with self._drain_lock:
            while backlog:
                count(backlog.popleft())

    def flush_histograms(self) -> None:
        """Count the deferred calls (:meth:`drain_backlog`), then replay every histogram cell's delta
        into the SDK, each measurement exactly once. The deltas are taken under :attr:`lock` and
        replayed outside it, so calls are not held up; a second reader collecting meanwhile waits for
        the replay, so it sees those measurements too."""
        self.drain_backlog()
        with self._flush_lock:
            with self.lock:
                deltas = [
                    (cell, delta) for cell in self._histogram_cells if (delta := cell.take()) is not None
                ]
            for cell, delta in deltas:
                telemetry_buckets.replay(cell, delta, NO_EXEMPLAR)

    def cell(
        self, spec: InstrumentSpec, attributes: Mapping[str, str], zero: int | Decimal = 0
    ) -> CounterCell:
        """A new series of counter ``spec``. Callers cache it: one cell per attribute set, ever."""
        cell = CounterCell(attributes, zero)
        with self.lock:
            self._cells[spec.name].append(cell)
        return cell


BACKLOG_WAKE = 256
"""Deferred calls (:meth:`Instruments.defer`) that wake the background thread to count them."""

_all_instruments: weakref.WeakSet[Instruments] = weakref.WeakSet()


def _not_counted(item: Any) -> None:
    if not _dropped:  # only without statek.telemetry's metrics consumer, which registers the counter
        _dropped.append(True)
        _log.error("statek: deferred calls are dropped: no backlog counter is registered")


_dropped: list[bool] = []


_backlog_counter: Callable[[Any], None] = _not_counted


def count_backlog_with(counter: Callable[[Any], None]) -> None:
    """Make ``counter`` count the items :meth:`Instruments.defer` receives (the metrics consumer's
    count of one finished call). It must not raise: what it cannot count it logs and counts itself."""
    global _backlog_counter
    _backlog_counter = counter


class _BacklogDrainer:
    """The background thread that counts backlogs grown to :data:`BACKLOG_WAKE` items, started on
    first need. A fork drains every backlog first, so that a child never counts its parent's calls,
    and the child starts its own thread when it needs one."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(before=self._drain_all, after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        self._reset()
        for instruments in tuple(_all_instruments):  # the parent's drainer may have held one
            instruments._drain_lock = threading.Lock()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._due: set[Instruments] = set()
        self._event = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, instruments: Instruments) -> None:
        with self._lock:
            self._due.add(instruments)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="statek-backlog", daemon=True)
                self._thread.start()
        self._event.set()

    def _run(self) -> None:
        while True:
            self._event.wait()
            self._event.clear()
            with self._lock:
                due, self._due = self._due, set()
            for instruments in due:
                try:
                    instruments.drain_backlog()
                except Exception:  # noqa: BLE001 - the counter logs and counts its own failures
                    _log.exception("statek could not count deferred calls; the next collection will")

    def _drain_all(self) -> None:
        for instruments in tuple(_all_instruments):
            instruments.drain_backlog()


_drainer = _BacklogDrainer()


def _observer(
    cells: list[CounterCell], exemplars: bool, before: Callable[[], None]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        before()
        out = []
        for cell in tuple(cells):
            value = cell.value
            context = _exemplar_context(cell.exemplar) if exemplars else NO_EXEMPLAR
            out.append(
                Observation(float(value) if isinstance(value, Decimal) else value, cell.attributes, context)
            )
        return out

    return observe


def _store_observer(event: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """Report the budget store's counted ``event`` s (process-wide counts kept by the store itself)."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        from .executors.budget_store import store_events

        return [
            Observation(count, {STATEK_BUDGET_STORE: store})
            for (kind, store), count in store_events().items()
            if kind == event
        ]

    return observe


def _inference_usage_observer(
    cells: list[CounterCell], token_type: str
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for cell in tuple(cells):
            attributes = dict(cell.attributes)
            if attributes.pop(STATEK_TOKEN_TYPE, None) != token_type:
                continue
            provider = attributes.get(GEN_AI_PROVIDER_NAME, "")
            attributes[GEN_AI_OPERATION_NAME] = operation_name(provider)
            attributes[GEN_AI_TOKEN_MODALITY] = "text"
            out.append(Observation(int(cell.value), attributes, NO_EXEMPLAR))  # token counts: ints
        return out

    return observe


GENERATE_CONTENT_PROVIDERS = frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai", "gemini_compatible"})
"""Providers whose calls are ``generate_content`` operations (the GenAI conventions' name for Gemini's API)."""


def operation_name(provider: str) -> str:
    """``gen_ai.operation.name`` for a call to ``provider`` (its ``gen_ai.provider.name``)."""
    return "generate_content" if provider in GENERATE_CONTENT_PROVIDERS else "chat"


def latest_genai_opted_in(raw: str | None) -> bool:
    """Whether an ``OTEL_SEMCONV_STABILITY_OPT_IN`` value (comma-separated) asks for :data:`LATEST_GENAI`."""
    return LATEST_GENAI in {part.strip().lower() for part in (raw or "").split(",")}


NO_EXEMPLAR = Context({"statek.no_exemplar": True})
"""A context without a span: a measurement made with it never becomes an exemplar. Not empty on
purpose: the SDK replaces a falsy (empty) context with the current one."""


def _exemplar_context(span_context: SpanContext | None) -> Context:
    if span_context is None:
        return NO_EXEMPLAR
    return set_span_in_context(NonRecordingSpan(span_context), NO_EXEMPLAR)
