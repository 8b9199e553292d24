"""The ledger's column types, for Parquet (polars) and Postgres.

polars is imported inside the functions: ``import statek`` must not load it.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import TYPE_CHECKING, Any

from .rows import CALL_COLUMNS, JOB_COLUMNS

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ATTRIBUTE_PREFIX",
    "COST_SCALE",
    "MONEY_COLUMNS",
    "OUTCOMES",
    "TABLES",
    "attribute_column",
    "money",
    "polars_schema",
    "to_frame",
]

ATTRIBUTE_PREFIX = "attr."
"""Job attributes are Parquet columns of their own, ``attr.<key>`` (a file has the keys it saw)."""
COST_SCALE = 18
"""Money columns are ``Decimal(38, 18)``: exact to 10^-18 USD (a price per token is ~10^-8)."""
TABLES = ("calls", "jobs")
OUTCOMES = ("ok", "error", "refused")
"""A finished call's outcomes (``CallRecord.outcome``)."""

MONEY_COLUMNS = _MONEY = {
    "cost_usd",
    "reported_cost_usd",
    "table_cost_usd",
    "cost_drift_usd",
    "budget_usd",
    "budget_spent_usd",
}
_FLOAT = {"duration_s", "first_chunk_s"}
_BOOL = {"stream"}
_TIME = {"start", "end"}
_INT = {
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "bytes_sent",
    "bytes_received",
    "retries",
    "calls",
    "failed_calls",
    "unpriced_calls",
    "no_usage_calls",
    "budget_tokens",
    "budget_calls",
    "budget_refusals",
}
_QUANTUM = Decimal(1).scaleb(-COST_SCALE)
_COLUMN_CONTEXT = Context(prec=38)


def attribute_column(key: str) -> str:
    """The Parquet column of job attribute ``key``."""
    return ATTRIBUTE_PREFIX + key


def _dtype(column: str) -> Any:
    import polars as pl

    if column in _MONEY:
        return pl.Decimal(38, COST_SCALE)
    if column in _FLOAT:
        return pl.Float64
    if column in _BOOL:
        return pl.Boolean
    if column in _TIME:
        return pl.Datetime("us", "UTC")
    if column in _INT:
        return pl.Int64
    if column == "parent_job_ids":
        return pl.List(pl.String)
    if column == "outcome":  # a dictionary of three: reports compare small integers, not strings
        return pl.Enum(OUTCOMES)
    return pl.String


def polars_schema(table: str) -> dict[str, Any]:
    """The fixed columns of ``table`` (``calls`` or ``jobs``), without the attribute columns."""
    columns = CALL_COLUMNS if table == "calls" else JOB_COLUMNS
    return {c: _dtype(c) for c in columns if c != "attributes"}


def money(value: Decimal | None) -> Decimal | None:
    """``value`` at the ledger's scale (:data:`COST_SCALE` decimal places), ``None`` kept."""
    if value is None:
        return None
    # 38 digits, as the column: the default context's 28 would refuse $10^10 at 18 decimal places
    return value.quantize(_QUANTUM, context=_COLUMN_CONTEXT)


def to_frame(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The rows of ``table`` as one DataFrame: fixed columns typed, attributes as ``attr.<key>``."""
    import polars as pl

    schema = polars_schema(table)
    data: dict[str, list[Any]] = {}
    for column in schema:
        values = [row[column] for row in rows]
        if column in _MONEY:
            values = [money(v) for v in values]
        data[column] = values
    keys = sorted({key for row in rows for key in row["attributes"]})
    for key in keys:
        data[attribute_column(key)] = [row["attributes"].get(key) for row in rows]
        schema = {**schema, attribute_column(key): pl.String}
    return pl.DataFrame(data, schema=schema)
