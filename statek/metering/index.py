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
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, Protocol

from .cost import CompiledRate, compile_rate
from .gcpause import paused_gc
from .records import PriceRow, RowKey, normalise, provider_key, row_key
from .types import UNPRICED, CallCost

if TYPE_CHECKING:
    from ..types import CallDetail

__all__ = ["PriceTable", "RowList", "RowSource"]


_SEPARATORS: Final = frozenset("-_.:@/")
_RESOLUTION_CACHE_LIMIT: Final = 65_536
_MISSING: Final[Any] = object()
_ALWAYS: Final = -math.inf


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
        self.only: CompiledRate | None = (
            self.rates[0] if len(rows) == 1 and rows[0].valid_from is None else None
        )

    def index_at(self, when: float) -> int:
        """Index of the version in force at ``when`` (POSIX seconds), ``-1`` when none was yet."""
        return bisect.bisect_right(self.starts, when) - 1


def _timestamp(at: datetime | None) -> float:
    if at is None:
        return datetime.now(timezone.utc).timestamp()
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.timestamp()


class RowSource(Protocol):
    """Rows an index can use without building them: their keys, dates, and each row on demand."""

    @property
    def keys(self) -> Sequence[RowKey]: ...

    @property
    def valid_from(self) -> Sequence[datetime | None]: ...

    def row(self, i: int) -> PriceRow: ...


class RowList:
    """A :class:`RowSource` over rows already built (tests, overrides, small tables)."""

    def __init__(self, rows: Iterable[PriceRow]) -> None:
        self.rows = list(rows)
        self.keys = [row_key(r) for r in self.rows]
        self.valid_from = [r.valid_from for r in self.rows]

    def row(self, i: int) -> PriceRow:
        return self.rows[i]


_SHIFT: Final = 32  # a row reference is (source index << 32) | row index: one int, no tuple per row


class PriceTable:
    """An immutable price table over one or more row sources, in precedence order (later wins).

    A later source's row replaces an earlier one with the same provider, family, model and
    ``VALID_FROM``; rows in ``replace_all`` replace every version of their provider/family/model.
    The index holds references; a :class:`PriceRow` is built when its model is first resolved.
    """

    def __init__(self, sources: Sequence[RowSource] = (), replace_all: Iterable[PriceRow] = ()) -> None:
        overrides = RowList(replace_all)
        self._sources: list[RowSource] = [*sources, overrides]
        by_model: dict[tuple[str, str], Any] = {}  # (provider, model) -> ref | list[ref]
        with paused_gc():
            for s, source in enumerate(sources):
                base = s << _SHIFT
                valid_from = source.valid_from
                for i, (p, f, m) in enumerate(source.keys):
                    key = (p, m)
                    current = by_model.get(key)
                    if current is None:
                        by_model[key] = base | i
                    else:
                        self._merge(by_model, key, current, base | i, f, valid_from[i], replace=False)
            base = len(sources) << _SHIFT
            for i, (p, f, m) in enumerate(overrides.keys):
                current = by_model.get((p, m))
                if current is None:
                    by_model[(p, m)] = base | i
                else:
                    self._merge(by_model, (p, m), current, base | i, f, None, replace=True)
        self._by_model = by_model
        self._providers = frozenset(p for p, _ in by_model)
        self._entries: dict[RowKey, _Entry] = {}
        self._resolved: dict[tuple[str, str, str | None], _Entry | None] = {}

    def _merge(
        self,
        by_model: dict[tuple[str, str], Any],
        key: tuple[str, str],
        current: Any,
        ref: int,
        family: str,
        when: datetime | None,
        *,
        replace: bool,
    ) -> None:
        refs = current if isinstance(current, list) else [current]
        kept = [
            r for r in refs if not (self._key_of(r)[1] == family and (replace or self._when_of(r) == when))
        ]
        kept.append(ref)
        by_model[key] = kept

    def _key_of(self, ref: int) -> RowKey:
        return self._sources[ref >> _SHIFT].keys[ref & 0xFFFFFFFF]

    def _when_of(self, ref: int) -> datetime | None:
        return self._sources[ref >> _SHIFT].valid_from[ref & 0xFFFFFFFF]

    def _row_of(self, ref: int) -> PriceRow:
        return self._sources[ref >> _SHIFT].row(ref & 0xFFFFFFFF)

    @classmethod
    def from_rows(cls, rows: Iterable[PriceRow]) -> PriceTable:
        """A table of rows already built (later rows win, like later files)."""
        return cls([RowList(rows)])

    def __len__(self) -> int:
        return sum(len(v) if isinstance(v, list) else 1 for v in self._by_model.values())

    # ----------------------------------------------------------------- hot path
    def price_call(
        self,
        provider: str,
        model: str,
        stats: CallDetail,
        at: datetime | None = None,
        model_family: str | None = None,
    ) -> CallCost:
        """Price one call: from this table, else the provider's own report, else unpriced."""
        entry: _Entry | None = self._resolved.get((provider, model, model_family), _MISSING)
        if entry is _MISSING:
            entry = self._resolve_and_cache(provider, model, model_family)
        if entry is not None:
            rate = entry.only
            if rate is None:
                i = entry.index_at(_timestamp(at))
                rate = entry.rates[i] if i >= 0 else None
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
        entry: _Entry | None = self._resolved.get((provider, model, model_family), _MISSING)
        if entry is _MISSING:
            entry = self._resolve_and_cache(provider, model, model_family)
        if entry is None:
            return None
        i = entry.index_at(_timestamp(at))
        return entry.rows[i] if i >= 0 else None

    def rows(self) -> list[PriceRow]:
        """Every row in effect, sorted by provider, model, family and date (builds them all)."""
        out = [
            self._row_of(ref) for v in self._by_model.values() for ref in (v if isinstance(v, list) else [v])
        ]
        out.sort(
            key=lambda r: (
                normalise(r.provider),
                normalise(r.model),
                normalise(r.model_family),
                _ALWAYS if r.valid_from is None else r.valid_from.timestamp(),
            )
        )
        return out

    def _resolve_and_cache(self, provider: str, model: str, model_family: str | None) -> _Entry | None:
        entry = self._resolve(provider, model, model_family)
        if len(self._resolved) >= _RESOLUTION_CACHE_LIMIT:
            self._resolved.clear()  # a bound against unbounded model ids; real workloads use a few
        self._resolved[(provider, model, model_family)] = entry
        return entry

    def _resolve(self, provider: str, model: str, model_family: str | None) -> _Entry | None:
        p = provider_key(provider)
        if p not in self._providers:
            return None
        m = normalise(model)
        family = None if model_family is None else normalise(model_family)
        candidates = [m] + [m[:i] for i in range(len(m) - 1, 0, -1) if m[i] in _SEPARATORS]
        for candidate in candidates:
            refs = self._by_model.get((p, candidate))
            if refs is None:
                continue
            by_family: dict[str, list[PriceRow]] = {}
            for ref in refs if isinstance(refs, list) else [refs]:
                by_family.setdefault(self._key_of(ref)[1], []).append(self._row_of(ref))
            f = self._pick_family(by_family, family)
            if f is not None:
                key = (p, f, candidate)
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = _Entry(by_family[f])
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
