"""What changed between two price tables: rows added, removed, and changed column by column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .records import PriceRow, normalise

__all__ = ["RowChange", "compare_prices", "diff_rows"]

_COMPARED = (
    ("INPUT", "input"),
    ("CACHED", "cached"),
    ("OUTPUT", "output"),
    ("CACHE_WRITE_5M", "cache_write_5m"),
    ("CACHE_WRITE_1H", "cache_write_1h"),
    ("LONG_CONTEXT_THRESHOLD", "long_context_threshold"),
    ("LONG_CONTEXT_INPUT", "long_context_input"),
    ("LONG_CONTEXT_CACHED", "long_context_cached"),
    ("LONG_CONTEXT_OUTPUT", "long_context_output"),
    ("LONG_CONTEXT_CACHE_WRITE_5M", "long_context_cache_write_5m"),
    ("LONG_CONTEXT_CACHE_WRITE_1H", "long_context_cache_write_1h"),
    ("REASONING", "reasoning"),
    ("REQUEST_PER_K", "request_fee_per_k"),
)


@dataclass(frozen=True)
class RowChange:
    """One difference. ``changes`` lists ``(column, old, new)`` for a changed row."""

    kind: Literal["added", "removed", "changed"]
    row: PriceRow
    changes: tuple[tuple[str, Any, Any], ...] = ()


def _key(row: PriceRow) -> tuple[Any, ...]:
    return normalise(row.provider), normalise(row.model_family), normalise(row.model), row.valid_from


def compare_prices(old: PriceRow, new: PriceRow) -> RowChange | None:
    """``old``'s prices against ``new``'s (by value), or ``None`` when they agree."""
    changes = tuple(
        (label, getattr(old, attr), getattr(new, attr))
        for label, attr in _COMPARED
        if getattr(old, attr) != getattr(new, attr)
    )
    return RowChange("changed", old, changes) if changes else None


def diff_rows(old: Iterable[PriceRow], new: Iterable[PriceRow]) -> list[RowChange]:
    """Differences from ``old`` to ``new``, matched by provider, family, model and ``VALID_FROM``.

    Prices compare by value (``2.5`` equals ``2.50``); ``SOURCE`` and ``CHECKED`` are not compared.
    """
    before = {_key(r): r for r in old}
    after = {_key(r): r for r in new}
    out: list[RowChange] = []
    for key, row in after.items():
        if key not in before:
            out.append(RowChange("added", row))
            continue
        change = compare_prices(before[key], row)
        if change is not None:
            out.append(RowChange("changed", row, change.changes))
    out.extend(RowChange("removed", row) for key, row in before.items() if key not in after)
    out.sort(key=lambda c: (_key(c.row)[:3], c.kind))
    return out
