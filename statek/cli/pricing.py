"""``statek pricing ...``: validate, show, cost, diff, export, compare and import prices.

Every command works over the effective table: the price database (``genai-prices``) below the
price files (the shipped table and ``STATEK_MODEL_INFO_DIR``, or the files given with ``--file``;
``--no-database`` leaves the database out) and says where each price came from. Every command that
reads price files reports each problem as ``file:line: column: reason`` (warnings do not fail) and
exits with status 1 on an error; ``cost`` also exits 1 when the call cannot be priced. ``--json``
prints one JSON document for scripts instead of tables. Bad input is one line and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import csv
import difflib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table

from ..metering import schema as S
from ..metering.diff import RowChange, diff_rows
from ..metering.export import (
    compare_with_database,
    compare_with_litellm,
    effective_rows,
    export_note,
    row_cells,
    write_price_csv,
)
from ..metering.index import PriceTable
from ..metering.litellm import convert_litellm
from ..metering.loader import LoadReport, parse_when, read_price_files
from ..metering.records import PROVIDER_ALIASES, PriceRow, Problem, normalise, provider_key
from ..metering.registry import default_registry
from ..types import CallDetail
from .output import ColumnSpec, clean, echo, fitted_table, literal, shown_path
from .output import console as _output_console

__all__ = ["app"]

app = typer.Typer(
    help="Manage prices: validate, show, cost, diff, export, compare, import LiteLLM prices.",
    no_args_is_help=True,
    add_completion=False,
)

FilesOption = Annotated[
    list[Path] | None,
    typer.Option("--file", "-f", help="Use these price files/folders instead of the default files."),
]
NoDatabaseOption = Annotated[
    bool, typer.Option("--no-database", help="Leave out the genai-prices database (files only).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


def _console(stderr: bool = False) -> Console:
    """Wide when not a terminal, so piped output (and file:line problem lines) is never wrapped."""
    return _output_console(stderr)


def _money(value: Decimal | None) -> str:
    if value is None:
        return "-"
    try:
        return format(value.normalize(), "f")
    except ArithmeticError:  # too many digits to write out: scientific notation
        return str(value)


def _fail(message: str) -> typer.Exit:
    echo(message, err=True)
    return typer.Exit(1)


def _json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _money(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "path": problem.path,
        "line": problem.line,
        "column": problem.column,
        "reason": problem.reason,
        "warning": problem.warning,
    }


def _problem_line(problem: Problem) -> str:
    """``file:line: column: reason``, the file name quoted when it holds anything unusual."""
    return clean(problem._replace(path=shown_path(problem.path)))


def _report_problems(report: LoadReport, *, quiet: bool = False) -> bool:
    """Print every problem (unless ``quiet``); ``True`` when there was an error (not a warning)."""
    if not quiet:
        for problem in report.problems:
            typer.echo(_problem_line(problem))
    return not report.ok


def _check_providers(table: PriceTable, providers: list[str] | None) -> None:
    """Exit 1 with a suggestion when a ``--provider`` names no provider of the table or database."""
    known: dict[str, str] = {}
    for row in table.rows():
        known.setdefault(provider_key(row.provider), row.provider)
    database = table.database
    if database is not None:
        for provider_id in database.provider_ids():
            known.setdefault(provider_key(provider_id), provider_id)
    for name in providers or ():
        key = provider_key(name)
        if key in known or (database is not None and database.provider(name) is not None):
            continue
        names = {normalise(n): n for n in (*known.values(), *PROVIDER_ALIASES)}
        close = difflib.get_close_matches(normalise(name), list(names), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(names[c] for c in close)}?" if close else ""
        raise _fail(f"unknown provider {name!r}: no price row or database entry names it{hint}")


def _row_json(row: PriceRow) -> dict[str, Any]:
    cells: dict[str, Any] = {k: v for k, v in row_cells(row).items() if v != ""}
    cells["FROM"] = row.location
    return cells


def _table_from(files: list[Path] | None, database: bool) -> tuple[PriceTable, LoadReport | None]:
    registry = default_registry()
    if not files:
        table = registry.table
        if database:
            return table, None
        return PriceTable([table.rows()]), None
    report = read_price_files(files)
    if not report.files and not report.problems:
        raise _fail(f"{', '.join(shown_path(f) for f in files)}: no price files (.csv or .txt) found")
    return PriceTable([list(report.rows)], database=registry.database if database else None), report


@app.command("validate")
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Price files or folders (.csv/.txt, recursive).")],
    as_json: JsonOption = False,
) -> None:
    """Check price files; print every problem as file:line: column: reason; exit 1 on any error."""
    report = read_price_files(paths)
    if not report.files and not report.problems:
        raise _fail(f"{', '.join(shown_path(p) for p in paths)}: no price files (.csv or .txt) found")
    failed = _report_problems(report, quiet=as_json)
    if as_json:
        _json(
            {
                "ok": report.ok,
                "rows": len(report.rows),
                "files": [str(f) for f in report.files],
                "problems": [_problem_json(p) for p in report.problems],
            }
        )
    elif failed:
        warnings = len(report.problems) - len(report.errors)
        typer.echo(
            f"{len(report.errors)} problem(s) and {warnings} warning(s) in {len(report.files)} file(s)",
            err=True,
        )
    else:
        typer.echo(f"OK: {len(report.rows)} rows in {len(report.files)} file(s)")
    if failed:
        raise typer.Exit(1)


@app.command("show")
def show(
    provider: Annotated[
        list[str] | None,
        typer.Option(help="Only this provider (repeatable; names match ignoring case/spaces)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only models whose name contains this.")] = None,
    files: FilesOption = None,
    no_database: NoDatabaseOption = False,
    sources: Annotated[bool, typer.Option("--sources", help="Add SOURCE and CHECKED columns.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the effective prices (database and files); the From column says where each came from."""
    table, report = _table_from(files, not no_database)
    problems = report is not None and _report_problems(report, quiet=as_json)
    _check_providers(table, provider)
    rows = effective_rows(table, provider or ())
    if model:
        rows = [r for r in rows if normalise(model) in normalise(r.model)]
    rows.sort(
        key=lambda r: (provider_key(r.provider), normalise(r.model), r.valid_from is not None, r.valid_from)
    )
    if as_json:
        _json({"rows": [_row_json(r) for r in rows]})
        if problems:
            raise typer.Exit(1)
        return
    lines: list[list[str]] = []
    for r in rows:
        cells = [
            r.provider,
            r.model,
            r.model_family,
            _money(r.input),
            _money(r.cached),
            _money(r.output),
            _money(r.cache_write_5m),
            _money(r.cache_write_1h),
            _long_context(r),
            _money(r.request_fee_per_k) if r.request_fee_per_k is not None else "",
            r.valid_from.isoformat() if r.valid_from else "",
            r.location,
        ]
        if sources:
            cells += [r.source, r.checked.isoformat() if r.checked else ""]
        lines.append(cells)
    console = _console()
    title = f"{len(rows)} price row(s) in force now, USD per million tokens"
    console.print(fitted_table(console, _SHOW_COLUMNS[: 14 if sources else 12], lines, title=title))
    if problems:
        raise typer.Exit(1)


