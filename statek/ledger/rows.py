"""One usage row per call and per job, as plain dicts: what every ledger sink (Parquet, Postgres,
OTLP log records) writes.

Pure functions of the metering path's records (a call's :class:`CallFacts`, taken from its
:class:`statek.call_record.CallRecord` on the calling thread, and the
:class:`~statek.call_record.JobRecord`): they run on the ledger's writer thread, never on the caller's. A job row's totals are the job's usage when the row is made (within
a writer interval of the job's end).

Money is exact: ``cost_usd``, ``reported_cost_usd``, ``table_cost_usd`` and ``cost_drift_usd`` are
``Decimal`` here; the Parquet sink stores them as ``Decimal(38, 18)`` (an exact scaled integer: 20
digits of dollars, 18 of fractions, far below any price's precision), Postgres as ``NUMERIC`` and OTLP
as decimal strings. ``cost_usd`` is what the call added to its jobs' ``LLM_Usage.total_cost``: the
priced cost for a ``calculated`` or ``reported`` call, ``None`` otherwise.

Job attributes are all of the job's (its own and inherited), not only metric-allow-listed ones.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = [
    "CALL_COLUMNS",
    "JOB_COLUMNS",
    "CallFacts",
    "ServiceIdentity",
    "call_facts",
    "call_row",
    "decimal_text",
    "fresh_instance",
    "job_row",
    "service_identity",
]

CALL_COLUMNS: tuple[str, ...] = (
    "record_id",
    "start",
    "end",
    "service_name",
    "service_instance",
    "job_id",
    "root_job_id",
    "parent_job_ids",
    "attributes",
    "provider",
    "genai_provider",
    "pricing_provider",
    "request_model",
    "response_model",
    "operation",
    "stream",
    "outcome",
    "error_type",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_status",
    "price_source",
    "reported_cost_usd",
    "table_cost_usd",
    "cost_drift_usd",
    "bytes_sent",
    "bytes_received",
    "duration_s",
    "first_chunk_s",
    "retries",
    "trace_id",
    "span_id",
)
"""The call row's fields, in the order sinks lay them out (``attributes`` is a ``dict[str, str]``)."""

JOB_COLUMNS: tuple[str, ...] = (
    "record_id",
    "start",
    "end",
    "service_name",
    "service_instance",
    "job_id",
    "root_job_id",
    "parent_job_ids",
    "attributes",
    "error_type",
    "calls",
    "failed_calls",
    "unpriced_calls",
    "no_usage_calls",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "reported_cost_usd",
    "cost_drift_usd",
    "bytes_sent",
    "bytes_received",
    "budget_usd",
    "budget_tokens",
    "budget_calls",
    "budget_spent_usd",
    "budget_refusals",
)
"""The job row's fields: the job's totals (its own calls and its child jobs') and its budget."""

_PRICED = frozenset({"calculated", "reported"})


class ServiceIdentity:
    """Who wrote a row: ``service.name`` and ``service.instance.id`` (one per process)."""

    __slots__ = ("instance", "name")

    def __init__(self, name: str, instance: str) -> None:
        self.name = name
        self.instance = instance


def service_identity(resource_attributes: Mapping[str, Any] | None = None) -> ServiceIdentity:
    """This process's identity: the OpenTelemetry resource's ``service.name`` (else ``OTEL_SERVICE_NAME``,
    else ``unknown_service``) and ``service.instance.id`` (else ``host:pid:random``, unique per process)."""
    attributes = dict(resource_attributes or {})
    name = attributes.get("service.name") or os.environ.get("OTEL_SERVICE_NAME") or "unknown_service"
    instance = attributes.get("service.instance.id") or fresh_instance()
    return ServiceIdentity(str(name), str(instance))


def fresh_instance() -> str:
    """A new ``service.instance.id`` for this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)


def _job_fields(job: Any) -> tuple[str | None, str | None, list[str], dict[str, str]]:
    """(job id, root job id, ancestor ids innermost first, all attributes) of a job or ``None``."""
    if job is None:
        return None, None, [], {}
    lineage = getattr(job, "lineage", (job,))
    return job.job_id, lineage[-1].job_id, [each.job_id for each in lineage[1:]], dict(job.attributes)


def _hex(value: int, width: int) -> str | None:
    return f"{value:0{width}x}" if value else None


class CallFacts(NamedTuple):
    """What a call's ledger row needs of its :class:`~statek.call_record.CallRecord`, taken on the
    calling thread (:func:`call_facts`): strings, numbers and tuples of them only.

    The writer's queue holds these, not the records, for up to an interval: a record keeps its span,
    request, response and job alive, and a second of them waiting sent the garbage collector's cost
    from 27 to 96 µs a call (``benchmarks/ledger.py``'s set-up, an in-memory loop). A waiting call is
    then a few small tuples for the collector to traverse (a ``NamedTuple`` stays tracked, unlike a
    plain tuple of plain values), not its record's whole object graph."""

    record_id: str | None
    """The record's id when a consumer already made it (the row then carries the same one)."""
    started_wall: float
    duration: float
    job_id: str | None
    root_job_id: str | None
    parent_job_ids: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]
    provider_key: str
    genai_provider: str
    pricing_provider: str
    request_model: str
    operation: str
    stream: bool
    outcome: str
    error_type: str | None
    detail: Any
    cost: Any
    bytes_sent: int
    bytes_received: int
    first_chunk_s: float | None
    retries: int
    trace_id: int
    span_id: int


