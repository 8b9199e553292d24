"""The demo's closing tables, built from the jobs' own :class:`~statek.executors.llm_usage.LLM_Usage`.

Nothing here prices, counts or adds up a call again: every row is read from an ``LLM_Usage`` statek
filled in (the run's parent job for the grand total and the per-model rows, via
:meth:`LLM_Usage.by_model`; each job class's parent job for its row). Costs stay ``Decimal`` and are
rounded only for display; a model without any price shows *unpriced*, never ``$0``. Errors are the
calls that failed for good, which ``LLM_Usage`` counts too (with their bytes, and no tokens or cost).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from rich import box
from rich.console import Console
from rich.table import Table

from ..executors.llm_usage import LLM_Usage, ModelUsage

__all__ = [
    "REPORTED_MARK",
    "format_cost",
    "render_tables",
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
_COLUMNS = (
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


def _cells(line: ModelUsage) -> list[str]:
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


def _table(
    title: str, heads: Mapping[str, str], rows: list[tuple[list[str], ModelUsage]], total: ModelUsage
) -> Table:
    """``heads`` maps the label columns to their footer text."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        show_footer=True,
        box=box.SIMPLE_HEAD,
        header_style="bold",
        footer_style="bold",
    )
    for head, footer in heads.items():
        table.add_column(head, footer=footer, no_wrap=True)
    for head, footer in zip(_COLUMNS, _cells(total)):
        table.add_column(head, footer=footer, justify="right", no_wrap=True)
    for labels, line in rows:
        table.add_row(*labels, *_cells(line))
    if any(REPORTED_MARK in _cells(line)[6] for _, line in rows):
        table.caption = f"{REPORTED_MARK} cost reported by the provider itself (no price-table row)"
        table.caption_justify = "left"
    return table


def render_tables(
    console: Console,
    *,
    by_model: Mapping[tuple[str, str], ModelUsage],
    by_class: Mapping[str, tuple[int, int, ModelUsage]],
    total: ModelUsage,
) -> None:
    """Print the per-model and per-job-class tables, each with the grand total as its footer.

    ``by_class`` maps a job class to ``(jobs, failed_jobs, usage)``. Models are listed most expensive
    first, unpriced ones last.
    """

    def cost_order(item: tuple[tuple[str, str], ModelUsage]) -> tuple[bool, Decimal, tuple[str, str]]:
        return (item[1].cost is None, -(item[1].cost or Decimal(0)), item[0])

    model_rows = [
        ([provider, model], line) for (provider, model), line in sorted(by_model.items(), key=cost_order)
    ]
    console.print(_table("Usage by model", {"Provider": "Total", "Model": ""}, model_rows, total))
    jobs = sum(count for count, _, _ in by_class.values())
    failed = sum(f for _, f, _ in by_class.values())
    class_rows = [([name, f"{count:,}", f"{f:,}"], line) for name, (count, f, line) in by_class.items()]
    console.print(
        _table(
            "Usage by job class",
            {"Job class": "Total", "Jobs": f"{jobs:,}", "Failed": f"{failed:,}"},
            class_rows,
            total,
        )
    )
