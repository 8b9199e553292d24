"""The budget consumer of the call record: reserve before the call is sent, settle when it ends.

When the call's job (or an ancestor) has a budget, ``start`` estimates the call and reserves it
against every budget of the lineage (:mod:`statek.executors.budget`); a call that would pass a limit
raises :class:`~statek.exceptions.BudgetExceededError` there, before anything is sent. ``finish``
settles the reservation with what the call really used (an answered call), or with its bytes (a
failed one). A fault in statek's own estimate is logged and the call goes on unbudgeted.

An answered call whose answer carried no usage (the openai SDK's default stream) is settled at its
reservation: spent, as far as the budget knows. Its record's detail then says so (cost status
``"reserved"``, priced at the reservation), so job usage, spans, metrics and the ledger, which all
read the record after this consumer, count it at that amount, never at $0.

With a ``cap_output`` budget, :func:`apply_output_cap` writes the reserved output cap into the
request before it is sent (:mod:`statek.executors.output_cap`).

Every other path ends a reservation too: a failed, cancelled or ``BaseException``-interrupted call
is settled as failed by ``finish``; a reservation whose call never finished (a stream dropped without
closing, a record lost) is settled at its reservation when it is garbage collected
(:class:`~statek.executors.budget.Reservation`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..exceptions import BudgetExceededError
from ..executors.budget import reserve_call, reserve_request
from ..executors.output_cap import cap_payload

if TYPE_CHECKING:
    from ..call_record import CallRecord

__all__ = ["BudgetConsumer", "apply_output_cap"]

_log = logging.getLogger("statek.telemetry")
_uncappable: set[type] = set()


def apply_output_cap(record: CallRecord, payload: dict[str, Any] | None) -> None:
    """Write the reservation's output cap into ``payload`` (in place), in the field the provider's
    wire format reads (``output_cap_wire``). A provider without one (a seed-style custom provider)
    cannot be capped: logged once per class; the call is still reserved at the capped amount."""
    reservation = record.reservation
    cap = None if reservation is None else reservation.output_cap
    if cap is None:
        return
    api = record.api
    wire = getattr(api, "output_cap_wire", None)
    if payload is None or wire is None:
        if type(api) not in _uncappable:
            _uncappable.add(type(api))
            _log.warning(
                "statek: %s cannot carry a budget's output cap (cap_output=True); its calls are "
                "reserved at the cap but not bounded by it",
                type(api).__name__,
            )
        return
    profile = getattr(api, "profile", None)
    cap_payload(payload, wire, cap, field=getattr(profile, "max_tokens_field", None))


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
            if stats.cost_status == "no_usage":
                reservation.settle_abandoned(stats.total_bytes_sent, stats.total_bytes_received)
                record.detail = stats._replace(
                    priced_cost=reservation.estimate.usd,
                    cost_status="reserved" if reservation.pico is not None else "no_usage",
                    input_tokens=stats.input_tokens or reservation.input_tokens,
                    output_tokens=stats.output_tokens or reservation.output_tokens,
                )
                return
            reservation.settle(
                stats.priced_cost,
                stats.input_tokens,
                stats.output_tokens,
                stats.total_bytes_sent,
                stats.total_bytes_received,
            )
        else:  # a cancelled call's bytes count against the budget too
            reservation.settle_failure(record.bytes_sent, record.bytes_received)
