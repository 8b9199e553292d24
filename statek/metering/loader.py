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
import io
from collections.abc import Iterable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from . import schema as S
from .gcpause import paused_gc
from .records import PROVIDER_ALIASES, PriceRow, Problem, normalise
from .rows import LoadReport, Memo, RowBlock

__all__ = [
    "PRICE_FILE_SUFFIXES",
    "LoadReport",
    "RowBlock",
    "expand_paths",
    "parse_price_text",
    "parse_when",
    "read_price_file",
    "read_price_files",
]

PRICE_FILE_SUFFIXES = frozenset({".csv", ".txt"})
"""Files picked up when a folder is given: ``.csv`` and ``.txt``, both holding CSV."""

_NUMBER = r"^\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NEGATIVE = r"^-([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INTEGER = r"^\+?[0-9]+$"
_LONG_CONTEXT_PRICES = (S.LC_INPUT, S.LC_CACHED, S.LC_OUTPUT, S.LC_CACHE_WRITE_5M, S.LC_CACHE_WRITE_1H)


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Files named directly, plus every ``.csv``/``.txt`` under named folders (recursively, sorted)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PRICE_FILE_SUFFIXES)
            )
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, None, "no such file or folder"))
    return files, problems


def read_price_files(paths: Iterable[str | Path]) -> LoadReport:
    """Read every file (folders recursively) as one table.

    Rows with the same provider, family, model and ``VALID_FROM`` must agree: a later row with
    different prices is reported (pointing at the first) and left out; an identical repeat is harmless.
    """
    files, problems = expand_paths(paths)
    blocks: list[RowBlock] = []
    with paused_gc():
        for file in files:
            block, file_problems = _read(file)
            problems.extend(file_problems)
            if block is not None and len(block):
                blocks.append(block)
        blocks = _drop_duplicates(blocks, problems)
    problems.sort(key=lambda p: (p.path, p.line or 0))
    return LoadReport(tuple(blocks), tuple(problems), tuple(files))


def _drop_duplicates(blocks: list[RowBlock], problems: list[Problem]) -> list[RowBlock]:
    first_of: dict[tuple[Any, ...], tuple[RowBlock, int]] = {}
    masks: dict[int, list[bool]] = {}
    for b, block in enumerate(blocks):
        for i, (key, when) in enumerate(zip(block.keys, block.valid_from)):
            first = first_of.setdefault((*key, when), (block, i))
            if first[0] is block and first[1] == i:
                continue
            masks.setdefault(b, [True] * len(block))[i] = False
            earlier, row = first[0].row(first[1]), block.row(i)
            if earlier.price_fields() != row.price_fields():
                problems.append(
                    Problem(
                        row.path, row.line, S.MODEL, f"duplicate of {earlier.location} with different prices"
                    )
                )
    return [block.subset(masks[b]) if b in masks else block for b, block in enumerate(blocks)]


def read_price_file(path: str | Path) -> tuple[list[PriceRow], list[Problem]]:
    """The valid rows of one file and every problem in it."""
    block, problems = _read(path)
    return (block.rows() if block is not None else []), problems