_SHOW_COLUMNS = (
    # keep: the higher, the later a column is dropped to fit the terminal; prices never are.
    ColumnSpec("Provider", keep=80),
    ColumnSpec("Model", "fold", fold_at=20),
    ColumnSpec("Family", keep=10),
    ColumnSpec("Input", "number"),
    ColumnSpec("Cached", "number"),
    ColumnSpec("Output", "number"),
    ColumnSpec("Write 5m", "number", keep=50),
    ColumnSpec("Write 1h", "number", keep=40),
    ColumnSpec("Long context", "fold", keep=45),
    ColumnSpec("Per 1k req", "number", keep=35),
    ColumnSpec("Valid from", keep=30),
    ColumnSpec("From", "fold", keep=60),
    ColumnSpec("Source", "fold", keep=5),
    ColumnSpec("Checked", keep=6),
)


def _long_context(row: PriceRow) -> str:
    tier = row.long_context
    if tier is None:
        return ""
    return f">{row.long_context_threshold}: {_money(tier.input)}/{_money(tier.cached)}/{_money(tier.output)}"


@app.command("cost")
def cost(
    provider: Annotated[str, typer.Option(help="Provider, e.g. OPENAI, GEMINI, BEDROCK.")],
    model: Annotated[str, typer.Option(help="Model id as sent to the provider.")],
    input: Annotated[
        int, typer.Option("--input", min=0, help="Prompt tokens, cache reads and writes included.")
    ],
    output: Annotated[int, typer.Option("--output", min=0, help="Generated tokens, reasoning included.")],
    cached: Annotated[int, typer.Option("--cached", min=0, help="Prompt tokens read from cache.")] = 0,
    cache_write: Annotated[
        int, typer.Option("--cache-write", min=0, help="Prompt tokens written to cache.")
    ] = 0,
    cache_write_1h: Annotated[
        int, typer.Option("--cache-write-1h", min=0, help="Part of --cache-write kept 1h.")
    ] = 0,
    reasoning: Annotated[
        int, typer.Option("--reasoning", min=0, help="Part of --output spent reasoning.")
    ] = 0,
    reported_cost: Annotated[str | None, typer.Option(help="Provider-reported USD cost (it wins).")] = None,
    at: Annotated[
        str | None, typer.Option(help="When the call was made (ISO date/time, UTC default).")
    ] = None,
    family: Annotated[str | None, typer.Option(help="Model family, when the table uses one.")] = None,
    files: FilesOption = None,
    no_database: NoDatabaseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Price one call's usage exactly as statek would; exit 1 when it cannot be priced."""
    try:
        when = parse_when(at) if at else None
        reported = Decimal(reported_cost) if reported_cost is not None else None
    except (ValueError, InvalidOperation) as exc:
        raise typer.BadParameter(str(exc) or "not a number") from None
    if reported is not None and (not reported.is_finite() or reported < 0 or reported.adjusted() >= 15):
        raise typer.BadParameter("--reported-cost must be a finite, non-negative number of USD below 1e15")
    if cached + cache_write > input or cache_write_1h > cache_write or reasoning > output:
        raise typer.BadParameter(
            "--cached + --cache-write must not exceed --input, nor --cache-write-1h --cache-write, "
            "nor --reasoning --output"
        )
    table, report = _table_from(files, not no_database)
    if report is not None and _report_problems(report, quiet=as_json):
        raise typer.Exit(1)
    stats = CallDetail(0, 0, reported, input, output, cached, cache_write, cache_write_1h, reasoning)
    result = table.price_call(provider, model, stats, when, family)
    row = table.find(provider, model, family, when)
    if as_json:
        _json(
            {
                "status": result.status,
                "amount": result.amount,
                "currency": result.currency,
                "table_amount": result.table_amount,
                "drift": result.drift,
                "price": _row_json(row) if row is not None else None,
            }
        )
        if result.amount is None:
            raise typer.Exit(1)
        return
    console = _console()
    if result.amount is None:
        what = "no usage to price" if result.status == "no_usage" else "no price and no reported cost"
        console.print(literal(f"{result.status}: {what} for {provider} {model}"))
        raise typer.Exit(1)
    out = Table(title=literal(f"{provider} {model}: {result.status}"))
    for title in ("Part", "Tokens", "USD / M", "USD"):
        out.add_column(title, justify="left" if title == "Part" else "right")
    if row is not None:
        _breakdown(out, row, input, output, cached, cache_write, cache_write_1h, reasoning)
    if result.table_amount is not None:
        out.add_row("table price", "", "", _money(result.table_amount))
        out.add_row("reported (wins)", "", "", _money(result.amount))
    out.add_row("total", "", "", _money(result.amount), end_section=True)
    console.print(out)
    echo(f"{result.status} {_money(result.amount)} {result.currency}")


def _breakdown(
    out: Table,
    row: PriceRow,
    input: int,
    output: int,
    cached: int,
    cache_write: int,
    cache_write_1h: int,
    reasoning: int,
) -> None:
    tier, label = row.prices, "standard"
    if row.long_context is not None and input > (row.long_context_threshold or 0):
        tier, label = row.long_context, f"long context (> {row.long_context_threshold})"
    write_5m = tier.cache_write_5m if tier.cache_write_5m is not None else tier.input
    reasoning_price = tier.reasoning if tier.reasoning is not None else tier.output
    parts = (
        ("uncached input", input - cached - cache_write, tier.input),
        ("cache read", cached, tier.cached if tier.cached is not None else tier.input),
        ("cache write 5m", cache_write - cache_write_1h, write_5m),
        (
            "cache write 1h",
            cache_write_1h,
            tier.cache_write_1h if tier.cache_write_1h is not None else write_5m,
        ),
        ("output", output - reasoning, tier.output),
        ("reasoning", reasoning, reasoning_price),
    )
    for name, tokens, price in parts:
        if tokens:
            out.add_row(name, str(tokens), _money(price), _money(tokens * price / 1_000_000))
    if row.request_fee_per_k:
        out.add_row(
            "request fee", "1", f"{_money(row.request_fee_per_k)}/1k", _money(row.request_fee_per_k / 1000)
        )
    out.caption = literal(f"price of {row.model} from {row.location}, {label} prices")


def _change_json(change: RowChange) -> dict[str, Any]:
    return {
        "change": change.kind,
        "provider": change.row.provider,
        "model": change.row.model,
        "valid_from": change.row.valid_from,
        "from": change.row.location,
        "columns": [{"column": c, "old": a, "new": b} for c, a, b in change.changes],
    }


@app.command("diff")
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier price file or folder.")],
    new: Annotated[Path, typer.Argument(help="The later price file or folder.")],
    as_json: JsonOption = False,
) -> None:
    """Show rows added, removed and changed from OLD to NEW; exit 1 if either has errors."""
    for path in (old, new):
        if not path.exists():
            raise _fail(f"{shown_path(path)}: no such file or folder")
    before, after = read_price_files([old]), read_price_files([new])
    for path, report in ((old, before), (new, after)):
        if not report.files and not report.problems:
            raise _fail(f"{shown_path(path)}: no price files (.csv or .txt) found")
    problems = _report_problems(before, quiet=as_json) | _report_problems(after, quiet=as_json)
    changes = diff_rows(before.rows, after.rows)
    counts = {kind: sum(c.kind == kind for c in changes) for kind in ("added", "removed", "changed")}
    if as_json:
        _json(
            {
                "counts": counts,
                "changes": [_change_json(c) for c in changes],
                "problems": [_problem_json(p) for p in (*before.problems, *after.problems)],
            }
        )
    else:
        lines = []
        for change in changes:
            r = change.row
            details = ", ".join(f"{col} {_cell(a)} → {_cell(b)}" for col, a, b in change.changes)
            if change.kind == "added":
                details = f"input {_money(r.input)}, output {_money(r.output)}"
            lines.append(
                [change.kind, r.provider, r.model, r.valid_from.isoformat() if r.valid_from else "", details]
            )
        console = _console()
        title = f"{shown_path(old)} → {shown_path(new)}: {len(changes)} difference(s)"
        console.print(fitted_table(console, _DIFF_COLUMNS, lines, title=title))
        typer.echo(", ".join(f"{n} {kind}" for kind, n in counts.items()))
    if problems:
        raise typer.Exit(1)


