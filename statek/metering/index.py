"""The compiled, immutable in-memory price table and its lookup.

Lookup order for ``(provider, model, family)``, on normalised names (:func:`normalise`):

1. the rows of price files and of ``set_model_pricing`` for the provider (aliases such as
   ``CLAUDE`` → ``anthropic`` and ``GEMINI`` → ``google`` folded first; a ``vertex`` call without
   ``vertex`` rows takes the ``google`` rows, :data:`FILE_FALLBACKS`), matched **exactly**: the
   row's ``MODEL``, else a pattern of a row's ``MATCH`` column (an exact alternative name first,
   then the pattern with the most literal characters; see :func:`~statek.metering.loader.match_patterns`).
   Nothing is ever priced by a guessed prefix: ``gpt-4o-2024-05-13`` is not ``gpt-4o``;
2. the family: with a family given, rows of that family, else rows without one; with no family given,
   rows without one, else the first row loaded for that model;
3. the date: among the row's ``VALID_FROM`` versions, the latest one not after the call's time;
4. when no file row matches: the price database (:mod:`statek.metering.database`), with its own
   matching rules and statek's version-suffix rule, for the database provider of the call;
5. when nothing prices the request's model, the model the answer names (``response_model``: an
   Azure deployment answers with the model behind it);
6. a call whose answer names a non-standard service tier is priced by the rows of
   ``provider:tier``, else the database's price variants for that tier, else not at all.

Resolution is cached per ``(provider, model, family, database provider)`` as given by the caller,
so a warm lookup costs one dict lookup; the table never changes after construction (reloads build
a new table).
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from ..types import CallDetail
from .cost import MODALITY_ORDER, CompiledRate, compile_rate
from .database import DatabaseModel, PriceDatabase
from .loader import match_patterns
from .records import PriceRow, RowKey, normalise, provider_key, row_key
from .types import NO_USAGE, UNPRICED, CallCost

__all__ = ["FROM_PROVIDER", "STANDARD_TIERS", "PriceTable", "Resolved", "provider_key"]

_RESOLUTION_CACHE_LIMIT: Final = 4_096
"""Cached lookups before the cache starts over: a bound against unbounded model ids (a flood of
request ids sent as the model cost ~0.5 KB each at 65,536; issue 22's flood measurement)."""
_new_cost: Final = tuple.__new__
_MISSING: Final[Any] = object()
_ALWAYS: Final = -math.inf
_DETAIL_FIELDS: Final = len(CallDetail._fields)
_HAS_USAGE: Final = CallDetail._fields.index("has_usage")
_UNPACKED: Final = CallDetail._fields[2:9]
"""The fields :meth:`PriceTable.price_call` unpacks by position (a test pins their order)."""
_TIER: Final = CallDetail._fields.index("service_tier")
_EXPLAINED: Final = CallDetail._fields.index("explained_cost")
_RESPONSE_MODEL: Final = CallDetail._fields.index("response_model")
_SEARCHES: Final = CallDetail._fields.index("web_search_requests")
_MODAL: Final = slice(
    CallDetail._fields.index(MODALITY_ORDER[0]), CallDetail._fields.index(MODALITY_ORDER[-1]) + 1
)
STANDARD_TIERS: Final = frozenset({"default", "standard", "standard_only", "auto", "on_demand"})
"""Service tiers billed at a model's standard prices; any other tier an answer names (``flex``,
``priority``, ``batch``, ...) is priced by that tier's rows (provider ``openai:flex``) or not at all."""
STANDARD_PRICED_TIERS: Final = frozenset({("groq", "flex")})
"""(provider, tier) pairs billed at the standard prices: Groq's flex tier "matches the on-demand
tier" (https://console.groq.com/docs/flex-processing, checked 2026-12-06)."""
FILE_FALLBACKS: Final = {"vertex": "google"}
"""A provider whose calls no file row of its own prices takes the rows of another: a Vertex AI call
is priced by ``vertex`` rows (Vertex's own prices), else by the Gemini API's ``google`` rows."""
_logged_tier_misses: set[tuple[str, str, str]] = set()
logger = logging.getLogger("statek.metering")
FROM_PROVIDER: Final = "\0from-provider"
"""Default database provider: the one the call's provider name resolves to."""


class _Entry:
    """All ``VALID_FROM`` versions of one file (provider, family, model), oldest first, compiled.
    ``name`` is ``provider/model`` of the rows (what :attr:`CallCost.price_model` reports)."""

    __slots__ = ("name", "only", "rates", "rows", "starts")

    def __init__(self, rows: list[PriceRow]) -> None:
        self.name = f"{provider_key(rows[0].provider)}/{rows[0].model}"
        rows.sort(key=lambda r: _ALWAYS if r.valid_from is None else r.valid_from.timestamp())
        self.rows: tuple[PriceRow, ...] = tuple(rows)
        self.starts = tuple(_ALWAYS if r.valid_from is None else r.valid_from.timestamp() for r in rows)
        self.rates: tuple[CompiledRate, ...] = tuple(
            compile_rate(
                r.prices, r.long_context_threshold, r.long_context, request_fee_per_k=r.request_fee_per_k
            )
            for r in rows
        )
        # The common case, one undated row, needs no clock at all.
        self.only: CompiledRate | None = (
            self.rates[0] if len(rows) == 1 and rows[0].valid_from is None else None
        )

    def rate_at(self, at: datetime | float | None) -> CompiledRate | None:
        i = bisect.bisect_right(self.starts, _timestamp(at)) - 1
        return self.rates[i] if i >= 0 else None

    def row_at(self, at: datetime | None) -> PriceRow | None:
        i = bisect.bisect_right(self.starts, _timestamp(at)) - 1
        return self.rows[i] if i >= 0 else None


class _DatabaseEntry:
    """A database model as a table entry."""

    __slots__ = ("model", "name", "only")

    def __init__(self, model: DatabaseModel) -> None:
        self.model = model
        tier = f":{model.service_tier}" if model.service_tier else ""
        self.name = f"{model.provider_id}{tier}/{model.model_id}"
        self.only = model.only

    def rate_at(self, at: datetime | float | None) -> CompiledRate | None:
        at = _datetime(at)
        starts = self.model.starts
        if (
            starts is not None
            and (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).date()
            < starts
        ):
            return None  # the database has this tier's prices from that day on only
        return self.model.rate_at(at)


Resolved = _Entry | _DatabaseEntry


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _datetime(at: datetime | float | None) -> datetime:
    """``at`` as a datetime: now for ``None``, UTC for epoch seconds."""
    if at is None:
        return _now()
    if isinstance(at, datetime):
        return at
    return datetime.fromtimestamp(at, timezone.utc)


def _timestamp(at: datetime | float | None) -> float:
    """``at`` as epoch seconds (now for ``None``; a naive datetime is UTC). Epoch seconds go through
    a datetime too: rounded to its microseconds, a call is priced as when it was given as one."""
    at = _datetime(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.timestamp()


class PriceTable:
    """An immutable price table: file layers in precedence order (later wins), code overrides on
    top (``replace_all``: they replace every dated version of their key), the database below all.

    A later layer's row replaces an earlier one with the same provider, family, model and
    ``VALID_FROM``. ``database`` is ``None`` for a table of files only.
    """

    def __init__(
        self,
        layers: Sequence[Sequence[PriceRow]] = (),
        replace_all: Iterable[PriceRow] = (),
        database: PriceDatabase | None = None,
    ) -> None:
        self.database = database
        by_model: dict[tuple[str, str], list[PriceRow]] = {}
        keys: dict[int, RowKey] = {}
        for layer in layers:
            for row in layer:
                key = keys[id(row)] = row_key(row)
                rows = by_model.setdefault((key[0], key[2]), [])
                rows[:] = [
                    r for r in rows if not (keys[id(r)][1] == key[1] and r.valid_from == row.valid_from)
                ]
                rows.append(row)
        for row in replace_all:
            key = keys[id(row)] = row_key(row)
            rows = by_model.setdefault((key[0], key[2]), [])
            rows[:] = [r for r in rows if keys[id(r)][1] != key[1]]
            rows.append(row)
        patterns: dict[str, list[tuple[int, str, re.Pattern[str] | None, str]]] = {}
        for (provider, model), rows in by_model.items():
            for row in rows:
                for pattern in match_patterns(row.match):
                    literal = len(pattern.replace("*", ""))
                    compiled = re.compile(re.escape(pattern).replace(r"\*", ".*")) if "*" in pattern else None
                    patterns.setdefault(provider, []).append((-literal, pattern, compiled, model))
        for entries in patterns.values():
            entries.sort(key=lambda e: (e[2] is not None, e[0]))  # exact alternatives, then most literal
        self._by_model = by_model
        self._keys = keys
        self._patterns = patterns
        self._entries: dict[RowKey, _Entry] = {}
        self._resolved: dict[tuple[str, str, str | None, str], Resolved | None] = {}

    @classmethod
    def from_rows(cls, rows: Iterable[PriceRow], database: PriceDatabase | None = None) -> PriceTable:
        """A table of rows (later rows win, like later files)."""
        return cls([list(rows)], database=database)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_model.values())

    # ----------------------------------------------------------------- hot path
    def price_call(
        self,
        provider: str,
        model: str,
        stats: CallDetail,
        at: datetime | float | None = None,
        model_family: str | None = None,
        database_provider: str | None = FROM_PROVIDER,
    ) -> CallCost:
        """Price one call. See :func:`statek.metering.price_call` for the rule (``at``: a datetime
        or epoch seconds; default now).

        ``stats`` is a :class:`~statek.types.CallDetail` (or any tuple with its six seed fields: the
        other counts then default to 0). An answer without usage (``has_usage`` false, or no token
        counted at all) and without a reported cost is ``no_usage``."""
        entry = self._resolved.get((provider, model, model_family, database_provider), _MISSING)  # type: ignore[arg-type]
        if entry is _MISSING:
            entry = self._resolve_and_cache(provider, model, model_family, database_provider)
        detail = len(stats) == _DETAIL_FIELDS
        if detail:  # a CallDetail: one C-level slice instead of nine lookups
            reported, inp, out, cached, write, write_1h, reasoning = stats[2:9]
            has_usage = stats[_HAS_USAGE]
            if entry is None and stats[_RESPONSE_MODEL]:
                # The request named a deployment or alias no row prices (Azure OpenAI deployments):
                # the model the answer says served it.
                model = stats[_RESPONSE_MODEL]  # type: ignore[assignment]
                entry = self.resolve(provider, model, model_family, database_provider)
            tier: Any = stats[_TIER]
            if (
                tier is not None
                and tier not in STANDARD_TIERS
                and (provider_key(provider), tier) not in STANDARD_PRICED_TIERS
            ):
                entry = self._tier_entry(provider, tier, model, model_family, database_provider)
        else:  # the seed's six fields
            reported, inp, out, cached = stats[2:6]
            write = write_1h = reasoning = 0
            has_usage = True
        if reported is None and (not has_usage or not (inp or out)):
            return NO_USAGE
        if entry is not None:
            rate = entry.only
            if rate is None:
                rate = entry.rate_at(at)
            searches: Any = stats[_SEARCHES] if detail else 0
            if (
                rate is not None
                and (rate.output_listed or not out)
                and (not searches or rate.search_fee is not None)  # searches need their price
            ):
                # the modality split matters only to a rate that prices a modality (rare)
                modal: Any = stats[_MODAL] if detail and rate.modal is not None else None
                amount = rate.cost(inp, cached, write, write_1h, out, reasoning, modal, searches)
                if reported is not None:
                    explained: Any = stats[_EXPLAINED] if detail else None
                    if explained is not None:
                        # the answer itemised its fees and tools: they stand in for the table's fee
                        amount = amount - rate.fee_amount() + explained
                    return CallCost(reported, "reported", "USD", amount, entry.name)
                # tuple.__new__ skips the NamedTuple's Python-level __new__ (hot path)
                return _new_cost(CallCost, (amount, "calculated", "USD", None, entry.name))
        if reported is not None:
            return CallCost(reported, "reported")
        return UNPRICED

    def _tier_entry(
        self, provider: str, tier: str, model: str, model_family: str | None, database_provider: str | None
    ) -> Resolved | None:
        """The rows of ``provider:tier`` for ``model``, else the database's price variants for that
        tier. ``None``, logged once per (provider, tier, model), when none: the call is then
        unpriced, never priced at the standard rate."""
        key = (f"{provider}:{tier}", model, model_family, database_provider)
        entry = self._resolved.get(key, _MISSING)  # type: ignore[arg-type]
        if entry is not _MISSING:
            return entry  # type: ignore[no-any-return]
        entry = self._resolve(key[0], model, model_family)
        if entry is None and self.database is not None and database_provider is not None:
            name = provider if database_provider == FROM_PROVIDER else database_provider
            found = self.database.find_tier(provider_key(name), model, tier)
            entry = _DatabaseEntry(found) if found is not None else None
        if len(self._resolved) >= _RESOLUTION_CACHE_LIMIT:
            self._resolved.clear()
        self._resolved[key] = entry  # type: ignore[index]
        if entry is None:
            miss = (provider, tier, model)
            if miss not in _logged_tier_misses and len(_logged_tier_misses) < _RESOLUTION_CACHE_LIMIT:
                _logged_tier_misses.add(miss)
                logger.warning(
                    "statek has no %r service-tier price for %s model %r: such calls are unpriced "
                    "(add a row with PROVIDER %s:%s)",
                    tier,
                    provider,
                    model,
                    provider_key(provider),
                    tier,
                )
        return entry

    # ----------------------------------------------------------------- lookup
    def resolve(
        self,
        provider: str,
        model: str,
        model_family: str | None = None,
        database_provider: str | None = FROM_PROVIDER,
    ) -> Resolved | None:
        """The entry pricing ``model`` (file rows or database), cached; ``None`` when unpriced."""
        entry = self._resolved.get((provider, model, model_family, database_provider), _MISSING)  # type: ignore[arg-type]
        if entry is _MISSING:
            entry = self._resolve_and_cache(provider, model, model_family, database_provider)
        return entry  # type: ignore[no-any-return]

    def find(
        self,
        provider: str,
        model: str,
        model_family: str | None = None,
        at: datetime | None = None,
        database_provider: str | None = FROM_PROVIDER,
    ) -> PriceRow | None:
        """The row that prices ``model`` at ``at`` (default: now), or ``None``.

        A database price is returned as a row too (its ``path`` names ``genai-prices``).
        """
        entry = self.resolve(provider, model, model_family, database_provider)
        if entry is None:
            return None
        if isinstance(entry, _Entry):
            return entry.row_at(at)
        return database_row(entry.model, _now() if at is None else at)

    def rows(self) -> list[PriceRow]:
        """Every file row in effect, sorted by provider, model, family and date."""
        out = [row for rows in self._by_model.values() for row in rows]
        out.sort(
            key=lambda r: (
                provider_key(r.provider),
                normalise(r.model),
                normalise(r.model_family),
                _ALWAYS if r.valid_from is None else r.valid_from.timestamp(),
            )
        )
        return out

    def _resolve_and_cache(
        self, provider: str, model: str, model_family: str | None, database_provider: str | None
    ) -> Resolved | None:
        entry: Resolved | None = self._resolve(provider, model, model_family)
        if entry is None and self.database is not None and database_provider is not None:
            name = provider if database_provider == FROM_PROVIDER else database_provider
            found = self.database.find(provider_key(name), model)
            entry = _DatabaseEntry(found) if found is not None else None
        if len(self._resolved) >= _RESOLUTION_CACHE_LIMIT:
            self._resolved.clear()  # a bound against unbounded model ids; real workloads use a few
        self._resolved[(provider, model, model_family, database_provider)] = entry  # type: ignore[index]
        return entry

    def _resolve(self, provider: str, model: str, model_family: str | None) -> _Entry | None:
        p = provider_key(provider)
        found = self._resolve_key(p, model, model_family)
        base, colon, tier = p.partition(":")
        if found is None and base in FILE_FALLBACKS:
            found = self._resolve_key(FILE_FALLBACKS[base] + colon + tier, model, model_family)
        return found

    def _resolve_key(self, p: str, model: str, model_family: str | None) -> _Entry | None:
        m = normalise(model)
        family = None if model_family is None else normalise(model_family)
        for candidate in self._candidates(p, m):
            rows = self._by_model.get((p, candidate))
            if not rows:
                continue
            by_family: dict[str, list[PriceRow]] = {}
            for row in rows:
                by_family.setdefault(self._keys[id(row)][1], []).append(row)
            f = self._pick_family(by_family, family)
            if f is not None:
                key = (p, f, candidate)
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = _Entry(by_family[f])
                return entry
        return None

    def _candidates(self, provider: str, model: str) -> Iterable[str]:
        yield model
        for _, pattern, compiled, target in self._patterns.get(provider, ()):
            if (pattern == model) if compiled is None else compiled.fullmatch(model) is not None:
                yield target

    @staticmethod
    def _pick_family(families: dict[str, list[PriceRow]], family: str | None) -> str | None:
        if family is not None:
            if family in families:
                return family
            return "" if "" in families else None
        if "" in families:
            return ""
        return next(iter(families))


def database_row(model: DatabaseModel, at: datetime) -> PriceRow:
    """The standard prices of a database model at ``at``, as a price row (for display and export)."""
    prices, fee = model.prices_at(at)
    tier = model.tiers[0] if model.tiers else None
    from .database import database_version

    return PriceRow(
        provider=model.provider_id,
        model_family="",
        model=model.model_id,
        input=prices.input,
        cached=prices.cached,
        output=prices.output,
        cache_write_5m=prices.cache_write_5m,
        cache_write_1h=prices.cache_write_1h,
        long_context_threshold=tier[0] if tier else None,
        long_context_input=tier[1].input if tier else None,
        long_context_cached=tier[1].cached if tier else None,
        long_context_output=tier[1].output if tier else None,
        long_context_cache_write_5m=tier[1].cache_write_5m if tier else None,
        long_context_cache_write_1h=tier[1].cache_write_1h if tier else None,
        source=model.pricing_url,
        path=f"genai-prices {database_version()}",
        reasoning=prices.reasoning,
        request_fee_per_k=fee,
    )
