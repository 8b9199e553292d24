"""The effective price table as rows (files over the database), written as a seed-format CSV, and
compared with another source (a LiteLLM JSON file, or the database)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from . import schema as S
from .database import PriceDatabase, database_version
from .diff import RowChange, compare_prices
from .index import PriceTable, database_row
from .litellm import convert_litellm, format_price
from .loader import parse_price_text
from .records import PriceRow, normalise, provider_key

__all__ = [
    "compare_with_database",
    "compare_with_litellm",
    "effective_rows",
    "export_note",
    "row_cells",
    "write_price_csv",
]


def effective_rows(
    table: PriceTable, providers: Iterable[str] = (), at: datetime | None = None
) -> list[PriceRow]:
    """The rows in effect at ``at`` (default now) for ``providers`` (all when empty): every file row,
    then each database model of those providers that no file row names."""
    when = at or datetime.now(timezone.utc)
    wanted = {provider_key(p) for p in providers}
    rows = [r for r in table.rows() if not wanted or provider_key(r.provider) in wanted]
    named = {(provider_key(r.provider), normalise(r.model)) for r in rows}
    database = table.database
    if database is not None:
        ids = sorted(wanted) if wanted else [p.id for p in database.providers]
        for provider in ids:
            for model in database.models(provider):
                key = (provider_key(model.provider_id), normalise(model.model_id))
                if key not in named:
                    named.add(key)
                    rows.append(database_row(model, when))
    return rows


def row_cells(row: PriceRow) -> dict[str, str]:
    """The CSV cells of ``row``, keyed by column (empty where the row has no value)."""

    def money(value: Decimal | None) -> str:
        return "" if value is None else format_price(value)

    return {
        S.PROVIDER: row.provider,
        S.MODEL_FAMILY: row.model_family,
        S.MODEL: row.model,
        S.INPUT: money(row.input),
        S.CACHED: money(row.cached),
        S.OUTPUT: money(row.output),
        S.CACHE_WRITE_5M: money(row.cache_write_5m),
        S.CACHE_WRITE_1H: money(row.cache_write_1h),
        S.LC_THRESHOLD: "" if row.long_context_threshold is None else str(row.long_context_threshold),
        S.LC_INPUT: money(row.long_context_input),
        S.LC_CACHED: money(row.long_context_cached),
        S.LC_OUTPUT: money(row.long_context_output),
        S.LC_CACHE_WRITE_5M: money(row.long_context_cache_write_5m),
        S.LC_CACHE_WRITE_1H: money(row.long_context_cache_write_1h),
        S.REASONING: money(row.reasoning),
        S.REQUEST_FEE: money(row.request_fee_per_k),
        S.VALID_FROM: row.valid_from.isoformat() if row.valid_from else "",
        S.CURRENCY: S.DEFAULT_CURRENCY,
        S.SOURCE: row.source or row.location,
        S.CHECKED: row.checked.isoformat() if row.checked else "",
        S.MATCH: row.match,
    }


def write_price_csv(rows: Iterable[PriceRow], handle: TextIO, *, note: str = "") -> int:
    """Write ``rows`` as a price file (every column, header first); returns the number written."""
    if note:
        handle.writelines(f"# {line}\n" for line in note.splitlines())
    writer = csv.DictWriter(handle, fieldnames=list(S.COLUMNS), lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row_cells(row))
        count += 1
    return count


def export_note(providers: Iterable[str]) -> str:
    """The comment heading an exported file: what it holds and where the prices came from."""
    names = ", ".join(providers) or "all providers"
    now = datetime.now(timezone.utc).date().isoformat()
    return (
        f"statek pricing export of {names} on {now} (genai-prices {database_version()} and price files).\n"
        "USD per million tokens; REQUEST_PRICE_PER_K is USD per 1000 requests. Format: docs/pricing.md.\n"
        "Prices that change by time of day are exported as in force at export time."
    )


def _index(rows: Iterable[PriceRow]) -> dict[tuple[str, str], PriceRow]:
    return {(provider_key(r.provider), normalise(r.model)): r for r in rows if r.valid_from is None}


def _compare(
    rows: Iterable[PriceRow], lookup: Callable[[PriceRow], PriceRow | None]
) -> tuple[list[RowChange], list[PriceRow]]:
    changes: list[RowChange] = []
    missing: list[PriceRow] = []
    for row in rows:
        other = lookup(row)
        if other is None:
            missing.append(row)
            continue
        change = compare_prices(row, other)
        if change is not None:
            changes.append(change)
    return changes, missing


def compare_with_litellm(
    rows: Iterable[PriceRow], path: str | Path
) -> tuple[list[RowChange], list[PriceRow]]:
    """Rows whose prices differ from LiteLLM's JSON at ``path`` (``changes``: theirs as ``new``) and
    rows LiteLLM does not list. Raises ``ValueError``/``OSError`` for an unreadable file."""
    converted = convert_litellm(path)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(S.COLUMNS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(converted.rows)
    theirs, _ = parse_price_text(text.getvalue(), str(path))
    index = _index(theirs)
    return _compare(rows, lambda r: index.get((provider_key(r.provider), normalise(r.model))))


def compare_with_database(
    rows: Iterable[PriceRow], database: PriceDatabase, at: datetime | None = None
) -> tuple[list[RowChange], list[PriceRow]]:
    """Rows whose prices differ from the database's for the same provider and model, and rows it
    does not price."""
    when = at or datetime.now(timezone.utc)

    def lookup(row: PriceRow) -> PriceRow | None:
        model = database.find(provider_key(row.provider), row.model)
        return database_row(model, when) if model is not None else None

    return _compare(rows, lookup)
