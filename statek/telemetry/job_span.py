"""The span consumer of jobs: a ``job {id}`` span, from entry or earned at the end.

``Job(..., span=True)`` opens the span when the job is entered and makes it current, so the calls'
spans are its children. With ``span=None`` (the default) a job gets a span only when it earns one
(:meth:`~statek.executors.job.Job.earned_span`): it is made at the job's end, backdated to its
entry, linked to its calls' spans and carrying its refusals as timestamped events. ``span=False``
never makes one. The span ends with the job's totals (:meth:`~statek.executors.job.Job.totals`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace import Status, StatusCode

from ..secrets import clip
from .config import telemetry_config

if TYPE_CHECKING:
    from ..call_record import JobRecord
    from ..executors.job import Job

__all__ = ["JobSpanConsumer"]

_TOKEN = "_statek_span_token"


class JobSpanConsumer:
    """Opens and ends job spans (see the module docstring)."""

    name = "job_span"

    def __init__(self) -> None:
        self._tokens: dict[int, object] = {}

    def job_started(self, job: Job) -> None:
        if not job.span_mode:
            return
        span = job.span = telemetry_config().tracer.start_span(
            f"job {job.job_id}", attributes=_attributes(job)
        )
        self._tokens[id(job)] = context.attach(trace.set_span_in_context(span))

    def job_finished(self, record: JobRecord) -> None:
        job = record.job
        mode = job.span_mode
        if mode is None:  # most jobs: one call, no refusal, no error, so no span and no more work
            if not job.earned_span(record.exception):
                return
            span = _earned_span(job, record)
        elif mode:
            token = self._tokens.pop(id(job), None)
            if token is not None:
                context.detach(token)  # type: ignore[arg-type]
            span, job.span = job.span, None
            if span is None:  # its start failed (logged then)
                return
        else:
            return
        _end(span, job, record.exception)


def _earned_span(job: Job, record: JobRecord) -> Any:
    """The span a job with ``span=None`` earned, made at its end: backdated to its entry, linked to
    its calls' spans, with its refusals as events at the time each happened."""
    span = telemetry_config().tracer.start_span(
        f"job {job.job_id}",
        attributes=_attributes(job),
        links=[trace.Link(each) for each in job.call_spans],
        start_time=int(record.started_wall * 1e9),
    )
    for at, refused in job.refusals:
        span.add_event("statek.budget.refused", refused, timestamp=at)
    return span


def _end(span: Any, job: Job, exc: BaseException | None) -> None:
    """End the job's span with its totals, and its error when its body raised."""
    span.set_attributes(job.totals())
    if exc is not None:
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {clip(exc, 200)}"))
    span.end()


def _attributes(job: Job) -> dict[str, Any]:
    attributes = {"statek.job.id": job.job_id}
    attributes.update({f"statek.job.{k}": v for k, v in job.attributes.items() if k != "id"})
    return attributes
