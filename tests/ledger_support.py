"""Ledger test helpers: call records as the metering path makes them, and jobs with attributes."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from statek.types import CallDetail


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
) -> Any:
    """A finished call's record with the fields the metering path fills (see DESIGN: CallRecord)."""
    detail = None
    if outcome == "ok":
        detail = CallDetail(
            100,
            200,
            None,
            input_tokens,
            output_tokens,
            cached_tokens,
            response_model=model + "-2024",
            priced_cost=cost,
            cost_status=status,  # type: ignore[arg-type]
        )
    return SimpleNamespace(
        record_id=uuid.uuid4().hex,
        provider_key=provider,
        genai_provider=provider.lower(),
        pricing_provider=provider.lower(),
        request_model=model,
        operation="chat",
        stream=False,
        job=job,
        started_wall=time.time() if started_wall is None else started_wall,
        started=0.0,
        outcome=outcome,
        error_type=None if outcome == "ok" else ("500" if outcome == "error" else "BudgetExceededError"),
        exception=None,
        detail=detail,
        table_cost=None,
        drift=None,
        bytes_sent=100,
        bytes_received=200 if outcome == "ok" else 0,
        duration=duration,
        first_chunk_s=None,
        retries=0,
        trace_id=0x1234,
        span_id=0x56,
        reservation=None,
    )