_DIFF_COLUMNS = (
    ColumnSpec("Change"),
    ColumnSpec("Provider", keep=20),
    ColumnSpec("Model", "fold", fold_at=16),
    ColumnSpec("Valid from", keep=10),
    ColumnSpec("Details", "fold", fold_at=24),
)
_COMPARE_COLUMNS = (
    ColumnSpec("Provider", keep=20),
    ColumnSpec("Model", "fold", fold_at=16),
    ColumnSpec("From", "fold", keep=10),
    ColumnSpec("Differences (ours → theirs)", "fold", fold_at=24),
)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return _money(value)
    return str(value)


@contextmanager
def _output(out: Path | None) -> Iterator[TextIO]:
    """``out`` opened for writing (stdout when ``None``), or a one-line error and exit 1."""
    if out is None:
        yield sys.stdout
        return
    if out.is_dir():
        raise _fail(f"{out}: is a folder; give a file name for the output")
    if not out.parent.is_dir():
        raise _fail(f"{out}: folder {out.parent} does not exist; create it first")
    try:
        handle = out.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{out}: cannot write: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _write(out: Path | None, write: Callable[[TextIO], int]) -> int:
    """Run ``write`` on :func:`_output`; a failed write (a full disk, a closed pipe) is one line, exit 1."""
    where = shown_path(out) if out is not None else "standard output"
    try:
        with _output(out) as handle:
            count = write(handle)
            handle.flush()
    except OSError as exc:
        raise _fail(f"{where}: cannot write: {exc.strerror or exc}") from None
    return count


