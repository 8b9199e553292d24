"""The job-usage consumer of the call record: every call adds to its job and all its ancestors.

An answered call is added priced (:meth:`Job.add_call`, queued as :meth:`LLM_Usage.record` queues
it); a failed one with its bytes on the wire (:meth:`Job.add_failure`); a refused one is not a call
(nothing was sent). Each job also notes the call's span context, for the links of a span made at the
job's end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..call_record import CallRecord
    from ..executors.llm_usage import RecordedCall

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
        if outcome == "ok":
            stats = record.detail
            if stats is None:
                return
            site = record.site
            cost = record.cost
            call: RecordedCall = (
                site.provider_key,
                site.request_model,
                stats,
                None,
                None,
                cost.table_amount if cost is not None else None,
            )
            context = record.span_context
            for each in (job, *job.ancestors):
                try:
                    each.add_call(call, context)
                except Exception:  # noqa: BLE001 - one job's failure never skips the others
                    _log.exception("statek could not add a call to job %r", each.job_id)
        elif outcome != "refused":
            site = record.site
            provider, model, context = site.provider_key, site.request_model, record.span_context
            sent, received = record.bytes_sent, record.bytes_received
            for each in (job, *job.ancestors):
                try:
                    each.add_failure(provider, model, sent, received, context)
                except Exception:  # noqa: BLE001
                    _log.exception("statek could not add a failed call to job %r", each.job_id)
