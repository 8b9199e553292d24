"""The compiled, immutable in-memory price table and its lookup.

Lookup order for ``(provider, model, family)``, on normalised names (:func:`normalise`):

1. the rows of price files and of ``set_model_pricing`` for the provider (aliases such as
   ``CLAUDE`` → ``anthropic`` and ``GEMINI`` → ``google`` folded first), matched **exactly**: the
   row's ``MODEL``, else a pattern of a row's ``MATCH`` column (an exact alternative name first,
   then the pattern with the most literal characters; see :func:`~statek.metering.loader.match_patterns`).
   Nothing is ever priced by a guessed prefix: ``gpt-4o-2024-05-13`` is not ``gpt-4o``;
2. the family: with a family given, rows of that family, else rows without one; with no family given,
   rows without one, else the first row loaded for that model;
3. the date: among the row's ``VALID_FROM`` versions, the latest one not after the call's time;
4. when no file row matches: the price database (:mod:`statek.metering.database`), with its own
   matching rules, for the database provider of the call.

Resolution is cached per ``(provider, model, family, database provider)`` as given by the caller,
so a warm lookup costs one dict lookup; the table never changes after construction (reloads build
a new table).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from ..types import CallDetail
from .cost import CompiledRate, compile_rate
from .database import DatabaseModel, PriceDatabase
from .loader import match_patterns
from .records import PriceRow, RowKey, normalise, provider_key, row_key
from .types import NO_USAGE, UNPRICED, CallCost

__all__ = ["FROM_PROVIDER", "PriceTable", "Resolved", "provider_key"]

_RESOLUTION_CACHE_LIMIT: Final = 4_096
"""Cached lookups before the cache starts over: a bound against unbounded model ids (a flood of
request ids sent as the model cost ~0.5 KB each at 65,536; issue 22's flood measurement)."""
_MISSING: Final[Any] = object()
_ALWAYS: Final = -math.inf
_DETAIL_FIELDS: Final = len(CallDetail._fields)
_HAS_USAGE: Final = CallDetail._fields.index("has_usage")
_UNPACKED: Final = CallDetail._fields[2:9]
"""The fields :meth:`PriceTable.price_call` unpacks by position (a test pins their order)."""
FROM_PROVIDER: Final = "\0from-provider"
"""Default database provider: the one the call's provider name resolves to."""


class _Entry:
    """All ``VALID_FROM`` versions of one file (provider, family, model), oldest first, compiled."""

    __slots__ = ("only", "rates", "rows", "starts")

    def __init__(self, rows: list[PriceRow]) -> None:
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

    def rate_at(self, at: datetime | None) -> CompiledRate | None:
        i = bisect.bisect_right(self.starts, _timestamp(at)) - 1
        return self.rates[i] if i >= 0 else None

    def row_at(self, at: datetime | None) -> PriceRow | None:
        i = bisect.bisect_right(self.starts, _timestamp(at)) - 1
        return self.rows[i] if i >= 0 else None


class _DatabaseEntry:
    """A database model as a table entry."""

    __slots__ = ("model", "only")

    def __init__(self, model: DatabaseModel) -> None:
        self.model = model
        self.only = model.only

    def rate_at(self, at: datetime | None) -> CompiledRate | None:
        return self.model.rate_at(_now() if at is None else at)


Resolved = _Entry | _DatabaseEntry


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _timestamp(at: datetime | None) -> float:
    if at is None:
        return _now().timestamp()
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
        at: datetime | None = None,
        model_family: str | None = None,
        database_provider: str | None = FROM_PROVIDER,
    ) -> CallCost:
        """Price one call. See :func:`statek.metering.price_call` for the rule.

        ``stats`` is a :class:`~statek.types.CallDetail` (or any tuple with its six seed fields: the
        other counts then default to 0). An answer without usage (``has_usage`` false, or no token
        counted at all) and without a reported cost is ``no_usage``."""
        entry = self._resolved.get((provider, model, model_family, database_provider), _MISSING)  # type: ignore[arg-type]
        if entry is _MISSING:
            entry = self._resolve_and_cache(provider, model, model_family, database_provider)
        if len(stats) == _DETAIL_FIELDS:  # a CallDetail: one C-level slice instead of nine lookups
            reported, inp, out, cached, write, write_1h, reasoning = stats[2:9]
            has_usage = stats[_HAS_USAGE]
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
            if rate is not None:
                amount = rate.cost(inp, cached, write, write_1h, out, reasoning)
                if reported is not None:
                    return CallCost(reported, "reported", "USD", amount)
                return CallCost(amount, "calculated")
        if reported is not None:
            return CallCost(reported, "reported")
        return UNPRICED

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
