"""The demo's closing tables, fitted to the terminal: costs are never cut, less important columns go first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console

from ..demo.report import COLUMNS, COST_COLUMN, REPORTED_MARK, cells, models_by_cost
from ..executors.llm_usage import ModelUsage
from .output import ColumnSpec, fitted_table

__all__ = ["render_tables"]

# keep: the higher, the later a column is dropped on a narrow terminal; the cost column never is.
_KEEP = {
    "Calls": 70,
    "Input": 50,
    "Cache read": 30,
    "Cache write": 10,
    "Output": 45,
    "Reasoning": 20,
    "Cost (USD)": None,
    "Unpriced": 60,
    "Errors": 40,
}
_NUMBERS = tuple(ColumnSpec(name, "number", keep=_KEEP[name]) for name in COLUMNS)


def _print(
    console: Console,
    title: str,
    labels: Sequence[ColumnSpec],
    footer: Sequence[str],
    rows: list[tuple[list[str], ModelUsage]],
    total: ModelUsage,
) -> None:
    lines = [[*names, *cells(line)] for names, line in rows]
    marked = any(REPORTED_MARK in cells(line)[COST_COLUMN] for _, line in rows)
    caption = f"{REPORTED_MARK} cost reported by the provider itself (no price-table row)" if marked else None
    console.print(
        fitted_table(
            console,
            (*labels, *_NUMBERS),
            lines,
            title=title,
            caption=caption,
            footer=[*footer, *cells(total)],
            wider="a wider terminal shows them",
        )
    )


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
    model_rows = [([provider, model], line) for (provider, model), line in models_by_cost(by_model)]
    by_model_labels = (ColumnSpec("Provider", keep=25), ColumnSpec("Model", "fold", fold_at=18))
    _print(console, "Usage by model", by_model_labels, ["", "Total"], model_rows, total)
    jobs = sum(count for count, _, _ in by_class.values())
    failed = sum(f for _, f, _ in by_class.values())
    class_rows = [([name, f"{count:,}", f"{f:,}"], line) for name, (count, f, line) in by_class.items()]
    by_class_labels = (
        ColumnSpec("Job class"),
        ColumnSpec("Jobs", "number", keep=80),
        ColumnSpec("Failed", "number", keep=55),
    )
    _print(
        console,
        "Usage by job class",
        by_class_labels,
        ["Total", f"{jobs:,}", f"{failed:,}"],
        class_rows,
        total,
    )
