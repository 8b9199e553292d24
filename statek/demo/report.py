"""The numbers of the demo's closing tables (printed by ``statek.cli.demo_report``), built from the jobs' own :class:`~statek.executors.llm_usage.LLM_Usage`.

Nothing here prices, counts or adds up a call again: every row is read from an ``LLM_Usage`` statek
filled in (the run's parent job for the grand total and the per-model rows, via
:meth:`LLM_Usage.by_model`; each job class's parent job for its row). Costs stay ``Decimal`` and are
rounded only for display; a model without any price shows *unpriced*, never ``$0``. Errors are the
calls that failed for good, which ``LLM_Usage`` counts too (with their bytes, and no tokens or cost).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from ..executors.llm_usage import LLM_Usage, ModelUsage

__all__ = [
    "COLUMNS",
    "COST_COLUMN",
    "REPORTED_MARK",
    "cells",
    "format_cost",
    "models_by_cost",
    "total_line",
]


def total_line(usage: LLM_Usage) -> ModelUsage:
    """A table row from an ``LLM_Usage``'s own totals (not from its per-model rows)."""
    by_model = usage.by_model().values()
    return ModelUsage(
        provider="",
        model="",
        calls=usage.calls,
        input_tokens=usage.total_input_tokens,
        cached_tokens=usage.total_cached_tokens,
        cache_write_tokens=usage.total_cache_write_tokens,
        output_tokens=usage.total_output_tokens,
        reasoning_tokens=usage.total_reasoning_tokens,
        bytes_sent=usage.total_bytes_sent,
        bytes_received=usage.total_bytes_received,
        cost=usage.total_cost,
        reported_cost=usage.total_reported_cost,
        calculated_calls=sum(m.calculated_calls for m in by_model),
        reported_calls=sum(m.reported_calls for m in by_model),
        unpriced_calls=usage.unpriced_calls,
        failed_calls=usage.failed_calls,
    )


def format_cost(line: ModelUsage) -> str:
    """``$0.012345`` (exact to the micro-dollar, rounded half-even); ``unpriced`` when no call had a price."""
    if line.cost is None:
        return "unpriced" if line.unpriced_calls else "–"
    return f"${line.cost.quantize(Decimal('0.000001')):,}"


REPORTED_MARK = "*"
"""Marks a cost the provider reported itself (no price-table row applied); explained under the table."""
COLUMNS = (
    "Calls",
    "Input",
    "Cache read",
    "Cache write",
    "Output",
    "Reasoning",
    "Cost (USD)",
    "Unpriced",
    "Errors",
)
"""The numeric columns of both closing tables, in the order :func:`cells` gives them."""
COST_COLUMN = COLUMNS.index("Cost (USD)")


def cells(line: ModelUsage) -> list[str]:
    """``line``'s cells for :data:`COLUMNS`; a cost the provider reported itself is marked."""
    reported = line.reported_calls and line.reported_calls == line.calls - line.unpriced_calls
    return [
        f"{line.calls:,}",
        f"{line.input_tokens:,}",
        f"{line.cached_tokens:,}",
        f"{line.cache_write_tokens:,}",
        f"{line.output_tokens:,}",
        f"{line.reasoning_tokens:,}",
        format_cost(line) + (REPORTED_MARK if reported else ""),
        f"{line.unpriced_calls:,}",
        f"{line.failed_calls:,}",
    ]


def models_by_cost(
    by_model: Mapping[tuple[str, str], ModelUsage],
) -> list[tuple[tuple[str, str], ModelUsage]]:
    """``by_model``'s items, most expensive first, unpriced ones last."""

    def cost_order(item: tuple[tuple[str, str], ModelUsage]) -> tuple[bool, Decimal, tuple[str, str]]:
        return (item[1].cost is None, -(item[1].cost or Decimal(0)), item[0])

    return sorted(by_model.items(), key=cost_order)