@app.command("export")
def export(
    provider: Annotated[
        list[str] | None, typer.Option(help="Export this provider (repeatable; default: every provider).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the CSV here (default: stdout).")
    ] = None,
    files: FilesOption = None,
    no_database: NoDatabaseOption = False,
) -> None:
    """Write the effective prices as a price file a team can pin, edit and load (STATEK_MODEL_INFO_DIR)."""
    table, report = _table_from(files, not no_database)
    if report is not None and _report_problems(report):
        raise typer.Exit(1)
    _check_providers(table, provider)
    rows = effective_rows(table, provider or ())
    if not rows:
        raise _fail("nothing to export: no price row" + (f" for {', '.join(provider)}" if provider else ""))
    count = _write(out, lambda handle: write_price_csv(rows, handle, note=export_note(provider or ())))
    typer.echo(f"exported {count} price row(s)", err=True)


@app.command("compare")
def compare(
    litellm: Annotated[
        Path | None,
        typer.Option("--litellm", help="Compare with LiteLLM's model_prices_and_context_window.json."),
    ] = None,
    database: Annotated[
        bool, typer.Option("--database", help="Compare with the genai-prices database.")
    ] = False,
    provider: Annotated[list[str] | None, typer.Option(help="Only this provider (repeatable).")] = None,
    files: FilesOption = None,
    as_json: JsonOption = False,
    missing_out: Annotated[
        Path | None,
        typer.Option(
            "--write-missing",
            help="With --litellm and --database: write LiteLLM's rows for ids the database does not price.",
        ),
    ] = None,
) -> None:
    """Compare the price files' rows (default files, or --file) with another source; list differences.

    With both --litellm FILE and --database: compare the price database itself with LiteLLM's map.

    Exit 1 when any price differs (so a CI job can alert on a stale table), 0 when all agree.
    """
    if litellm is not None and database:  # the database layer itself against LiteLLM (issue 21)
        pricing_compare.database_against_litellm(litellm, tuple(provider or ()), as_json, missing_out)
        return
    if litellm is None and not database:
        raise typer.BadParameter("give --litellm FILE, --database, or both")
    table, report = _table_from(files, False)
    if report is not None and _report_problems(report, quiet=as_json):
        raise typer.Exit(1)
    _check_providers(table, provider)
    wanted = {provider_key(p) for p in provider or ()}
    rows = [r for r in table.rows() if not wanted or provider_key(r.provider) in wanted]
    try:
        if litellm is not None:
            changes, missing = compare_with_litellm(rows, litellm)
            other = str(litellm)
        else:
            registry_db = default_registry().database
            if registry_db is None:
                raise _fail("no price database is configured")
            changes, missing = compare_with_database(rows, registry_db)
            other = "genai-prices"
    except (OSError, ValueError, RecursionError) as exc:
        raise _fail(f"{shown_path(litellm)}: cannot read: {_short(exc)}") from None
    if as_json:
        _json(
            {
                "against": other,
                "compared": len(rows),
                "different": [_change_json(c) for c in changes],
                "missing": [_row_json(r) for r in missing],
            }
        )
    else:
        lines = []
        for change in changes:
            r = change.row
            details = ", ".join(f"{col} {_cell(a)} → {_cell(b)}" for col, a, b in change.changes)
            lines.append([r.provider, r.model, r.location, details])
        shown = shown_path(other) if litellm is not None else other
        lines += [[r.provider, r.model, r.location, f"not listed in {shown}"] for r in missing]
        console = _console()
        title = f"{len(rows)} row(s) against {shown}: {len(changes)} differ, {len(missing)} not listed there"
        console.print(fitted_table(console, _COMPARE_COLUMNS, lines, title=title))
        typer.echo(
            f"{len(changes)} different, {len(missing)} missing, {len(rows) - len(changes) - len(missing)} same"
        )
    if changes:
        raise typer.Exit(1)


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


