"""Read price files, validate every row, and report every problem as ``file:line: COLUMN: reason``.

One reader decides everything: Python's ``csv`` module, fed one physical line at a time, finds the
records, their fields and quoting, and the line each record starts on. Lines end only at ``\\n``,
``\\r\\n`` or ``\\r`` (a form feed or U+2028 inside a line is just a character). A line that starts a
record and whose first non-blank character is ``#`` is a comment, whatever quotes it holds; a quoted
first field such as ``"#1 model"`` is data. Blank lines are skipped; a row of empty fields is
reported. Files are read as a stream, so memory grows with the prices kept, not the file's size.

Every number is bounded (:data:`~statek.metering.schema.MAX_PRICE`, ``MAX_DECIMALS``,
``MAX_THRESHOLD``) and taken from its exact text, never through a float. Nothing is dropped
silently: each rejected row yields a :class:`Problem`, and the caller decides (lenient: keep the
good rows and log the problems; strict: raise one ``PricingError``).

Within a table the **last row for a key wins** (provider, family, model and ``VALID_FROM``), as in
the original STATEK; the earlier row is reported as a warning.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from . import schema as S
from .gcpause import paused_gc
from .records import PriceRow, Problem, normalise, row_key

__all__ = [
    "PRICE_FILE_SUFFIXES",
    "LoadReport",
    "expand_paths",
    "match_patterns",
    "match_problem",
    "parse_price_text",
    "parse_when",
    "read_price_file",
    "read_price_files",
]

PRICE_FILE_SUFFIXES = frozenset({".csv", ".txt"})
"""Files picked up when a folder is given: ``.csv`` and ``.txt``, both holding CSV."""

_NUMBER: Final = re.compile(r"\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?")
_NEGATIVE: Final = re.compile(r"-([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER: Final = re.compile(r"\+?[0-9]{1,13}")
_MAX_NUMBER_CHARS: Final = 40
_LONG_CONTEXT_PRICES: Final = (S.LC_INPUT, S.LC_CACHED, S.LC_OUTPUT, S.LC_CACHE_WRITE_5M, S.LC_CACHE_WRITE_1H)
_FIELDS: Final = (
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
    ("reasoning", S.REASONING),
    ("request_fee_per_k", S.REQUEST_FEE),
)


@dataclass(frozen=True)
class LoadReport:
    """What reading some price files gave: the good rows (file order, repeats removed), every
    problem, the files read."""

    rows: tuple[PriceRow, ...]
    problems: tuple[Problem, ...]
    files: tuple[Path, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems that are not warnings."""
        return tuple(p for p in self.problems if not p.warning)

    @property
    def ok(self) -> bool:
        """``True`` when no error was found (warnings allowed)."""
        return not self.errors

    def __len__(self) -> int:
        return len(self.rows)


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Files named directly, plus every ``.csv``/``.txt`` under named folders (recursively, sorted;
    symbolic links to folders are not followed). A sub-folder that cannot be listed and a price-file
    name that leads nowhere (a dangling symbolic link) are reported, not skipped silently."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                files.extend(sorted(_folder_files(path, problems)))
            elif path.is_file():
                files.append(path)
            else:
                problems.append(Problem(str(path), None, None, "no such file or folder"))
        except OSError as exc:
            problems.append(Problem(str(path), None, None, f"cannot read: {exc.strerror or exc}"))
    return files, problems


