"""The job-usage consumer of the call record: every call adds to its job and all its ancestors.

An answered call is added priced (:meth:`LLM_Usage.record`); a failed one with its bytes on the wire
(:meth:`LLM_Usage.record_failure`); a refused one is not a call (nothing was sent). Each job also
notes the call's span context, for the links of a span made at the job's end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..call_record import CallRecord

__all__ = ["JobUsageConsumer"]

_log = logging.getLogger("statek.telemetry")


class JobUsageConsumer:
    """Adds every call to the usage of its job's lineage (see the module docstring)."""

    name = "jobs"

    def start(self, record: CallRecord) -> None:
        pass

    def finish(self, record: CallRecord) -> None:
        job = record.job
        if job is None:
            return
        outcome = record.outcome
        if outcome == "refused":
            return
        context = record.span_context
        provider, model = record.provider_key, record.request_model
        if outcome == "ok":
            stats = record.detail
            if stats is None:
                return
            table = record.table_cost
            for each in job.lineage:
                try:
                    each.usage.record(provider, model, stats, table_cost=table)
                    each.note_call_span(context)
                except Exception:  # noqa: BLE001 - one job's failure never skips the others
                    _log.exception("statek could not add a call to job %r", each.job_id)
            return
        sent, received = record.bytes_sent, record.bytes_received
        for each in job.lineage:
            try:
                each.usage.record_failure(provider, model, sent, received)
                each.note_call_span(context)
            except Exception:  # noqa: BLE001
                _log.exception("statek could not add a failed call to job %r", each.job_id)
