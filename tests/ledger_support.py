"""Ledger test helpers: finished call records as the metering path leaves them."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from statek.call_record import CallRecord, CallSite
from statek.metering.types import CallCost
from statek.types import CallDetail


class _SpanContext:
    trace_id = 0x1234
    span_id = 0x56


def call_record(
    job: Any = None,
    *,
    model: str = "gpt-4o-mini",
    provider: str = "OPENAI",
    outcome: str = "ok",
    input_tokens: int = 10,
    output_tokens: int = 5,
    cached_tokens: int = 0,
    cost: Decimal | None = Decimal("0.0000123"),
    status: str = "calculated",
    started_wall: float | None = None,
    duration: float = 0.25,
) -> CallRecord:
    """A finished call's :class:`CallRecord`, filled as the metering path fills it."""
    record = CallRecord(CallSite(provider, provider.lower(), provider.lower(), model, "chat"), job)
    record.started_wall = time.time() if started_wall is None else started_wall
    record.outcome = outcome  # type: ignore[assignment]
    record.duration = duration
    record.bytes_sent = 100
    record.span_context = _SpanContext()
    if outcome == "ok":
        priced = cost if status in ("calculated", "reported") else None
        record.detail = CallDetail(
            100,
            200,
            None,
            input_tokens,
            output_tokens,
            cached_tokens,
            response_model=model + "-2024",
            priced_cost=priced,
            cost_status=status,  # type: ignore[arg-type]
        )
        record.cost = CallCost(priced, status)  # type: ignore[arg-type]
        record.bytes_received = 200
    else:
        record.error_type = "500" if outcome == "error" else "BudgetExceededError"
    return record