def _folder_files(folder: Path, problems: list[Problem]) -> Iterator[Path]:
    def unreadable(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else folder
        problems.append(Problem(str(where), None, None, f"cannot read folder: {exc.strerror or exc}"))

    for root, _dirs, names in os.walk(folder, onerror=unreadable):
        for name in names:
            file = Path(root, name)
            if file.suffix.lower() not in PRICE_FILE_SUFFIXES:
                continue
            if file.is_file():
                yield file
            elif file.is_symlink() and not file.exists():
                problems.append(Problem(str(file), None, None, "a symbolic link to nothing: not read"))


def read_price_files(paths: Iterable[str | Path]) -> LoadReport:
    """Read every file (folders recursively) as one table; the last row for a key wins."""
    files, problems = expand_paths(paths)
    rows: list[PriceRow] = []
    with paused_gc():
        for file in files:
            file_rows, file_problems = read_price_file(file)
            rows.extend(file_rows)
            problems.extend(file_problems)
        rows = _last_wins(rows, problems)
    problems.sort(key=lambda p: (p.path, p.line or 0))
    return LoadReport(tuple(rows), tuple(problems), tuple(files))


def _last_wins(rows: list[PriceRow], problems: list[Problem]) -> list[PriceRow]:
    last: dict[tuple[Any, ...], int] = {}
    for i, row in enumerate(rows):
        key = (*row_key(row), row.valid_from)
        earlier = last.get(key)
        if earlier is not None and rows[earlier].price_fields() != row.price_fields():
            problems.append(
                Problem(
                    row.path,
                    row.line,
                    S.MODEL,
                    f"duplicate of {rows[earlier].location} with different prices; this later row wins",
                    warning=True,
                )
            )
        last[key] = i
    keep = set(last.values())
    return [row for i, row in enumerate(rows) if i in keep]


def read_price_file(path: str | Path) -> tuple[list[PriceRow], list[Problem]]:
    """The valid rows of one file and every problem in it (never raises for bad content)."""
    name = str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return _parse(handle, name)
    except OSError as exc:
        return [], [Problem(name, None, None, f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return [], [Problem(name, None, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}")]


def parse_price_text(text: str, name: str) -> tuple[list[PriceRow], list[Problem]]:
    """Validate ``text`` (CSV in the STATEK metering format); ``name`` is used in problem reports."""
    problems: list[Problem] = []
    rows = _last_wins(_parse(io.StringIO(text.lstrip("\ufeff"), newline=""), name, problems)[0], problems)
    return rows, problems


class _Lines:
    """Physical lines for ``csv.reader``, skipping comments and blank lines where a record starts.

    It keeps the lines of the current record, so that after a record ``csv`` could not read,
    :meth:`skip_record` moves to the line that starts the next record (past the rest of a quoted
    field left open), not into the middle of this one.
    """

    def __init__(self, handle: Iterable[str]) -> None:
        self._handle = iter(handle)
        self.number = 0
        self.record_start = 0
        self.at_start = True
        self._record: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while True:
            line = next(self._handle)
            self.number += 1
            if self.at_start:
                stripped = line.strip(" \t\r\n")
                if not stripped or stripped.startswith(S.COMMENT_PREFIX):
                    continue
                self.record_start = self.number
                self.at_start = False
                self._record = [line]
            else:
                self._record.append(line)
            return line

    def skip_record(self) -> bool:
        """Skip the rest of the current record (its lines up to the one that closes the quoted field
        left open); ``False`` when the file ends first."""
        quoted = False
        for line in self._record:
            quoted = _ends_quoted(line, quoted)
        self._record = []
        while quoted:
            following = next(self._handle, None)
            if following is None:
                return False
            self.number += 1
            quoted = _ends_quoted(following, quoted)
        return True


def _ends_quoted(line: str, quoted: bool) -> bool:
    """Whether a line read from inside (``quoted``) or outside a quoted field ends inside one, as
    ``csv`` reads quotes: a field is quoted when ``"`` is its first character, ``""`` in it is one
    quote, and a ``"`` elsewhere in an unquoted field is an ordinary character."""
    at, field_start = 0, not quoted
    while at < len(line):
        if quoted:
            end = line.find('"', at)
            if end < 0:
                return True
            if line.startswith('"', end + 1):
                at = end + 2
                continue
            quoted, field_start, at = False, False, end + 1
        elif field_start and line.startswith('"', at):
            quoted, at = True, at + 1
        else:
            comma = line.find(",", at)
            if comma < 0:
                return False
            field_start, at = True, comma + 1
    return quoted


def _parse(
    handle: Iterable[str], name: str, problems: list[Problem] | None = None
) -> tuple[list[PriceRow], list[Problem]]:
    problems = [] if problems is None else problems
    lines = _Lines(handle)
    reader = csv.reader(lines, strict=True)
    records = _records(reader, lines, name, problems)
    header = next(records, None)
    if header is None:
        problems.append(Problem(name, None, None, "no header row: the file is empty or holds only comments"))
        return [], problems
    header_line, raw_columns = header
    columns = _read_header(raw_columns, name, header_line, problems)
    if columns is None:
        return [], problems
    rows: list[PriceRow] = []
    validator = _RowValidator(columns, name)
    for line_no, fields in records:
        row = validator.row(line_no, fields, problems)
        if row is not None:
            rows.append(row)
    return rows, problems


def _records(
    reader: Any, lines: _Lines, name: str, problems: list[Problem]
) -> Iterator[tuple[int, list[str]]]:
    while True:
        lines.at_start = True
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            why = str(exc)
            if "field larger" in why:
                why = f"a field is longer than {csv.field_size_limit()} characters"
            if "end of data" in why:
                ends = True
            elif not lines.skip_record():
                why, ends = f"{why}; a quote it opens is never closed", True
            else:
                ends = False
            problems.append(Problem(name, lines.record_start or None, None, f"unreadable CSV: {why}"))
            if ends:
                return  # an unterminated quote swallows the rest; nothing after it can be trusted
            continue
        yield lines.record_start, fields


def _read_header(raw: list[str], name: str, line_no: int, problems: list[Problem]) -> list[str] | None:
    written = [column.strip() for column in raw]
    while written and written[-1] == "":
        written.pop()  # a trailing comma in the header
    columns = [column.upper() for column in written]
    seen: set[str] = set()
    fatal = False
    for column, as_written in zip(columns, written):
        if column in seen and column in S.COLUMNS:
            problems.append(Problem(name, line_no, None, f"column {column} appears twice in the header"))
            fatal = True
        seen.add(column)
        if column not in S.COLUMNS:
            shown = (as_written or "(empty)")[:80]  # as the file spells it
            problems.append(Problem(name, line_no, shown, "unknown column, ignored", warning=True))
    for column in S.SEED_COLUMNS:
        if column in S.REQUIRED_COLUMNS and column not in seen:
            problems.append(
                Problem(name, line_no, column, "missing column: the file cannot be read without it")
            )
            fatal = True
    return None if fatal else columns


class _RowValidator:
    """Turns the fields of one record into a :class:`PriceRow`, or problems."""

    def __init__(self, columns: list[str], name: str) -> None:
        self.columns = columns
        self.name = name
        self.index = {c: i for i, c in enumerate(columns) if c in S.COLUMNS}
        self.prices = [(field, column) for field, column in _FIELDS if column in self.index]
        self.long_context = [c for c in _LONG_CONTEXT_PRICES if c in self.index]
        self._decimals: dict[str, Decimal | str] = {}

    def row(self, line: int, fields: list[str], problems: list[Problem]) -> PriceRow | None:
        name, columns = self.name, self.columns
        width = len(columns)
        if len(fields) > width:
            extra = fields[width:]
            if any(f.strip() for f in extra):
                # The original's csv.DictReader ignored fields past the header: the row loads, with a warning.
                problems.append(
                    Problem(
                        name,
                        line,
                        f"field {width + 1}",
                        f"extra field ignored: the row has {len(fields)} fields, the header {width}",
                        warning=True,
                    )
                )
            fields = fields[:width]  # trailing fields load, as in the original
        if not any(f.strip() for f in fields):
            problems.append(Problem(name, line, None, "empty row: every field is blank"))
            return None
        if len(fields) < width:
            problems.append(
                Problem(
                    name,
                    line,
                    columns[len(fields)],
                    f"missing column: the row has {len(fields)} of {width} fields",
                )
            )
            return None
        if max(map(len, fields)) > S.MAX_FIELD_CHARS:
            long = [c for c, i in self.index.items() if len(fields[i].strip()) > S.MAX_FIELD_CHARS]
            if long:
                for column in long:
                    problems.append(
                        Problem(name, line, column, f"field longer than {S.MAX_FIELD_CHARS} characters")
                    )
                return None
        cells = {column: fields[i].strip() for column, i in self.index.items()}
        bad = False
        values: dict[str, Any] = {}
        for column in (S.PROVIDER, S.MODEL, S.INPUT, S.OUTPUT):
            if not cells.get(column):
                problems.append(Problem(name, line, column, "missing value"))
                bad = True
        for field, column in self.prices:
            text = cells[column]
            if text:
                price = self._price(text)
                if isinstance(price, str):
                    problems.append(Problem(name, line, column, price.format(value=_shown(text))))
                    bad = True
                else:
                    values[field] = price
        threshold_text = cells.get(S.LC_THRESHOLD, "")
        threshold: int | None = None
        if threshold_text:
            if not _INTEGER.fullmatch(threshold_text):
                reason = f"not a whole number of tokens {_shown(threshold_text)}"
                if threshold_text.isdigit():
                    reason = f"threshold {_shown(threshold_text)} is above the maximum of {S.MAX_THRESHOLD}"
                problems.append(Problem(name, line, S.LC_THRESHOLD, reason))
                bad = True
            elif int(threshold_text) > S.MAX_THRESHOLD:
                problems.append(
                    Problem(
                        name,
                        line,
                        S.LC_THRESHOLD,
                        f"threshold {_shown(threshold_text)} is above the maximum of {S.MAX_THRESHOLD}",
                    )
                )
                bad = True
            else:
                threshold = int(threshold_text)
            for column in (S.LC_INPUT, S.LC_OUTPUT):
                if not cells.get(column):
                    problems.append(Problem(name, line, column, f"required when {S.LC_THRESHOLD} is set"))
                    bad = True
        else:
            for column in self.long_context:
                if cells[column]:
                    problems.append(
                        Problem(name, line, column, f"a long-context price needs {S.LC_THRESHOLD}")
                    )
                    bad = True
        currency = cells.get(S.CURRENCY, "")
        if currency and currency.upper() != S.DEFAULT_CURRENCY:
            problems.append(
                Problem(
                    name,
                    line,
                    S.CURRENCY,
                    f"currency {_shown(currency)} is not supported: statek keeps money in USD",
                )
            )
            bad = True
        valid_from = checked = None
        if cells.get(S.VALID_FROM):
            try:
                valid_from = parse_when(cells[S.VALID_FROM])
            except ValueError:
                problems.append(Problem(name, line, S.VALID_FROM, _bad_date(cells[S.VALID_FROM])))
                bad = True
        if cells.get(S.CHECKED):
            try:
                checked = date.fromisoformat(cells[S.CHECKED])
            except ValueError:
                problems.append(Problem(name, line, S.CHECKED, _bad_date(cells[S.CHECKED])))
                bad = True
        match = cells.get(S.MATCH, "")
        if match:
            wrong = match_problem(match)
            if wrong:
                problems.append(Problem(name, line, S.MATCH, wrong))
                bad = True
        if bad:
            return None
        return PriceRow(
            provider=cells[S.PROVIDER],
            model_family=cells.get(S.MODEL_FAMILY, ""),
            model=cells[S.MODEL],
            input=values["input"],
            cached=values.get("cached"),
            output=values["output"],
            cache_write_5m=values.get("cache_write_5m"),
            cache_write_1h=values.get("cache_write_1h"),
            long_context_threshold=threshold,
            long_context_input=values.get("long_context_input"),
            long_context_cached=values.get("long_context_cached"),
            long_context_output=values.get("long_context_output"),
            long_context_cache_write_5m=values.get("long_context_cache_write_5m"),
            long_context_cache_write_1h=values.get("long_context_cache_write_1h"),
            valid_from=valid_from,
            source=cells.get(S.SOURCE, ""),
            checked=checked,
            path=name,
            line=line,
            match=match,
            reasoning=values.get("reasoning"),
            request_fee_per_k=values.get("request_fee_per_k"),
        )

    def _price(self, text: str) -> Decimal | str:
        """The price, or a reason template (``{value}``) why ``text`` is not one. Memoised."""
        known = self._decimals.get(text)
        if known is None:
            known = self._decimals[text] = _parse_price(text)
        return known


def _parse_price(text: str) -> Decimal | str:
    if _NEGATIVE.fullmatch(text):
        return "negative price {value}"
    if len(text) > _MAX_NUMBER_CHARS or not _NUMBER.fullmatch(text):
        return "bad number {value}"
    try:
        price = Decimal(text)
    except InvalidOperation:
        return "bad number {value}"
    if not price.is_finite() or price > S.MAX_PRICE:
        return f"price {{value}} is above the maximum of {S.MAX_PRICE}"
    exponent = price.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -S.MAX_DECIMALS and price != 0:
        return f"price {{value}} has more than {S.MAX_DECIMALS} decimal places"
    return price


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _bad_date(text: str) -> str:
    return f"bad date {_shown(text)}: use YYYY-MM-DD or ISO 8601"


def match_problem(match: str) -> str | None:
    """Why a ``MATCH`` cell is not valid, or ``None``. See :func:`match_patterns` for the syntax."""
    for pattern in match.split("|"):
        key = normalise(pattern)
        if not key:
            return "empty pattern: separate patterns with a single |"
        if key.count("*") > 1:
            return f"pattern {_shown(pattern)} has more than one *"
        if key == "*":
            return "pattern '*' would price every model: name a prefix or suffix"
    return None


def match_patterns(match: str) -> list[str]:
    """The normalised patterns of a ``MATCH`` cell.

    Syntax: patterns separated by ``|``; each is a model name compared exactly (whitespace removed,
    case ignored), or holds one ``*`` that stands for any characters: ``gpt-4o-2024-*`` prices every
    dated snapshot, ``*-latest`` every alias ending so. A row's own ``MODEL`` always matches exactly.
    """
    return [normalise(p) for p in match.split("|") if normalise(p)] if match else []


def parse_when(text: str) -> datetime:
    """An ISO date or date-time; a date means midnight UTC, a date-time without offset is UTC."""
    text = text.strip()
    if len(text) > 40:
        raise ValueError("too long for a date")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
