"""Read price files with polars, validate every row, and report every problem with file, line and column.

Nothing is dropped silently: each rejected row or column yields a :class:`Problem`, and the caller
decides (lenient: keep the good rows and log the problems; strict: raise one ``PricingError``).

How a file is read: the text is split into physical lines once; comment lines (first non-blank
character ``#``) and blank lines are set aside and the line number of every record is kept, so each
problem points at the line a person sees in an editor. The remaining text goes to ``polars.read_csv``
with an explicit all-string schema; validation is vectorised (regular expressions over whole
columns), and numbers become ``decimal.Decimal`` from their exact text, never through a float.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from . import schema as S
from .records import PriceRow, Problem, normalise

__all__ = ["LoadReport", "PRICE_FILE_SUFFIXES", "expand_paths", "read_price_file", "read_price_files"]

PRICE_FILE_SUFFIXES = frozenset({".csv", ".txt"})
"""Files picked up when a folder is given: ``.csv`` and ``.txt``, both holding CSV."""

_NUMBER = r"^\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NEGATIVE = r"^-([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INTEGER = r"^\+?[0-9]+$"
_LONG_CONTEXT_PRICES = (S.LC_INPUT, S.LC_CACHED, S.LC_OUTPUT, S.LC_CACHE_WRITE_5M, S.LC_CACHE_WRITE_1H)


@dataclass(frozen=True)
class LoadReport:
    """What reading some price files gave: the good rows, every problem, and the files read."""

    rows: tuple[PriceRow, ...]
    problems: tuple[Problem, ...]
    files: tuple[Path, ...]

    @property
    def ok(self) -> bool:
        """``True`` when no problem was found."""
        return not self.problems


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Files named directly, plus every ``.csv``/``.txt`` under named folders (recursively, sorted)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PRICE_FILE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, None, "no such file or folder"))
    return files, problems


def read_price_files(paths: Iterable[str | Path]) -> LoadReport:
    """Read every file (folders recursively) as one table.

    Rows with the same provider, family, model and ``VALID_FROM`` must agree: a second row with
    different prices is reported (pointing at the first) and left out; an identical repeat is harmless.
    """
    files, problems = expand_paths(paths)
    rows: list[PriceRow] = []
    for file in files:
        file_rows, file_problems = read_price_file(file)
        rows.extend(file_rows)
        problems.extend(file_problems)
    kept: dict[tuple[Any, ...], PriceRow] = {}
    unique: list[PriceRow] = []
    for row in rows:
        key = (normalise(row.provider), normalise(row.model_family), normalise(row.model), row.valid_from)
        first = kept.setdefault(key, row)
        if first is row:
            unique.append(row)
        elif first.price_fields() != row.price_fields():
            problems.append(
                Problem(row.path, row.line, S.MODEL, f"duplicate of {first.location} with different prices")
            )
    problems.sort(key=lambda p: (p.path, p.line or 0))
    return LoadReport(tuple(unique), tuple(problems), tuple(files))


def read_price_file(path: str | Path) -> tuple[list[PriceRow], list[Problem]]:
    """The valid rows of one file and every problem in it."""
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return [], [Problem(name, None, None, f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return [], [Problem(name, None, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
    return parse_price_text(text, name)


def parse_price_text(text: str, name: str) -> tuple[list[PriceRow], list[Problem]]:
    """Validate ``text`` (CSV in the STATEK metering format); ``name`` is used in problem reports."""
    lines = text.splitlines()
    header_index = next((i for i, line in enumerate(lines) if _is_content(line)), None)
    if header_index is None:
        return [], [Problem(name, None, None, "no header row: the file is empty or holds only comments")]
    header_line = header_index + 1
    columns, problems = _read_header(lines[header_index], name, header_line)
    if any(p.column in S.REQUIRED_COLUMNS or p.column is None for p in problems):
        return [], problems
    kept, record_lines, field_counts = _records(lines, header_index)
    for line_no, count in zip(record_lines, field_counts):
        if count < len(columns):
            problems.append(Problem(name, line_no, columns[count],
                                    f"missing column: the row has {count} of {len(columns)} fields"))
        elif count > len(columns):
            problems.append(Problem(name, line_no, f"field {len(columns) + 1}",
                                    f"unexpected extra field: the row has {count} fields, the header {len(columns)}"))
    if not record_lines:
        return [], problems
    frame = pl.read_csv(
        "\n".join(kept).encode(),
        has_header=True,
        schema=pl.Schema({column: pl.String for column in columns}),
        truncate_ragged_lines=True,
        raise_if_empty=False,
        quote_char='"',
    ).select(pl.all().str.strip_chars())
    wrong_shape = [count != len(columns) for count in field_counts]
    return _validate(frame, columns, record_lines, wrong_shape, name, problems)


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(S.COMMENT_PREFIX)


def _read_header(line: str, name: str, line_no: int) -> tuple[list[str], list[Problem]]:
    raw = next(csv.reader([line]))
    columns = [column.strip().upper() for column in raw]
    problems: list[Problem] = []
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            problems.append(Problem(name, line_no, None, f"column {column or '(empty)'} appears twice in the header"))
        seen.add(column)
        if column not in S.COLUMNS:
            problems.append(Problem(name, line_no, column or "(empty)", "unknown column, ignored"))
    for column in S.SEED_COLUMNS:
        if column in S.REQUIRED_COLUMNS and column not in seen:
            problems.append(Problem(name, line_no, column, "missing column: the file cannot be read without it"))
    return columns, problems


def _records(lines: Sequence[str], header_index: int) -> tuple[list[str], list[int], list[int]]:
    """The header plus every record's text, each record's first line number and its field count."""
    body = range(header_index + 1, len(lines))
    if not any('"' in lines[i] for i in body):
        numbers = [i for i in body if _is_content(lines[i])]
        kept = [lines[header_index], *(lines[i] for i in numbers)]
        return kept, [i + 1 for i in numbers], [lines[i].count(",") + 1 for i in numbers]
    # Quoted fields may hold commas or line breaks: let the csv module find where each record starts.
    kept, starts, counts = [lines[header_index]], [], []
    reader = csv.reader(lines[header_index + 1:])
    previous_end = 0
    for fields in reader:
        first, previous_end = previous_end, reader.line_num
        if not fields or not any(f.strip() for f in fields) or fields[0].lstrip().startswith(S.COMMENT_PREFIX):
            continue
        kept.extend(lines[header_index + 1 + first: header_index + 1 + reader.line_num])
        starts.append(header_index + 2 + first)
        counts.append(len(fields))
    return kept, starts, counts


def _validate(
    frame: pl.DataFrame,
    columns: list[str],
    record_lines: list[int],
    wrong_shape: list[bool],
    name: str,
    problems: list[Problem],
) -> tuple[list[PriceRow], list[Problem]]:
    present = [c for c in columns if c in S.COLUMNS]
    checks = _checks(present)
    flags = frame.select([expr.alias(f"{i}") for i, (_, _, expr) in enumerate(checks)])
    # A row with the wrong number of fields is reported once, as such: its values sit in the wrong columns.
    shape = pl.Series(wrong_shape, dtype=pl.Boolean)
    bad = shape.clone()
    for i, (column, reason, _) in enumerate(checks):
        hits = flags.get_column(f"{i}").fill_null(False) & ~shape
        if hits.any():
            bad = bad | hits
            problems.extend(
                Problem(name, record_lines[r], column, _reason(reason, frame, column, r))
                for r in hits.arg_true().to_list()
            )
    good = frame.filter(~bad)
    rows, value_problems = _rows(good, [line for line, b in zip(record_lines, bad.to_list()) if not b], name)
    problems.extend(value_problems)
    problems.sort(key=lambda p: (p.path, p.line or 0))
    return rows, problems


def _checks(present: list[str]) -> list[tuple[str, str, pl.Expr]]:
    """``(column, reason, expr)``: ``expr`` is true on each row that breaks the rule."""
    checks: list[tuple[str, str, pl.Expr]] = []
    for column in (S.PROVIDER, S.MODEL, S.INPUT, S.OUTPUT):
        checks.append((column, "missing value", pl.col(column).fill_null("") == ""))
    for column in S.PRICE_COLUMNS:
        if column in present:
            value = pl.col(column)
            filled = value.fill_null("") != ""
            checks.append((column, "negative price {value!r}", filled & value.str.contains(_NEGATIVE)))
            checks.append((column, "bad number {value!r}",
                           filled & ~value.str.contains(_NUMBER) & ~value.str.contains(_NEGATIVE)))
    if S.LC_THRESHOLD in present:
        value = pl.col(S.LC_THRESHOLD)
        filled = value.fill_null("") != ""
        checks.append((S.LC_THRESHOLD, "not a whole number of tokens {value!r}", filled & ~value.str.contains(_INTEGER)))
        for column in (S.LC_INPUT, S.LC_OUTPUT):
            missing = pl.col(column).fill_null("") == "" if column in present else pl.lit(True)
            checks.append((column, f"required when {S.LC_THRESHOLD} is set", filled & missing))
    for column in _LONG_CONTEXT_PRICES:
        if column in present:
            no_threshold = pl.col(S.LC_THRESHOLD).fill_null("") == "" if S.LC_THRESHOLD in present else pl.lit(True)
            checks.append((column, f"a long-context price needs {S.LC_THRESHOLD}",
                           (pl.col(column).fill_null("") != "") & no_threshold))
    if S.CURRENCY in present:
        value = pl.col(S.CURRENCY).fill_null("")
        checks.append((S.CURRENCY, "currency {value!r} is not supported: statek keeps money in USD",
                       (value != "") & (value.str.to_uppercase() != S.DEFAULT_CURRENCY)))
    return [(c, r, e) for c, r, e in checks if c in present or c in (S.LC_INPUT, S.LC_OUTPUT)]


def _reason(template: str, frame: pl.DataFrame, column: str, row: int) -> str:
    if "{value" not in template:
        return template
    return template.format(value=frame.get_column(column)[row])


class _Decimals(dict[Any, Any]):
    """Text → ``Decimal`` with memoisation (price tables repeat the same few prices many times)."""

    def __missing__(self, text: str | None) -> Decimal | None:
        value = None if not text else Decimal(text)
        self[text] = value
        return value


class _Integers(dict[Any, Any]):
    def __missing__(self, text: str | None) -> int | None:
        value = None if not text else int(text)
        self[text] = value
        return value


def _rows(frame: pl.DataFrame, record_lines: list[int], name: str) -> tuple[list[PriceRow], list[Problem]]:
    if frame.height == 0:
        return [], []
    n = frame.height
    decimals, integers = _Decimals(), _Integers()

    def column(col: str, convert: Any = None, default: Any = None) -> list[Any]:
        if col not in frame.columns:
            return [default] * n
        values = frame.get_column(col).to_list()
        return list(map(convert.__getitem__, values)) if convert is not None else values

    def text(col: str) -> list[str]:
        return [v or "" for v in column(col, default="")]

    problems: list[Problem] = []
    valid_from = _dates(column(S.VALID_FROM), record_lines, name, S.VALID_FROM, problems, as_datetime=True)
    checked = _dates(column(S.CHECKED), record_lines, name, S.CHECKED, problems, as_datetime=False)
    prices = {c: column(c, decimals) for c in S.PRICE_COLUMNS}
    rows = list(
        map(
            PriceRow._make,
            zip(
                column(S.PROVIDER),
                text(S.MODEL_FAMILY),
                column(S.MODEL),
                prices[S.INPUT],
                prices[S.CACHED],
                prices[S.OUTPUT],
                prices[S.CACHE_WRITE_5M],
                prices[S.CACHE_WRITE_1H],
                column(S.LC_THRESHOLD, integers),
                prices[S.LC_INPUT],
                prices[S.LC_CACHED],
                prices[S.LC_OUTPUT],
                prices[S.LC_CACHE_WRITE_5M],
                prices[S.LC_CACHE_WRITE_1H],
                valid_from,
                [S.DEFAULT_CURRENCY] * n,
                text(S.SOURCE),
                checked,
                [name] * n,
                record_lines,
            ),
        )
    )
    if problems:
        bad_lines = {p.line for p in problems}
        rows = [row for row in rows if row.line not in bad_lines]
    return rows, problems


def _dates(
    values: list[str | None],
    record_lines: list[int],
    name: str,
    column: str,
    problems: list[Problem],
    *,
    as_datetime: bool,
) -> list[Any]:
    memo: dict[str | None, Any] = {None: None, "": None}
    out: list[Any] = []
    for value, line in zip(values, record_lines):
        if value not in memo:
            try:
                memo[value] = parse_when(value) if as_datetime else date.fromisoformat(value)  # type: ignore[arg-type]
            except ValueError:
                memo[value] = ValueError
        parsed = memo[value]
        if parsed is ValueError:
            problems.append(Problem(name, line, column, f"bad date {value!r}: use YYYY-MM-DD or ISO 8601"))
            parsed = None
        out.append(parsed)
    return out


def parse_when(text: str) -> datetime:
    """An ISO date or date-time; a date means midnight UTC, a date-time without offset is UTC."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
