"""What a period of the ledger would have cost with other prices.

Each answered call is priced again, on its own, from its recorded token counts with the given price
files only (at noon UTC of the day the call started, so dated ``VALID_FROM`` rows apply by day), and
the costs are summed per group: costs are never computed from summed tokens (tiered prices would
make that wrong). Calls with the same provider, model, counts and day are priced once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..metering.registry import PriceRegistry
from ..types import CallDetail
from .query import group_column
from .schema import COST_SCALE, money

if TYPE_CHECKING:
    import polars as pl

__all__ = ["reprice"]

_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def _registry(prices: str | Path) -> PriceRegistry:
    registry = PriceRegistry(shipped=False, model_info_dir=None, database=None)
    report = registry.load(prices)
    if not len(report):
        raise ValueError(f"no prices could be read from {prices}: {[str(p) for p in report.errors][:3]}")
    return registry


def reprice(
    calls: pl.LazyFrame,
    prices: str | Path,
    by: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.DataFrame:
    """Per group of ``by``: ``calls``, the recorded ``cost_usd``, ``repriced_usd`` with ``prices``
    (a price file or a folder of them; null when they price none of the group's calls),
    ``difference_usd`` (repriced - recorded, over the calls both priced) and ``unpriced_calls``
    (calls the new prices do not price, left out of ``repriced_usd``)."""
    import polars as pl

    registry = _registry(prices)
    frame = calls.filter(pl.col("outcome") == "ok")
    if since is not None:
        frame = frame.filter(pl.col("start") >= since)
    if until is not None:
        frame = frame.filter(pl.col("start") < until)
    schema = frame.collect_schema()
    keys: list[Any] = []
    for key in by:
        column = group_column(key)
        if key == "day":
            keys.append(pl.col("start").dt.date().alias("day"))
        elif column in schema:
            keys.append(pl.col(column).alias(key))
        else:
            keys.append(pl.lit(None, dtype=pl.String).alias(key))
    shape = ["pricing_provider", "request_model", *_COUNTS]
    data = frame.with_columns(*keys, pl.col("start").dt.date().alias("_day")).collect()
    distinct = data.select([*shape, "_day"]).unique()
    amounts: list[Decimal | None] = []
    for row in distinct.iter_rows(named=True):
        stats = CallDetail(
            0,
            0,
            None,
            row["input_tokens"],
            row["output_tokens"],
            row["cached_tokens"],
            row["cache_write_tokens"],
            row["cache_write_1h_tokens"],
            row["reasoning_tokens"],
        )
        at = datetime.combine(row["_day"], time(12), tzinfo=timezone.utc)
        cost = registry.price_call(
            row["pricing_provider"], row["request_model"], stats, at=at, database_provider=None
        )
        amounts.append(money(cost.amount) if cost.status == "calculated" else None)
    priced = distinct.with_columns(pl.Series("_new", amounts, dtype=pl.Decimal(38, COST_SCALE)))
    joined = data.join(priced, on=[*shape, "_day"], how="left", nulls_equal=True)
    names = list(by)
    result = joined.group_by(names).agg(
        pl.len().cast(pl.Int64).alias("calls"),
        pl.col("cost_usd").sum().alias("cost_usd"),
        pl.when(pl.col("_new").is_not_null().any()).then(pl.col("_new").sum()).alias("repriced_usd"),
        (pl.col("_new") - pl.col("cost_usd")).sum().alias("difference_usd"),
        pl.col("_new").is_null().sum().cast(pl.Int64).alias("unpriced_calls"),
    )
    return result.select(
        [*names, "calls", "cost_usd", "repriced_usd", "difference_usd", "unpriced_calls"]
    ).sort(names, nulls_last=True)
