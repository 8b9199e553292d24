"""The metric instruments' consumer of the call record: counters and histograms per series.

Attribute dicts, counter cells and histogram cells are built once per (provider, model, job labels,
server, operation) in a :class:`Series`. Counting a call bumps its counters and adds its histogram
values to statek-owned buckets under one lock, and a collection replays the buckets into the SDK (see
:class:`statek.instruments.Instruments` and :mod:`statek.telemetry_buckets`). Under statek's own
aggregation the calling thread does none of it: the call is counted from its record before the next
collection (:class:`MetricsConsumer`).

Every label value passes the cardinality guard when its series is created (:func:`series_of`,
:mod:`statek.label_guards`): a model name or allow-listed job attribute value beyond the limits is
recorded as ``_other_``, so any stream of names creates a bounded number of series.

Series are created when they first happen, never ahead: a pre-created zero would claim a state
that did not occur (``statek_cost_usd_total{statek_cost_status="calculated"} 0`` for a model nothing
prices). The first increment of a new series is still seen: ``/metrics`` and the OTLP push show it
at zero first (:mod:`statek.exporters.debut`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import instruments as inst
from ..label_guards import guard_job_labels, model_admitter
from ..metering.types import drifted
from .config import TelemetryConfig, current_config

if TYPE_CHECKING:
    from .._http import RetryEvent
    from ..call_record import CallRecord, CallSite
    from ..metering.types import CallCost
    from ..types import CallDetail

__all__ = ["Counted", "MetricsConsumer", "Series", "count_consumer_error", "series_of"]

_log = logging.getLogger("statek.telemetry")


class Series:
    """The metric cells of every call to one (provider, model, job labels, server, operation)."""

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
        "ok_requests",
        "operation",
        "received",
        "refusals",
        "retries",
        "sent",
        "server",
        "tokens",
    )

    def __init__(
        self,
        instruments: inst.Instruments,
        provider: str,
        model: str,
        labels: dict[str, str],
        server: dict[str, Any],
        operation: str,
        admit_response: Callable[[str], str] = lambda model: model,
    ) -> None:
        self.instruments = instruments
        self.lock = threading.Lock()
        self.operation = operation
        self.admit_response = admit_response
        """The cardinality guard of response model names."""
        base = {inst.GEN_AI_PROVIDER_NAME: provider, inst.GEN_AI_REQUEST_MODEL: model, **labels}
        self.base = base
        self.server = server  # server.address / server.port: on spans and the GenAI histograms
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
        self.refusals: inst.CounterCell | None = None

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
        """The duration series of calls that failed with ``error_type``."""
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
        """The request counter of calls that failed with ``error_type``."""
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
        """The retry counter for attempts that failed with ``error_type``."""
        return self._keyed(self.retries, inst.RETRIES, error_type, {inst.ERROR_TYPE: error_type})

    def refusal_cell(self) -> inst.CounterCell:
        """The budget-refusal counter: by provider and model only (never by job labels)."""
        cell = self.refusals
        if cell is None:
            cell = self.refusals = _refusal_cell(
                self.instruments, self.base[inst.GEN_AI_PROVIDER_NAME], self.base[inst.GEN_AI_REQUEST_MODEL]
            )
        return cell

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
        self.instruments, self.spec, self.base, self.key, self.lock = instruments, spec, base, key, lock
        self.zero = zero

    def __missing__(self, value: str) -> inst.CounterCell:
        with self.lock:  # two cells with one attribute set would be observed twice
            cell = self.get(value)
            if cell is None:
                cell = self[value] = self.instruments.cell(
                    self.spec, {**self.base, self.key: value}, self.zero
                )
            return cell


_series_lock = threading.Lock()
_series_by_instruments: weakref.WeakKeyDictionary[inst.Instruments, dict[tuple[Any, ...], Series]] = (
    weakref.WeakKeyDictionary()
)


def series_of(config: TelemetryConfig, record: CallRecord | Counted) -> Series:
    """The series a call belongs to: (provider, model, allow-listed job labels, server, operation)."""
    labels = record.labels if isinstance(record, Counted) else _labels_of(config, record.job)
    site = record.site
    provider, model, operation = site.genai_provider, site.request_model, site.operation
    server = (site.server_address, site.server_port)
    key = (provider, model, labels, server, operation)
    cache = _series_by_instruments.get(config.instruments)
    series = cache.get(key) if cache is not None else None
    if series is None:  # a new series, or a value the cardinality guard refused (counted each time)
        pricing_provider = site.pricing_provider or provider
        model = model_admitter(config.instruments, pricing_provider)(model)
        labels = guard_job_labels(config.instruments, config.job_label_keys, labels)
        key = (provider, model, labels, server, operation)
        series = cache.get(key) if cache is not None else None
    if series is None:
        with _series_lock:
            cache = _series_by_instruments.setdefault(config.instruments, {})
            series = cache.get(key)
            if series is None:
                named = {inst.JOB_LABEL_PREFIX + k: v for k, v in zip(config.job_label_keys, labels)}
                where: dict[str, Any] = {}
                if server[0]:
                    where[inst.SERVER_ADDRESS] = server[0]
                    if server[1]:
                        where[inst.SERVER_PORT] = server[1]
                admit_response = model_admitter(
                    config.instruments, pricing_provider, inst.GEN_AI_RESPONSE_MODEL
                )
                series = cache[key] = Series(
                    config.instruments, provider, model, named, where, operation, admit_response
                )
    return series


def _labels_of(config: TelemetryConfig, job: Any) -> tuple[str, ...]:
    """The values of the allow-listed job attributes (``""`` for one the job lacks)."""
    if not config.job_label_keys:
        return ()
    attributes = job.attributes if job is not None else {}
    return tuple(attributes.get(k, "") for k in config.job_label_keys)


class Counted(NamedTuple):
    """What counting a finished call needs of its record, taken on the calling thread.

    Only this waits in the backlog, not the record: a record keeps its span, request, response and
    job alive, and hundreds of them waiting made the garbage collector's young generations several
    times as costly as the counting saved (measured: 29 -> 96 µs of collection per call). These
    fields are strings, numbers and tuples of them, plus the long-lived configuration and call site."""

    config: TelemetryConfig
    site: CallSite
    labels: tuple[str, ...]
    outcome: str
    error_type: str | None
    detail: CallDetail | None
    cost: CallCost | None
    span_context: Any
    """The call span's context, or ``None``: token and cost exemplars when it was sampled."""
    duration: float
    first_chunk_s: float | None
    bytes_sent: int
    bytes_received: int


