"""The budget consumer of the call record: reserve before the call is sent, settle when it ends.

When the call's job (or an ancestor) has a budget, ``start`` estimates the call and reserves it
against every budget of the lineage (:mod:`statek.executors.budget`); a call that would pass a limit
raises :class:`~statek.exceptions.BudgetExceededError` there, before anything is sent. ``finish``
settles the reservation with what the call really used (an answered call), or with its bytes (a
failed one). A fault in statek's own estimate is logged and the call goes on unbudgeted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exceptions import BudgetExceededError
from ..executors.budget import reserve_call, reserve_request

if TYPE_CHECKING:
    from ..call_record import CallRecord

__all__ = ["BudgetConsumer"]

_log = logging.getLogger("statek.telemetry")


class BudgetConsumer:
    """Reserves and settles calls against their jobs' budgets (see the module docstring)."""

    name = "budget"

    def start(self, record: CallRecord) -> None:
        job = record.job
        if job is None or not job.budgets or record.reservation is not None:
            return
        try:
            if record.api is not None:
                record.reservation = reserve_call(job, record.api, record.request)
            else:
                record.reservation = reserve_request(
                    job,
                    record.provider_key,
                    record.request_model,
                    record.body or b"",
                    pricing_provider=record.pricing_provider,
                    max_output_tokens=record.max_tokens,
                )
        except BudgetExceededError:
            raise
        except Exception:  # noqa: BLE001 - a fault in statek's estimate never breaks the call
            _log.exception("statek could not check a call against its job's budget; it goes unbudgeted")

    def finish(self, record: CallRecord) -> None:
        reservation = record.reservation
        if reservation is None:
            return
        if record.outcome == "ok" and record.detail is not None:
            stats = record.detail
            reservation.settle(
                stats.priced_cost,
                stats.input_tokens,
                stats.output_tokens,
                stats.total_bytes_sent,
                stats.total_bytes_received,
            )
        else:  # a cancelled call's bytes count against the budget too
            reservation.settle_failure(record.bytes_sent, record.bytes_received)
