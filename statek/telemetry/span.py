"""The span consumer of the call record: one span per call, OpenTelemetry GenAI semantic conventions.

A span ``{operation} {model}`` (kind CLIENT) covers each call, from its start to its end, with its
usage, cost and outcome. An ``LLM_API`` call's span opens when the call starts and is current while
the provider runs (``record.capture_context``), so HTTP retries become its ``statek.retry`` events. A
call read off the wire runs nothing inside its span, so that span is made when the call ends,
backdated to its start and parented to the context the request left from (its answer may be read in
another context). Either way the span's context is on the record before the metrics consumer reads
it for exemplars (the span consumer is registered before it). Prompt and completion text are
recorded only when content capture is on. A refused call opens no span: its refusal becomes a
``statek.budget.refused`` event on its job's span (see :meth:`Job.note_refusal`), or on the current
span outside any job.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import instruments as inst
from ..secrets import clip, scrub
from .config import TelemetryConfig, current_config

if TYPE_CHECKING:
    from .._http import RetryEvent
    from ..call_record import CallRecord, CallSite
    from ..types import LLM_Response

__all__ = ["SpanConsumer"]

_DEFERRED = "span.deferred"
_FIRST_CHUNK = "statek.time_to_first_chunk_s"
_MAX_CACHED_NAMES = 4096
"""Span names and attributes kept per call site; beyond this the cache starts again."""


class SpanConsumer:
    """Opens, annotates and closes the span of every call (see the module docstring)."""

    name = "span"

    def __init__(self) -> None:
        self._names: dict[CallSite, tuple[str, dict[str, Any]]] = {}

    def start(self, record: CallRecord) -> None:
        config = current_config()
        if config is None:
            return
        if not config.traces:
            # The no-op tracer's span is the current one (or a non-recording span with its
            # context): nothing to start, annotate or make current; its context is the same.
            record.span_context = trace.get_current_span().get_span_context()
            return
        site = record.site
        named = self._names.get(site)
        if named is None:  # one name and attribute set per call site, not per call
            named = _name_and_attributes(site)
            if len(self._names) >= _MAX_CACHED_NAMES:
                self._names.clear()
            self._names[site] = named
        span_name, base = named
        attributes: dict[str, Any] = {**base}
        if record.temperature is not None:
            attributes["gen_ai.request.temperature"] = record.temperature
        if record.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = record.max_tokens
        job = record.job
        if job is not None:
            attributes["statek.job.id"] = job.job_id
        if config.capture_content and record.request is not None:
            attributes.update(_input_content(record.request))
        if not site.capture_context:
            # Nothing runs inside a call read off the wire's span, so it is made when the call ends,
            # backdated to now, under the context of now: one attribute pass in the SDK instead of two.
            extras = record.extras
            if extras is None:
                extras = record.extras = {}
            extras[_DEFERRED] = (span_name, attributes, otel_context.get_current(), time.time_ns())
            return
        span = record.span = config.tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attributes)
        record.span_context = span.get_span_context()
        record.span_scope = otel_context.attach(trace.set_span_in_context(span))

    def finish(self, record: CallRecord) -> None:
        token = record.span_scope
        if token is not None:
            record.span_scope = None
            otel_context.detach(token)
        extras = record.extras
        deferred = extras.pop(_DEFERRED, None) if extras is not None else None
        if record.outcome == "refused":
            _note_refusal(record)
            return
        if deferred is not None:
            _finish_deferred(record, deferred, current_config())
            return
        span = record.span
        if span is None:
            return
        if not span.is_recording():  # sampled out, or no tracing SDK: its attributes would be dropped
            span.end()
            return
        first_chunk = record.first_chunk_s
        if first_chunk is not None:  # a stream's first chunk: an event at the time it came
            at = int((record.started_wall + first_chunk) * 1e9)
            span.add_event("statek.first_chunk", {_FIRST_CHUNK: first_chunk}, timestamp=at)
        error = record.outcome == "error"
        ended = _error_attributes(record) if error else _answer_attributes(record, current_config())
        if first_chunk is not None:
            ended = ended or {}
            ended[_FIRST_CHUNK] = first_chunk
        if ended:
            span.set_attributes(ended)
        if error:
            span.set_status(_error_status(record))
        span.end()

    def retry(self, record: CallRecord, event: RetryEvent) -> None:
        """One ``statek.retry`` event per retried attempt."""
        span = record.span
        if span is None:
            return
        attributes: dict[str, Any] = {
            "statek.retry.attempt": event.attempt,
            inst.ERROR_TYPE: event.error_type,
            "statek.retry.delay_s": event.delay,
        }
        if event.status_code is not None:
            attributes["http.response.status_code"] = event.status_code
        span.add_event("statek.retry", attributes)


def _error_attributes(record: CallRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        inst.ERROR_TYPE: record.error_type or "error",
        "statek.bytes.sent": record.bytes_sent,
        "statek.bytes.received": record.bytes_received,
        "statek.cost.status": "unpriced",
    }
    if record.retries:
        attributes["statek.retry.count"] = record.retries
    return attributes


def _error_status(record: CallRecord) -> Status:
    exc = record.exception
    # Scrubbed: an error body may echo the request's key, and this is exported with content capture off.
    described = f"{type(exc).__name__}: {clip(exc, 200)}" if exc is not None else record.error_type
    return Status(StatusCode.ERROR, described)


def _finish_deferred(
    record: CallRecord, deferred: tuple[str, dict[str, Any], Any, int], config: TelemetryConfig | None
) -> None:
    """Make, annotate and end the span of a call read off the wire, all at once."""
    span_name, attributes, parent, started_ns = deferred
    if config is None:
        return
    error = record.outcome == "error"
    answered = _error_attributes(record) if error else _answer_attributes(record, config)
    if answered is not None:
        attributes.update(answered)
    first_chunk = record.first_chunk_s
    if first_chunk is not None:
        attributes[_FIRST_CHUNK] = first_chunk
    span = record.span = config.tracer.start_span(
        span_name, context=parent, kind=SpanKind.CLIENT, attributes=attributes, start_time=started_ns
    )
    record.span_context = span.get_span_context()
    if first_chunk is not None:
        span.add_event(
            "statek.first_chunk",
            {_FIRST_CHUNK: first_chunk},
            timestamp=started_ns + int(first_chunk * 1e9),
        )
    if error:
        span.set_status(_error_status(record))
    span.end(end_time=started_ns + int(record.duration * 1e9))


def _answer_attributes(record: CallRecord, config: TelemetryConfig | None) -> dict[str, Any] | None:
    """The span attributes of an answered call (usage, cost, response), ``None`` without a detail."""
    stats = record.detail
    if stats is None:
        return None
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
    latest = config is not None and config.latest_genai
    if stats.cache_write_tokens:
        key = (
            "gen_ai.usage.cache_write.input_tokens" if latest else "gen_ai.usage.cache_creation.input_tokens"
        )
        attributes[key] = stats.cache_write_tokens
    if stats.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = stats.reasoning_tokens
    priced_cost = stats.priced_cost
    if priced_cost is not None:
        usd = attributes["statek.cost.usd"] = float(priced_cost)
        if latest:  # the proposed gen_ai.usage.cost.* attributes
            attributes["gen_ai.usage.cost.amount"] = usd
            attributes["gen_ai.usage.cost.currency"] = "USD"
            attributes["gen_ai.usage.cost.source"] = stats.cost_status
    if stats.cost is not None:
        attributes["statek.cost.reported_usd"] = float(stats.cost)
    cost = record.cost
    if cost is not None:
        if cost.price_model is not None:
            attributes["statek.cost.price_model"] = cost.price_model  # the row that priced it
        if cost.table_amount is not None:
            attributes["statek.cost.table_usd"] = float(cost.table_amount)
            drift = cost.drift
            if drift is not None:
                attributes["statek.cost.drift_usd"] = float(drift)
    if stats.service_tier is not None:
        attributes["statek.service_tier"] = stats.service_tier
    if record.retries:
        attributes["statek.retry.count"] = record.retries
    if config is not None and config.capture_content and record.response is not None:
        attributes.update(_output_content(record.response))
    return attributes


def _name_and_attributes(site: CallSite) -> tuple[str, dict[str, Any]]:
    attributes: dict[str, Any] = {
        inst.GEN_AI_OPERATION_NAME: site.operation,
        inst.GEN_AI_PROVIDER_NAME: site.genai_provider,
        inst.GEN_AI_REQUEST_MODEL: site.request_model,
    }
    if site.server_address:
        attributes[inst.SERVER_ADDRESS] = site.server_address
        if site.server_port:
            attributes[inst.SERVER_PORT] = site.server_port
    if site.stream:
        attributes["gen_ai.request.stream"] = True
    if site.output_type is not None:
        attributes["gen_ai.output.type"] = site.output_type
    return f"{site.operation} {site.request_model}", attributes


def _note_refusal(record: CallRecord) -> None:
    refused: Any = record.exception
    event = {
        "statek.job.id": getattr(refused, "job_id", None) or "",
        "statek.budget.reason": getattr(refused, "reason", None) or "",
        inst.GEN_AI_PROVIDER_NAME: record.genai_provider,
        inst.GEN_AI_REQUEST_MODEL: record.request_model,
    }
    job = record.job
    if job is not None:
        job.note_refusal(event)
    else:
        trace.get_current_span().add_event("statek.budget.refused", event)


def _input_content(params: Any) -> dict[str, str]:
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
