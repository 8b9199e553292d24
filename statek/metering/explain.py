"""Which price row prices a call, and by which rule: what ``statek pricing explain`` prints.

The steps are those of :meth:`statek.metering.index.PriceTable.price_call`, in order: the service
tier's rows (``openai:flex``) when the call names a non-standard tier; else the file rows of the
provider (by ``MODEL``, then a ``MATCH`` pattern), then those of its fallback provider (``vertex`` →
``google``); else the database, with its own matching and the version-suffix rule
(:func:`~statek.metering.database.acceptable_match`). Every step tried is listed, so a price can be
audited: the answer names the row (``price_model``), the file and line or database version, and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .database import acceptable_match, database_version
from .index import (
    FILE_FALLBACKS,
    FROM_PROVIDER,
    STANDARD_PRICED_TIERS,
    STANDARD_TIERS,
    PriceTable,
    database_row,
)
from .records import PriceRow, normalise, provider_key

__all__ = ["Explanation", "explain"]


@dataclass
class Explanation:
    """``row`` prices the call (``None``: unpriced); ``price_model`` is what :class:`CallCost` reports;
    ``steps`` says, one line each, what was tried and why it matched or not."""

    provider: str
    model: str
    row: PriceRow | None = None
    price_model: str | None = None
    steps: list[str] = field(default_factory=list)


def _file_step(table: PriceTable, key: str, model: str, family: str | None, out: Explanation) -> bool:
    entry = table._resolve_key(key, model, family)
    if entry is None:
        out.steps.append(f"price files: no row of provider {key!r} names {model!r} (MODEL or MATCH)")
        return False
    row = entry.row_at(None)
    how = "MODEL" if normalise(entry.rows[0].model) == normalise(model) else f"MATCH {entry.rows[0].match!r}"
    where = entry.rows[0].location or entry.rows[0].path
    out.steps.append(f"price files: {where}: provider {key!r} row {entry.rows[0].model!r} matches by {how}")
    out.row, out.price_model = row, entry.name
    if row is None:
        out.steps.append("  but none of its VALID_FROM versions is in force now: unpriced")
    return True


def explain(
    table: PriceTable,
    provider: str,
    model: str,
    *,
    tier: str | None = None,
    model_family: str | None = None,
    database_provider: str | None = FROM_PROVIDER,
) -> Explanation:
    """How ``table`` prices a call to ``model`` at ``provider`` (optionally in service tier ``tier``)."""
    out = Explanation(provider, model)
    key = provider_key(provider)
    out.steps.append(f"provider {provider!r} is price provider {key!r}")
    tier = tier.strip().lower() if tier else None
    if tier and tier not in STANDARD_TIERS and (key, tier) not in STANDARD_PRICED_TIERS:
        out.steps.append(f"service tier {tier!r}: only {tier!r} prices price it, never the standard rate")
        if _file_step(table, f"{key}:{tier}", model, model_family, out):
            return out
        if key in FILE_FALLBACKS and _file_step(
            table, f"{FILE_FALLBACKS[key]}:{tier}", model, model_family, out
        ):
            return out
        database = table.database
        name = provider_key(provider if database_provider == FROM_PROVIDER else database_provider or "")
        found = database.find_tier(name, model, tier) if database is not None and database_provider else None
        if found is None:
            out.steps.append(
                f"genai-prices {database_version()}: no {tier!r} price variant for {model!r}: unpriced"
            )
            return out
        starts = f" (from {found.starts})" if found.starts else ""
        out.steps.append(
            f"genai-prices {database_version()}: {found.provider_id}/{found.model_id} "
            f"service_tier={tier!r} price variant{starts}"
        )
        out.row = database_row(found, datetime.now(timezone.utc))
        out.price_model = f"{found.provider_id}:{tier}/{found.model_id}"
        return out
    if tier:
        out.steps.append(f"service tier {tier!r} is billed at the standard prices")
    if _file_step(table, key, model, model_family, out):
        return out
    if key in FILE_FALLBACKS:
        out.steps.append(f"provider {key!r} falls back to the rows of {FILE_FALLBACKS[key]!r}")
        if _file_step(table, FILE_FALLBACKS[key], model, model_family, out):
            return out
    database = table.database
    if database is None or database_provider is None:
        out.steps.append("no price database for this provider: unpriced")
        return out
    name = provider_key(provider if database_provider == FROM_PROVIDER else database_provider)
    db_provider = database.provider(name)
    if db_provider is None:
        out.steps.append(f"the price database has no provider {name!r}: unpriced")
        return out
    version = database_version()
    info = db_provider.find_model(model.strip(), all_providers=database.providers) if model.strip() else None
    if info is None:
        out.steps.append(
            f"genai-prices {version}: provider {db_provider.id!r} has no model matching {model!r}"
        )
        return out
    if not acceptable_match(model.strip(), info.id):
        out.steps.append(
            f"genai-prices {version}: {db_provider.id!r} would match {info.id!r}, refused: "
            f"{model!r} extends that id with more than a version suffix (another SKU): unpriced"
        )
        return out
    found = database.find(name, model)
    if found is None:
        out.steps.append(f"genai-prices {version}: {info.id!r} has no input token price")
        return out
    owner = "" if found.provider_id == db_provider.id else f" (falls back to provider {found.provider_id!r})"
    rule = "its id" if normalise(info.id) == normalise(model) else "its match rules"
    out.steps.append(f"genai-prices {version}: {found.provider_id}/{found.model_id} by {rule}{owner}")
    out.row = database_row(found, datetime.now(timezone.utc))
    out.price_model = f"{found.provider_id}/{found.model_id}"
    return out