def call_facts(record: Any) -> CallFacts:
    """The :class:`CallFacts` of a finished ``CallRecord``."""
    job = record.job
    if job is None:
        job_id = root_id = None
        parents: tuple[str, ...] = ()
        attributes: tuple[tuple[str, str], ...] = ()
    else:
        lineage = getattr(job, "lineage", (job,))
        job_id, root_id = job.job_id, lineage[-1].job_id
        parents = tuple(each.job_id for each in lineage[1:])
        attributes = tuple(job.attributes.items())
    context = record.span_context
    site = record.site
    return CallFacts(
        record.known_record_id,
        record.started_wall,
        record.duration,
        job_id,
        root_id,
        parents,
        attributes,
        site.provider_key,
        site.genai_provider,
        site.pricing_provider,
        site.request_model,
        site.operation,
        site.stream,
        record.outcome,
        record.error_type,
        record.detail,
        record.cost,
        record.bytes_sent,
        record.bytes_received,
        record.first_chunk_s,
        record.retries,
        context.trace_id if context is not None else 0,
        context.span_id if context is not None else 0,
    )


def call_row(record: CallFacts | Any, service: ServiceIdentity) -> dict[str, Any]:
    """The ledger row of one finished call (its :class:`CallFacts`, or its ``CallRecord``); see
    :data:`CALL_COLUMNS`."""
    facts = record if isinstance(record, CallFacts) else call_facts(record)
    detail = facts.detail
    outcome = facts.outcome
    started = facts.started_wall
    cost = facts.cost
    row: dict[str, Any] = {
        "record_id": facts.record_id or uuid.uuid4().hex,
        "start": _utc(started),
        "end": _utc(started + facts.duration),
        "service_name": service.name,
        "service_instance": service.instance,
        "job_id": facts.job_id,
        "root_job_id": facts.root_job_id,
        "parent_job_ids": list(facts.parent_job_ids),
        "attributes": dict(facts.attributes),
        "provider": facts.provider_key,
        "genai_provider": facts.genai_provider,
        "pricing_provider": facts.pricing_provider,
        "request_model": facts.request_model,
        "response_model": None,
        "operation": facts.operation,
        "stream": facts.stream,
        "outcome": outcome,
        "error_type": facts.error_type,
        "input_tokens": 0,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": None,
        "cost_status": None,
        "price_source": None,
        "reported_cost_usd": None,
        "table_cost_usd": cost.table_amount if cost is not None else None,
        "cost_drift_usd": cost.drift if cost is not None else None,
        "bytes_sent": facts.bytes_sent,
        "bytes_received": facts.bytes_received,
        "duration_s": facts.duration,
        "first_chunk_s": facts.first_chunk_s,
        "retries": facts.retries,
        "trace_id": _hex(facts.trace_id, 32),
        "span_id": _hex(facts.span_id, 16),
    }
    if outcome == "ok" and detail is not None:
        status = detail.cost_status
        row.update(
            response_model=detail.response_model,
            input_tokens=detail.input_tokens,
            cached_tokens=detail.cached_tokens,
            cache_write_tokens=detail.cache_write_tokens,
            cache_write_1h_tokens=detail.cache_write_1h_tokens,
            output_tokens=detail.output_tokens,
            reasoning_tokens=detail.reasoning_tokens,
            cost_usd=detail.priced_cost if status in _PRICED else None,
            cost_status=status,
            price_source=_price_source(detail, facts),
            reported_cost_usd=detail.cost,
        )
    return row


def _price_source(detail: Any, record: Any) -> str | None:
    """Where the cost came from: the detail's own ``price_source`` when the pricing layer sets one,
    else ``provider`` (reported) or ``table:{pricing provider}`` (calculated)."""
    source = getattr(detail, "price_source", None)
    if source is not None:
        return str(source)
    if detail.cost_status == "reported":
        return "provider"
    if detail.cost_status == "calculated":
        return f"table:{record.pricing_provider}"
    return None


def job_row(record: Any, service: ServiceIdentity) -> dict[str, Any]:
    """The ledger row of one finished job (a ``JobRecord``); see :data:`JOB_COLUMNS`."""
    job = record.job
    job_id, root_id, parents, attributes = _job_fields(job)
    usage = job.usage
    row: dict[str, Any] = {
        "record_id": record.record_id,
        "start": _utc(record.started_wall),
        "end": _utc(record.ended_wall),
        "service_name": service.name,
        "service_instance": service.instance,
        "job_id": job_id,
        "root_job_id": root_id,
        "parent_job_ids": parents,
        "attributes": attributes,
        "error_type": record.error_type,
        "calls": usage.calls,
        "failed_calls": usage.failed_calls,
        "unpriced_calls": usage.unpriced_calls,
        "no_usage_calls": usage.no_usage_calls,
        "input_tokens": usage.total_input_tokens,
        "cached_tokens": usage.total_cached_tokens,
        "cache_write_tokens": usage.total_cache_write_tokens,
        "output_tokens": usage.total_output_tokens,
        "reasoning_tokens": usage.total_reasoning_tokens,
        "cost_usd": usage.total_cost if usage.calls else None,
        "reported_cost_usd": usage.total_reported_cost,
        "cost_drift_usd": usage.total_cost_drift,
        "bytes_sent": usage.total_bytes_sent,
        "bytes_received": usage.total_bytes_received,
        "budget_usd": None,
        "budget_tokens": None,
        "budget_calls": None,
        "budget_spent_usd": None,
        "budget_refusals": None,
    }
    ledger = getattr(job, "budget", None)
    if ledger is not None:
        status = ledger.status()
        limits = status.budget
        row.update(
            budget_usd=limits.usd,
            budget_tokens=limits.tokens,
            budget_calls=limits.calls,
            budget_spent_usd=status.spent_usd,
            budget_refusals=status.refusals,
        )
    return row


def decimal_text(value: Decimal | None) -> str | None:
    """A Decimal as its exact plain string (no exponent), ``None`` kept."""
    return None if value is None else format(value, "f")