@app.command("import-litellm")
def import_litellm(
    file: Annotated[Path, typer.Argument(help="LiteLLM model_prices_and_context_window.json")],
    out: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the CSV here (default: stdout).")
    ] = None,
    checked: Annotated[str, typer.Option(help="Value for the CHECKED column (YYYY-MM-DD).")] = "",
) -> None:
    """Convert LiteLLM's JSON price list to the STATEK metering CSV format."""
    if checked:
        try:
            datetime.strptime(checked, "%Y-%m-%d")
        except ValueError:
            raise typer.BadParameter("--checked must be YYYY-MM-DD") from None
    try:
        result = convert_litellm(file, checked=checked)
    except (OSError, ValueError, RecursionError, ArithmeticError) as exc:
        raise _fail(f"{file}: {_short(exc)}") from None

    def write(handle: TextIO) -> int:
        writer = csv.DictWriter(handle, fieldnames=list(S.COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.rows)
        return len(result.rows)

    _write(out, write)
    for problem in result.problems:
        echo(problem, err=True)
    typer.echo(
        f"converted {len(result.rows)} model(s), skipped {result.skipped} "
        f"({', '.join(f'{why} {n}' for why, n in sorted(result.skipped_why.items(), key=lambda i: -i[1]))}), "
        f"{len(result.rounded)} price(s) rounded to {S.MAX_DECIMALS} decimals, "
        f"{len(result.problems)} problem(s)",
        err=True,
    )
    if result.problems:
        raise typer.Exit(1)


# Subcommands kept in their own modules (issue 21): registered here.
from . import pricing_compare, pricing_explain

pricing_explain.register(app)