def _read(path: str | Path) -> tuple[RowBlock | None, list[Problem]]:
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return None, [Problem(name, None, None, f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return None, [Problem(name, None, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
    return _parse(text, name)


def parse_price_text(text: str, name: str) -> tuple[list[PriceRow], list[Problem]]:
    """Validate ``text`` (CSV in the STATEK metering format); ``name`` is used in problem reports."""
    block, problems = _parse(text, name)
    return (block.rows() if block is not None else []), problems


def _parse(text: str, name: str) -> tuple[RowBlock | None, list[Problem]]:
    lines = text.splitlines()
    header_index = next((i for i, line in enumerate(lines) if _is_content(line)), None)
    if header_index is None:
        return None, [Problem(name, None, None, "no header row: the file is empty or holds only comments")]
    columns, problems = _read_header(lines[header_index], name, header_index + 1)
    if any(p.column in S.REQUIRED_COLUMNS or p.column is None for p in problems):
        return None, problems
    kept, record_lines, field_counts = _records(lines, header_index)
    if not record_lines:
        return None, problems
    wrong_shape = field_counts != len(columns)
    for r in wrong_shape.arg_true().to_list():
        count, line_no = field_counts[r], record_lines[r]
        if count < len(columns):
            problems.append(
                Problem(
                    name,
                    line_no,
                    columns[count],
                    f"missing column: the row has {count} of {len(columns)} fields",
                )
            )
        else:
            problems.append(
                Problem(
                    name,
                    line_no,
                    f"field {len(columns) + 1}",
                    f"unexpected extra field: the row has {count} fields, the header {len(columns)}",
                )
            )
    # The header polars sees is the normalised one, so the explicit schema matches it by name.
    header = io.StringIO()
    csv.writer(header, lineterminator="").writerow(columns)
    frame = pl.read_csv(
        (header.getvalue() + "\n" + kept).encode(),
        has_header=True,
        schema=pl.Schema({column: pl.String for column in columns}),
        truncate_ragged_lines=True,
        raise_if_empty=False,
        quote_char='"',
    ).select(pl.all().str.strip_chars())
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
            problems.append(
                Problem(name, line_no, None, f"column {column or '(empty)'} appears twice in the header")
            )
        seen.add(column)
        if column not in S.COLUMNS:
            problems.append(Problem(name, line_no, column or "(empty)", "unknown column, ignored"))
    for column in S.SEED_COLUMNS:
        if column in S.REQUIRED_COLUMNS and column not in seen:
            problems.append(
                Problem(name, line_no, column, "missing column: the file cannot be read without it")
            )
    return columns, problems


def _records(lines: list[str], header_index: int) -> tuple[str, list[int], pl.Series]:
    """Every record after the header as CSV text, each record's first line number, its field count."""
    body = lines[header_index + 1 :]
    if not any('"' in line for line in body):
        # Vectorised: classify every line at once; comments and blank lines are rare.
        series = pl.Series(body, dtype=pl.String)
        stripped = series.str.strip_chars()
        content = (stripped != "") & ~stripped.str.starts_with(S.COMMENT_PREFIX)
        if content.all():
            text, numbers = "\n".join(body), list(range(header_index + 2, header_index + 2 + len(body)))
        else:
            series = series.filter(content)
            text = "\n".join(series.to_list())
            numbers = [header_index + 2 + i for i in content.arg_true().to_list()]
        return text, numbers, series.str.count_matches(",", literal=True) + 1
    # Quoted fields may hold commas or line breaks: let the csv module find where each record starts.
    kept: list[str] = []
    starts: list[int] = []
    counts: list[int] = []
    reader = csv.reader(body)
    previous_end = 0
    for fields in reader:
        first, previous_end = previous_end, reader.line_num
        if (
            not fields
            or not any(f.strip() for f in fields)
            or fields[0].lstrip().startswith(S.COMMENT_PREFIX)
        ):
            continue
        kept.extend(body[first : reader.line_num])
        starts.append(header_index + 2 + first)
        counts.append(len(fields))
    return "\n".join(kept), starts, pl.Series(counts, dtype=pl.Int64)


def _validate(
    frame: pl.DataFrame,
    columns: list[str],
    record_lines: list[int],
    wrong_shape: pl.Series,
    name: str,
    problems: list[Problem],
) -> tuple[RowBlock | None, list[Problem]]:
    present = [c for c in columns if c in S.COLUMNS]
    checks = _checks(present)
    flags = frame.select([expr.alias(f"{i}") for i, (_, _, expr) in enumerate(checks)])
    # A row with the wrong number of fields is reported once, as such: its values sit in the wrong columns.
    bad = wrong_shape.clone()
    for i, (column, reason, _) in enumerate(checks):
        hits = flags.get_column(f"{i}").fill_null(False) & ~wrong_shape
        if hits.any():
            bad = bad | hits
            problems.extend(
                Problem(name, record_lines[r], column, _reason(reason, frame, column, r))
                for r in hits.arg_true().to_list()
            )
    n = frame.height
    valid_from = _dates(
        _strings(frame, S.VALID_FROM, n), record_lines, name, S.VALID_FROM, problems, parse_when
    )
    checked = _dates(
        _strings(frame, S.CHECKED, n), record_lines, name, S.CHECKED, problems, date.fromisoformat
    )
    bad_dates = {p.line for p in problems if p.column in (S.VALID_FROM, S.CHECKED)}
    if bad_dates:
        bad = bad | pl.Series([line in bad_dates for line in record_lines], dtype=pl.Boolean)
    keys = list(
        zip(_keys(frame, S.PROVIDER, aliases=True), _keys(frame, S.MODEL_FAMILY), _keys(frame, S.MODEL))
    )
    block = RowBlock(frame, name, record_lines, keys, valid_from, checked)
    if bad.any():
        block = block.subset((~bad).to_list())
    problems.sort(key=lambda p: (p.path, p.line or 0))
    return block, problems


def _strings(frame: pl.DataFrame, column: str, n: int) -> list[str | None]:
    return frame.get_column(column).to_list() if column in frame.columns else [None] * n


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
            checks.append(
                (
                    column,
                    "bad number {value!r}",
                    filled & ~value.str.contains(_NUMBER) & ~value.str.contains(_NEGATIVE),
                )
            )
    if S.LC_THRESHOLD in present:
        value = pl.col(S.LC_THRESHOLD)
        filled = value.fill_null("") != ""
        checks.append(
            (S.LC_THRESHOLD, "not a whole number of tokens {value!r}", filled & ~value.str.contains(_INTEGER))
        )
        for column in (S.LC_INPUT, S.LC_OUTPUT):
            missing = pl.col(column).fill_null("") == "" if column in present else pl.lit(True)
            checks.append((column, f"required when {S.LC_THRESHOLD} is set", filled & missing))
    for column in _LONG_CONTEXT_PRICES:
        if column in present:
            no_threshold = (
                pl.col(S.LC_THRESHOLD).fill_null("") == "" if S.LC_THRESHOLD in present else pl.lit(True)
            )
            checks.append(
                (
                    column,
                    f"a long-context price needs {S.LC_THRESHOLD}",
                    (pl.col(column).fill_null("") != "") & no_threshold,
                )
            )
    if S.CURRENCY in present:
        value = pl.col(S.CURRENCY).fill_null("")
        checks.append(
            (
                S.CURRENCY,
                "currency {value!r} is not supported: statek keeps money in USD",
                (value != "") & (value.str.to_uppercase() != S.DEFAULT_CURRENCY),
            )
        )
    return [(c, r, e) for c, r, e in checks if c in present or c in (S.LC_INPUT, S.LC_OUTPUT)]


def _reason(template: str, frame: pl.DataFrame, column: str, row: int) -> str:
    if "{value" not in template:
        return template
    return template.format(value=frame.get_column(column)[row])


_ASCII_BLANKS = r"[\s\x1c-\x1f]"  # what str.split() removes from ASCII text


def _keys(frame: pl.DataFrame, column: str, *, aliases: bool = False) -> list[str]:
    """:func:`normalise` of a whole column, vectorised; non-ASCII values go through Python's casefold."""
    if column not in frame.columns:
        return [""] * frame.height
    values = frame.get_column(column).fill_null("")
    keys = values.str.replace_all(_ASCII_BLANKS, "").str.to_lowercase()
    if aliases:
        keys = keys.replace(dict(PROVIDER_ALIASES))
    out = keys.to_list()
    non_ascii = values.str.contains(r"[^\x00-\x7f]")
    if non_ascii.any():
        originals = values.to_list()
        for i in non_ascii.arg_true().to_list():
            key = normalise(originals[i])
            out[i] = PROVIDER_ALIASES.get(key, key) if aliases else key
    return out


def _dates(
    values: list[str | None],
    record_lines: list[int],
    name: str,
    column: str,
    problems: list[Problem],
    parse: Any,
) -> list[Any]:
    if not any(values):
        return [None] * len(values)
    memo = Memo(lambda text: _try(parse, text) if text else None)
    out = list(map(memo.__getitem__, values))
    if ValueError in memo.values():
        for i, value in enumerate(out):
            if value is ValueError:
                problems.append(
                    Problem(
                        name, record_lines[i], column, f"bad date {values[i]!r}: use YYYY-MM-DD or ISO 8601"
                    )
                )
                out[i] = None
    return out


def _try(parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except ValueError:
        return ValueError


def parse_when(text: str) -> datetime:
    """An ISO date or date-time; a date means midnight UTC, a date-time without offset is UTC."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