_new_counted: Callable[..., Counted] = tuple.__new__  # skips the NamedTuple's Python-level __new__


class MetricsConsumer:
    """Counts every call into the instruments of the configuration in force when it started.

    Under statek's own aggregation (``Instruments.aggregating``) the calling thread only takes the
    call's :class:`Counted` facts and appends them to the instruments' backlog; they are counted
    (series found, counters bumped, histogram buckets filled) before the next collection, or by a
    background thread once a batch has waited (:meth:`statek.instruments.Instruments.defer`). Every
    collection still sees every call that finished before it. Otherwise (an application's meter
    provider, whose views statek cannot see) the call is counted synchronously. Refusals and
    retries, rare, count at once.
    """

    name = "metrics"

    def start(self, record: CallRecord) -> None:
        record.series = current_config()  # the configuration the call is counted under

    def finish(self, record: CallRecord) -> None:
        if record.outcome == "refused":
            _count_refusal(record)
            return
        config: TelemetryConfig | None = record.series
        if config is None:  # start failed or telemetry is off: nothing was opened
            return
        counted = _new_counted(
            Counted,
            (
                config,
                record.site,
                _labels_of(config, record.job) if config.job_label_keys else (),
                record.outcome,
                record.error_type,
                record.detail,
                record.cost,
                record.span_context,
                record.duration,
                record.first_chunk_s,
                record.bytes_sent,
                record.bytes_received,
            ),
        )
        instruments = config.instruments
        if instruments.aggregating:
            instruments.defer(counted)
        else:
            _count(counted)

    def retry(self, record: CallRecord, event: RetryEvent) -> None:
        """``statek.retries`` by error type."""
        config: TelemetryConfig | None = record.series
        if config is not None:
            cell = series_of(config, record).retry_cell(event.error_type)
            with config.instruments.lock:
                cell.value += 1


def _count_refusal(record: CallRecord) -> None:
    config = current_config()
    if config is not None:
        cell = series_of(config, record).refusal_cell()
        with config.instruments.lock:
            cell.value += 1


def _count_deferred(counted: Counted) -> None:
    """Count one call :meth:`MetricsConsumer.finish` deferred; a failure is logged once and counted."""
    try:
        _count(counted)
    except Exception:  # noqa: BLE001 - one call's metrics never break the collection
        if not _deferred_failed:
            _deferred_failed.append(True)
            _log.exception("statek: the metrics consumer failed to count a call; counting goes on")
        count_consumer_error(MetricsConsumer.name)


