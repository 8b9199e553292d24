"""Reading the ledger back: :func:`scan` (a ``polars.LazyFrame``), :func:`report` (totals per group)
and :func:`compact` (many small files into one).

A report counts as ``LLM_Usage`` does: ``calls`` are the calls that got an answer (outcome ``ok``),
``failed_calls`` those that failed for good (outcome ``error``); calls a budget refused were never
sent and count in neither (``refused_calls``). ``cost_usd`` sums the calls' own exact costs (never
re-priced from summed tokens); ``unpriced_calls`` counts answered calls without a cost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .parquet import table_files, write_frame
from .schema import ATTRIBUTE_PREFIX, polars_schema

if TYPE_CHECKING:
    import polars as pl

__all__ = ["BUILTIN_KEYS", "compact", "group_column", "report", "scan"]

BUILTIN_KEYS = {
    "model": "request_model",
    "response_model": "response_model",
    "provider": "provider",
    "job": "job_id",
    "root_job": "root_job_id",
    "service": "service_name",
    "status": "cost_status",
    "outcome": "outcome",
}
"""Report keys that name a column; ``day`` is the UTC day of the call's start; any other key is a
job attribute."""


def scan(directory: str | os.PathLike[str], table: str = "calls") -> pl.LazyFrame:
    """All of a ledger directory's ``table`` (``calls`` or ``jobs``) as one lazy frame.

    Files written by different processes may carry different job attribute columns (``attr.<key>``);
    the frame has the union of them, null where a file had none.
    """

    return _scan_files(table_files(directory, table), table)


def _scan_files(files: list[Path], table: str) -> pl.LazyFrame:
    import polars as pl

    schema: dict[str, Any] = dict(polars_schema(table))
    if not files:
        return pl.LazyFrame(schema=schema)
    for path in files:
        for name, dtype in pl.read_parquet_schema(path).items():
            if name.startswith(ATTRIBUTE_PREFIX):
                schema.setdefault(name, dtype)
    return pl.scan_parquet(
        [str(p) for p in files], schema=schema, missing_columns="insert", extra_columns="ignore"
    )


def group_column(key: str) -> str:
    """The frame column a report key groups by."""
    if key == "day":
        return "day"
    return BUILTIN_KEYS.get(key, ATTRIBUTE_PREFIX + key)


def report(
    calls: pl.LazyFrame,
    by: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    job: str | None = None,
) -> pl.DataFrame:
    """Totals of ``calls`` (a :func:`scan` of the ``calls`` table) per group of ``by`` keys.

    ``since``/``until`` bound the calls' start (``until`` exclusive); ``job`` keeps the calls of that
    job and of its child jobs. The result is sorted by the group keys; its columns are the keys and
    ``calls``, ``failed_calls``, ``refused_calls``, ``input_tokens``, ``cached_tokens``,
    ``output_tokens``, ``reasoning_tokens``, ``cost_usd`` (exact decimal; null when no call of the
    group had a cost), ``unpriced_calls``.
    """
    import polars as pl

    frame = calls
    schema = frame.collect_schema()
    if since is not None:
        frame = frame.filter(pl.col("start") >= since)
    if until is not None:
        frame = frame.filter(pl.col("start") < until)
    if job is not None:
        frame = frame.filter((pl.col("job_id") == job) | pl.col("parent_job_ids").list.contains(job))
    keys: list[Any] = []
    for key in by:
        column = group_column(key)
        if key == "day":
            keys.append(pl.col("start").dt.date().alias("day"))
        elif column in schema:
            keys.append(pl.col(column).alias(key))
        else:  # an attribute no file has: one group, null
            keys.append(pl.lit(None, dtype=pl.String).alias(key))
    ok = pl.col("outcome") == "ok"
    aggregates = [
        ok.sum().cast(pl.Int64).alias("calls"),
        (pl.col("outcome") == "error").sum().cast(pl.Int64).alias("failed_calls"),
        (pl.col("outcome") == "refused").sum().cast(pl.Int64).alias("refused_calls"),
        pl.col("input_tokens").sum().alias("input_tokens"),
        pl.col("cached_tokens").sum().alias("cached_tokens"),
        pl.col("output_tokens").sum().alias("output_tokens"),
        pl.col("reasoning_tokens").sum().alias("reasoning_tokens"),
        # null, never a made-up 0, when no call of the group had a cost (as LLM_Usage.total_cost)
        pl.when(pl.col("cost_usd").is_not_null().any()).then(pl.col("cost_usd").sum()).alias("cost_usd"),
        (ok & pl.col("cost_usd").is_null()).sum().cast(pl.Int64).alias("unpriced_calls"),
    ]
    if keys:
        grouped = frame.group_by(keys).agg(aggregates).sort(list(by), nulls_last=True)
    else:
        grouped = frame.select(aggregates)
    return grouped.collect()


def compact(directory: str | os.PathLike[str], *, min_files: int = 2) -> dict[str, int]:
    """Merge each table's files into one file; returns how many files each table had merged.

    Safe beside running writers: only the files listed when it starts are merged, the merged file
    is renamed into place before they are removed, and a record id that two files hold (a crash
    between the rename and the removal, then a second run) is kept once.
    """

    merged: dict[str, int] = {}
    for table in ("calls", "jobs"):
        files = table_files(directory, table)
        if len(files) < min_files:
            merged[table] = 0
            continue
        data = (
            _scan_files(files, table)
            .unique(subset=["record_id"], keep="first", maintain_order=True)
            .collect()
        )
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-compacted-{os.getpid()}-{int(time.time_ns() % 10**9):09d}.parquet"
        write_frame(data, Path(directory) / table, name)
        for path in files:
            path.unlink(missing_ok=True)
        merged[table] = len(files)
    return merged
