"""The price database itself against LiteLLM's price map: which model ids the database prices
differently, and which it does not price (``statek pricing compare --litellm FILE --database``).

Every chat model of LiteLLM's map whose provider the database knows is looked up the way a call is
(the database's matching, with statek's version-suffix rule), and its standard prices (input, cache
read, output, cache writes, long-context tier) are compared with LiteLLM's where both list them. This
is how stale database rows are found (``statek/data/overrides.csv`` holds those statek corrects).
Service-tier rows (``openai:flex``) are compared with the database's prices for that tier (its
``service_tier`` price variants) where it has them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import schema as S
from .database import PriceDatabase, database_version
from .diff import RowChange, compare_prices
from .index import database_row
from .litellm import convert_litellm
from .loader import parse_price_text
from .records import PriceRow, provider_key

__all__ = ["DatabaseComparison", "compare_database_with_litellm"]


@dataclass
class DatabaseComparison:
    """``changes``: the database's row (as the requested id) against LiteLLM's, prices that differ;
    ``missing``: LiteLLM rows the database does not price; ``same``: how many agree; ``skipped``:
    LiteLLM rows of providers the database does not know."""

    changes: list[RowChange] = field(default_factory=list)
    missing: list[PriceRow] = field(default_factory=list)
    same: int = 0
    skipped: int = 0


def compare_database_with_litellm(
    database: PriceDatabase,
    path: str | Path,
    providers: tuple[str, ...] = (),
    at: datetime | None = None,
) -> DatabaseComparison:
    """Compare ``database`` with LiteLLM's JSON at ``path`` (only ``providers`` when given).
    Raises ``ValueError``/``OSError`` for an unreadable file."""
    converted = convert_litellm(path)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(S.COLUMNS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(converted.rows)
    theirs, _ = parse_price_text(text.getvalue(), str(path))
    wanted = {provider_key(p) for p in providers}
    when = at or datetime.now(timezone.utc)
    version = database_version()
    out = DatabaseComparison()
    for row in theirs:
        key = provider_key(row.provider)
        base, _, tier = key.partition(":")
        if wanted and base not in wanted:
            continue
        if database.provider(base) is None:
            out.skipped += 1
            continue
        found = database.find_tier(base, row.model, tier) if tier else database.find(key, row.model)
        if found is None:
            if not tier:  # a tier the database has no variant for is not a missing model
                out.missing.append(row)
            continue
        ours = database_row(found, when)._replace(
            provider=key,
            model=row.model,
            path=f"genai-prices {version}: {found.provider_id}{':' + tier if tier else ''}/{found.model_id}",
        )
        change = compare_prices(ours, row)
        listed = tuple(c for c in change.changes if c[1] is not None and c[2] is not None) if change else ()
        if listed:
            out.changes.append(RowChange("changed", ours, listed))
        else:
            out.same += 1
    return out
