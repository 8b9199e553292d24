"""Ledger rows as OpenTelemetry log records (events ``statek.usage.call`` / ``statek.usage.job``), so
that a Collector can route who-spent-what to any store.

Each row becomes one log record: timestamp the record's start, observed timestamp its end, trace
and span ids those of the call's span, and attributes ``statek.usage.<field>`` for every field that
has a value (money as exact decimal strings, times as ISO 8601) plus ``statek.job.<key>`` for every
job attribute. The records go through an OpenTelemetry SDK ``LoggerProvider`` with a batch processor
and the exporter given (OTLP, as :func:`statek.exporters.otlp.log_exporter` builds it from the
``OTEL_EXPORTER_OTLP_*`` settings, or the console's). The logs SDK lives in
``opentelemetry.sdk._logs``: the OpenTelemetry Python project's documented (still experimental)
logs API, the only one there is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from .rows import decimal_text

__all__ = ["CALL_EVENT", "JOB_EVENT", "OtlpLogSink", "log_attributes"]

CALL_EVENT = "statek.usage.call"
JOB_EVENT = "statek.usage.job"
_PREFIX = "statek.usage."
_SKIP = frozenset({"attributes", "start", "end", "trace_id", "span_id"})


def log_attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenTelemetry attributes of a ledger row (fields without a value are left out)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in _SKIP or value is None:
            continue
        if isinstance(value, Decimal):
            value = decimal_text(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, list):
            if not value:
                continue
            value = tuple(value)
        out[_PREFIX + name] = value
    for key, value in row["attributes"].items():
        out[f"statek.job.{key}"] = value
    return out


def _span_context(trace_id: str | None, span_id: str | None) -> Any:
    """The context of the call's span, so the record carries its trace and span ids (``None``: none)."""
    if not trace_id or not span_id:
        return None
    from opentelemetry import trace

    span = trace.NonRecordingSpan(
        trace.SpanContext(
            int(trace_id, 16), int(span_id, 16), False, trace.TraceFlags(trace.TraceFlags.SAMPLED)
        )
    )
    return trace.set_span_in_context(span)


def _span_ids(trace_id: str | None, span_id: str | None) -> dict[str, Any]:
    """The call span's ids as the ``LogRecord`` keywords of older opentelemetry-api releases."""
    if not trace_id or not span_id:
        return {}
    from opentelemetry.trace import TraceFlags

    return {
        "trace_id": int(trace_id, 16),
        "span_id": int(span_id, 16),
        "trace_flags": TraceFlags(TraceFlags.SAMPLED),
    }


@functools.cache
def _takes_context(record_type: type) -> bool:
    """Whether this opentelemetry-api's ``LogRecord`` takes ``context=`` and ``event_name=`` (newer
    releases) rather than ``trace_id=`` / ``span_id=`` (the lowest release statek allows)."""
    parameters = inspect.signature(record_type).parameters
    return "context" in parameters and "event_name" in parameters


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000


class OtlpLogSink:
    """Emits ledger rows as log records through its own ``LoggerProvider`` and ``exporter``."""

    name = "otlp_logs"

    def __init__(self, exporter: Any, resource: Any = None) -> None:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        self.provider = LoggerProvider(resource=resource) if resource is not None else LoggerProvider()
        self.provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        self._logger = self.provider.get_logger("statek.ledger")

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Emit one log record per row (the batch processor exports them on its own thread)."""
        from opentelemetry._logs import LogRecord, SeverityNumber

        event = CALL_EVENT if table == "calls" else JOB_EVENT
        emit = self._logger.emit
        modern = _takes_context(LogRecord)
        for row in rows:
            where: dict[str, Any]
            if modern:  # newer opentelemetry-api releases: a context and an event name
                where = {
                    "context": _span_context(row.get("trace_id"), row.get("span_id")),
                    "event_name": event,
                }
            else:  # older releases: the ids themselves; the event name is the attribute alone
                where = _span_ids(row.get("trace_id"), row.get("span_id"))
            emit(
                LogRecord(
                    timestamp=_ns(row["start"]),
                    observed_timestamp=_ns(row["end"]),
                    severity_number=SeverityNumber.INFO,
                    severity_text="INFO",
                    body=event,
                    attributes={"event.name": event, **log_attributes(row)},
                    **where,
                )
            )

    def flush(self, timeout_ms: int = 5000) -> bool:
        """Export what was emitted so far."""
        return bool(self.provider.force_flush(timeout_ms))

    def close(self) -> None:
        """Export what is left and stop the processor."""
        self.provider.shutdown()
