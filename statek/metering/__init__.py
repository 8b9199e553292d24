"""PLACEHOLDER (owned by the pricing work). Fixed interface: ``CallCost``, ``price_call``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..llm_api import CostStatus, LLM_Stats


@dataclass(frozen=True, slots=True)
class CallCost:
    amount: Decimal | None
    status: CostStatus
    currency: str = "USD"


def price_call(
    provider: str, model: str, stats: LLM_Stats, *, at: datetime | None = None, model_family: str | None = None
) -> CallCost:
    if stats.cost is not None:
        return CallCost(stats.cost, "reported")
    return CallCost(None, "unpriced")