_deferred_failed: list[bool] = []
inst.count_backlog_with(_count_deferred)


def _count(counted: Counted) -> None:
    """Count a finished call (answered or failed) into its series, its stream's time to first chunk
    (``gen_ai.client.operation.time_to_first_chunk``) included."""
    series = series_of(counted.config, counted)
    instruments = series.instruments
    aggregating = instruments.aggregating
    first_chunk = counted.first_chunk_s
    if first_chunk is not None:
        first_chunk_cell = series.first_chunk_cell()
        if aggregating:
            with instruments.lock:
                first_chunk_cell.add(first_chunk)
        else:
            instruments.record_now(first_chunk_cell, first_chunk)
    if counted.outcome == "error":
        error_type = counted.error_type or "error"
        duration_cell = series.error_duration_cell(error_type)
        cell = series.error_cell(error_type)
        with instruments.lock:
            cell.value += 1
            series.sent.value += counted.bytes_sent
            series.received.value += counted.bytes_received
            if aggregating:
                duration_cell.add(counted.duration)
        if not aggregating:
            instruments.record_now(duration_cell, counted.duration)
        return
    stats = counted.detail
    if stats is None:
        return
    exemplar = counted.span_context
    if exemplar is not None and not exemplar.trace_flags.sampled:
        exemplar = None
    tokens = series.tokens
    cost, ok_requests, extra_tokens = series.success_cells(stats)
    in_cell, out_cell, duration_cell = series.histogram_cells(stats.response_model)
    duration = counted.duration
    with instruments.lock:
        _bump(tokens["input"], stats.input_tokens, exemplar)
        _bump(tokens["output"], stats.output_tokens, exemplar)
        for cell, count in extra_tokens:
            _bump(cell, count, exemplar)
        if cost is not None and stats.priced_cost is not None:
            _bump(cost, stats.priced_cost, exemplar)
        ok_requests.value += 1
        if counted.cost is not None and drifted(counted.cost):
            series.drift.value += 1
        series.sent.value += stats.total_bytes_sent
        series.received.value += stats.total_bytes_received
        if aggregating:
            duration_cell.add(duration, exemplar)
            in_cell.add(stats.input_tokens)
            out_cell.add(stats.output_tokens)
    if not aggregating:
        instruments.record_now(duration_cell, duration, exemplar)
        instruments.record_now(in_cell, stats.input_tokens)
        instruments.record_now(out_cell, stats.output_tokens)


def _bump(cell: inst.CounterCell, amount: int | Decimal, exemplar: Any) -> None:
    cell.value += amount
    if exemplar is not None:
        cell.exemplar = exemplar


_cells_lock = threading.Lock()
_refusal_cells: weakref.WeakKeyDictionary[inst.Instruments, dict[tuple[str, str], inst.CounterCell]] = (
    weakref.WeakKeyDictionary()
)
_consumer_error_cells: weakref.WeakKeyDictionary[inst.Instruments, dict[str, inst.CounterCell]] = (
    weakref.WeakKeyDictionary()
)


def _refusal_cell(instruments: inst.Instruments, provider: str, model: str) -> inst.CounterCell:
    with _cells_lock:  # one cell per series, ever: a second one would be reported twice
        cells = _refusal_cells.setdefault(instruments, {})
        cell = cells.get((provider, model))
        if cell is None:
            attributes = {inst.GEN_AI_PROVIDER_NAME: provider, inst.GEN_AI_REQUEST_MODEL: model}
            cell = cells[(provider, model)] = instruments.cell(inst.BUDGET_REFUSALS, attributes)
    return cell


def count_consumer_error(consumer: str) -> None:
    """Count one call or job that consumer ``consumer`` failed to record (``statek.consumer.errors``).
    Never raises."""
    config = current_config()
    if config is None:
        return
    try:
        instruments = config.instruments
        with _cells_lock:
            cells = _consumer_error_cells.setdefault(instruments, {})
            cell = cells.get(consumer)
            if cell is None:
                cell = cells[consumer] = instruments.cell(
                    inst.CONSUMER_ERRORS, {inst.STATEK_CONSUMER: consumer}
                )
        with instruments.lock:
            cell.value += 1
    except Exception:  # noqa: BLE001 - the error was logged by the caller already
        _log.debug("statek could not count a consumer error", exc_info=True)
