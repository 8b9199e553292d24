"""The compiled, immutable in-memory price table and its lookup.

Lookup order for ``(provider, model, family)``, on normalised names (:func:`normalise`):

1. the provider's rows (provider aliases such as ``CLAUDE`` → ``ANTHROPIC`` are folded first);
2. the model: an exact match, else the longest listed model that is a prefix of the asked-for id and
   ends where the id continues with a separator (``-``, ``_``, ``.``, ``:``, ``@``, ``/``), so
   ``claude-sonnet-4-5-20250929`` finds ``claude-sonnet-4-5`` but ``gpt-4o`` never finds ``gpt-4``;
3. the family: with a family given, rows of that family, else rows without one; with no family given,
   rows without one, else the first row loaded for that model;
4. the date: among the row's ``VALID_FROM`` versions, the latest one not after the call's time.

Resolution (steps 1–3) is cached per ``(provider, model, family)`` as given by the caller, so a hit
costs one dict lookup; the table never changes after construction (reloads build a new table).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from .cost import CompiledRate, compile_rate
from .records import PriceRow, normalise
from .types import UNPRICED, CallCost

if TYPE_CHECKING:
    from ..llm_api import LLM_Stats

__all__ = ["PROVIDER_ALIASES", "PriceTable", "RowKey", "row_key"]

PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "claude": "anthropic",
    "claudeai": "anthropic",
    "google": "gemini",
    "googleai": "gemini",
    "googlegemini": "gemini",
    "vertex": "gemini",
    "vertexai": "gemini",
    "vertex_ai": "gemini",
    "x_ai": "xai",
    "grok": "xai",
    "mistralai": "mistral",
    "mistral_ai": "mistral",
    "deep_seek": "deepseek",
    "moonshotai": "moonshot",
    "moonshot_ai": "moonshot",
    "kimi": "moonshot",
    "togetherai": "together",
    "together_ai": "together",
    "fireworksai": "fireworks",
    "fireworks_ai": "fireworks",
}
"""Normalised provider names that price like another provider's rows (the catalogue's aliases)."""

_SEPARATORS: Final = frozenset("-_.:@/")
_RESOLUTION_CACHE_LIMIT: Final = 65_536
_MISSING: Final = object()
_ALWAYS: Final = -math.inf

RowKey = tuple[str, str, str]
"""Normalised ``(provider, family, model)``."""


def provider_key(provider: str) -> str:
    """The normalised provider name, aliases folded."""
    key = normalise(provider)
    return PROVIDER_ALIASES.get(key, key)


def row_key(row: PriceRow) -> RowKey:
    """The normalised ``(provider, family, model)`` of ``row``."""
    return provider_key(row.provider), normalise(row.model_family), normalise(row.model)


class _Entry:
    """All ``VALID_FROM`` versions of one (provider, family, model), oldest first, compiled on first use."""

    __slots__ = ("only", "rates", "rows", "starts")

    def __init__(self, rows: list[PriceRow]) -> None:
        rows.sort(key=lambda r: _ALWAYS if r.valid_from is None else r.valid_from.timestamp())
        self.rows: tuple[PriceRow, ...] = tuple(rows)
        self.starts = tuple(_ALWAYS if r.valid_from is None else r.valid_from.timestamp() for r in rows)
        self.rates: tuple[CompiledRate, ...] = tuple(
            compile_rate(r.prices, r.long_context_threshold, r.long_context) for r in rows
        )
        # The common case, one undated row, needs no clock at all.
        self.only: CompiledRate | None = self.rates[0] if len(rows) == 1 and rows[0].valid_from is None else None

    def index_at(self, when: float) -> int:
        """Index of the version in force at ``when`` (POSIX seconds), ``-1`` when none was yet."""
        return bisect.bisect_right(self.starts, when) - 1


def _timestamp(at: datetime | None) -> float:
    if at is None:
        return datetime.now(timezone.utc).timestamp()
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.timestamp()


class PriceTable:
    """An immutable price table: rows grouped by provider → model → family → versions.

    Build it from rows in precedence order (later rows replace earlier ones with the same key and
    ``VALID_FROM``); ``replace_all`` rows replace every version of their key.
    """

    def __init__(self, rows: Iterable[PriceRow] = (), replace_all: Iterable[PriceRow] = ()) -> None:
        merged: dict[tuple[str, str, str, Any], PriceRow] = {}
        memo: dict[str, str] = {}
        for row in rows:
            p, f = memo.get(row.provider), memo.get("\0" + row.model_family)
            if p is None:
                p = memo[row.provider] = provider_key(row.provider)
            if f is None:
                f = memo["\0" + row.model_family] = normalise(row.model_family)
            merged[(p, f, normalise(row.model), row.valid_from)] = row
        overrides = {row_key(row): row for row in replace_all}
        grouped: dict[str, dict[str, dict[str, list[PriceRow]]]] = {}
        for (p, f, m, _), row in merged.items():
            if (p, f, m) not in overrides:
                grouped.setdefault(p, {}).setdefault(m, {}).setdefault(f, []).append(row)
        for (p, f, m), row in overrides.items():
            grouped.setdefault(p, {}).setdefault(m, {})[f] = [row]
        self._grouped = grouped
        self._entries: dict[RowKey, _Entry] = {}
        self._resolved: dict[tuple[str, str, str | None], _Entry | None] = {}
        self._size = len(merged) - sum(1 for k in merged if k[:3] in overrides) + len(overrides)

    def __len__(self) -> int:
        return self._size

    # ----------------------------------------------------------------- hot path
    def price_call(
        self, provider: str, model: str, stats: LLM_Stats, at: datetime | None = None, model_family: str | None = None
    ) -> CallCost:
        """Price one call: from this table, else the provider's own report, else unpriced."""
        entry = self._resolved.get((provider, model, model_family), _MISSING)
        if entry is _MISSING:
            entry = self._resolve_and_cache(provider, model, model_family)
        if entry is not None:
            rate = entry.only  # type: ignore[union-attr]
            if rate is None:
                i = entry.index_at(_timestamp(at))  # type: ignore[union-attr]
                rate = entry.rates[i] if i >= 0 else None  # type: ignore[union-attr]
            if rate is not None:
                amount = rate.cost(
                    stats.input_tokens,
                    stats.cached_tokens,
                    stats.cache_write_tokens,
                    stats.cache_write_1h_tokens,
                    stats.output_tokens,
                )
                return CallCost(amount, "calculated")
        if stats.cost is not None:
            return CallCost(stats.cost, "reported")
        return UNPRICED

    # ----------------------------------------------------------------- lookup
    def find(
        self, provider: str, model: str, model_family: str | None = None, at: datetime | None = None
    ) -> PriceRow | None:
        """The row that prices ``model`` at ``at`` (default: now), or ``None``."""
        entry = self._resolved.get((provider, model, model_family), _MISSING)
        if entry is _MISSING:
            entry = self._resolve_and_cache(provider, model, model_family)
        if entry is None:
            return None
        i = entry.index_at(_timestamp(at))  # type: ignore[union-attr]
        return entry.rows[i] if i >= 0 else None  # type: ignore[union-attr]

    def rows(self) -> list[PriceRow]:
        """Every row in effect, sorted by provider, model, family and date."""
        out = [row for models in self._grouped.values() for fams in models.values() for vs in fams.values() for row in vs]
        out.sort(key=lambda r: (normalise(r.provider), normalise(r.model), normalise(r.model_family),
                                _ALWAYS if r.valid_from is None else r.valid_from.timestamp()))
        return out

    def _resolve_and_cache(self, provider: str, model: str, model_family: str | None) -> _Entry | None:
        entry = self._resolve(provider, model, model_family)
        if len(self._resolved) >= _RESOLUTION_CACHE_LIMIT:
            self._resolved.clear()  # a bound against unbounded model ids; real workloads use a few
        self._resolved[(provider, model, model_family)] = entry
        return entry

    def _resolve(self, provider: str, model: str, model_family: str | None) -> _Entry | None:
        models = self._grouped.get(provider_key(provider))
        if not models:
            return None
        m = normalise(model)
        family = None if model_family is None else normalise(model_family)
        candidates = [m] + [m[:i] for i in range(len(m) - 1, 0, -1) if m[i] in _SEPARATORS]
        for candidate in candidates:
            families = models.get(candidate)
            if not families:
                continue
            f = self._pick_family(families, family)
            if f is not None:
                key = (provider_key(provider), f, candidate)
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = _Entry(list(families[f]))
                return entry
        return None

    @staticmethod
    def _pick_family(families: dict[str, list[PriceRow]], family: str | None) -> str | None:
        if family is not None:
            if family in families:
                return family
            return "" if "" in families else None
        if "" in families:
            return ""
        return next(iter(families))
