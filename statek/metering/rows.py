"""Validated rows kept as polars columns (:class:`RowBlock`), and what a load gave (:class:`LoadReport`).

A 100k-row price file must load in well under half a second, and building 100k Python row objects
costs more than reading and validating the file. So a block keeps the validated columns and only
the few lists the index needs (normalised keys, ``VALID_FROM``, line numbers); a :class:`PriceRow`
is built when its model is first looked up, or all at once when someone asks for :attr:`rows`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from . import schema as S
from .gcpause import paused_gc
from .records import PriceRow, Problem, RowKey

__all__ = ["LoadReport", "Memo", "RowBlock"]


class RowBlock:
    """The valid rows of one file, kept as polars columns; a :class:`PriceRow` is built only on demand.

    ``keys`` (normalised ``(provider, family, model)``), ``valid_from`` and ``lines`` are plain lists,
    enough to index and merge tables without building 100k row objects nobody looks at.
    """

    __slots__ = ("_checked", "frame", "keys", "lines", "path", "valid_from")

    def __init__(
        self,
        frame: pl.DataFrame,
        path: str,
        lines: list[int],
        keys: list[RowKey],
        valid_from: list[datetime | None],
        checked: list[date | None],
    ) -> None:
        self.frame, self.path, self.lines, self.keys = frame, path, lines, keys
        self.valid_from, self._checked = valid_from, checked

    def __len__(self) -> int:
        return len(self.lines)

    def row(self, i: int) -> PriceRow:
        """Row ``i``, built now."""
        cells = dict(zip(self.frame.columns, self.frame.row(i)))
        prices = [_decimal(cells.get(column)) for _, column in _PRICE_FIELDS]
        threshold = int(cells[S.LC_THRESHOLD]) if cells.get(S.LC_THRESHOLD) else None
        return PriceRow._make(
            [
                cells[S.PROVIDER],
                cells.get(S.MODEL_FAMILY) or "",
                cells[S.MODEL],
                *prices[:5],
                threshold,
                *prices[5:],
                self.valid_from[i],
                S.DEFAULT_CURRENCY,
                cells.get(S.SOURCE) or "",
                self._checked[i],
                self.path,
                self.lines[i],
            ]
        )

    def rows(self) -> list[PriceRow]:
        """Every row, built column by column (fast for many rows)."""
        n = len(self)
        if not n:
            return []
        decimals, integers = Memo(_decimal), Memo(lambda t: int(t) if t else None)

        def column(col: str, convert: Memo | None = None, default: Any = None) -> list[Any]:
            if col not in self.frame.columns:
                return [default] * n
            values = self.frame.get_column(col).to_list()
            return list(map(convert.__getitem__, values)) if convert is not None else values

        def text(col: str) -> list[str]:
            return [v or "" for v in column(col, default="")]

        with paused_gc():
            return list(
                map(
                    PriceRow._make,
                    zip(
                        column(S.PROVIDER),
                        text(S.MODEL_FAMILY),
                        column(S.MODEL),
                        *(column(c, decimals) for _, c in _PRICE_FIELDS[:5]),
                        column(S.LC_THRESHOLD, integers),
                        *(column(c, decimals) for _, c in _PRICE_FIELDS[5:]),
                        self.valid_from,
                        [S.DEFAULT_CURRENCY] * n,
                        text(S.SOURCE),
                        self._checked,
                        [self.path] * n,
                        self.lines,
                    ),
                )
            )

    def subset(self, keep: list[bool]) -> RowBlock:
        """The rows where ``keep`` is true."""
        pick = [i for i, k in enumerate(keep) if k]
        return RowBlock(
            self.frame.filter(pl.Series(keep, dtype=pl.Boolean)),
            self.path,
            [self.lines[i] for i in pick],
            [self.keys[i] for i in pick],
            [self.valid_from[i] for i in pick],
            [self._checked[i] for i in pick],
        )


_PRICE_FIELDS = (
    ("input", S.INPUT),
    ("cached", S.CACHED),
    ("output", S.OUTPUT),
    ("cache_write_5m", S.CACHE_WRITE_5M),
    ("cache_write_1h", S.CACHE_WRITE_1H),
    ("long_context_input", S.LC_INPUT),
    ("long_context_cached", S.LC_CACHED),
    ("long_context_output", S.LC_OUTPUT),
    ("long_context_cache_write_5m", S.LC_CACHE_WRITE_5M),
    ("long_context_cache_write_1h", S.LC_CACHE_WRITE_1H),
)
"""PriceRow field ↔ column, in PriceRow order (the threshold sits between the two groups)."""


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text else None


class Memo(dict[Any, Any]):
    """``convert(text)`` with memoisation: price tables repeat the same few values many times."""

    def __init__(self, convert: Any) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, text: Any) -> Any:
        value = self[text] = self.convert(text)
        return value


@dataclass(frozen=True)
class LoadReport:
    """What reading some price files gave: the good rows (lazily built), every problem, the files read.

    ``keys``, ``valid_from`` and :meth:`row` let the index use the rows without building them all;
    :attr:`rows` builds every :class:`PriceRow` (once).
    """

    blocks: tuple[RowBlock, ...]
    problems: tuple[Problem, ...]
    files: tuple[Path, ...]

    @property
    def ok(self) -> bool:
        """``True`` when no problem was found."""
        return not self.problems

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    @functools.cached_property
    def rows(self) -> tuple[PriceRow, ...]:
        """Every good row, in file order."""
        return tuple(row for block in self.blocks for row in block.rows())

    @functools.cached_property
    def keys(self) -> list[RowKey]:
        """Normalised ``(provider, family, model)`` of every row, in :attr:`rows` order."""
        return [key for block in self.blocks for key in block.keys]

    @functools.cached_property
    def valid_from(self) -> list[datetime | None]:
        """``VALID_FROM`` of every row, in :attr:`rows` order."""
        return [when for block in self.blocks for when in block.valid_from]

    def row(self, i: int) -> PriceRow:
        """Row ``i`` (in :attr:`rows` order), built on demand."""
        for block in self.blocks:
            if i < len(block):
                return block.row(i)
            i -= len(block)
        raise IndexError(i)
