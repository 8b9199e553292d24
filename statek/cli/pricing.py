"""``statek pricing ...``: validate, show, cost, diff and import price files.

Every command that reads price files reports each problem as ``file:line: column: reason`` and exits
with status 1 when there is any; ``cost`` also exits 1 when the call cannot be priced.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..metering import schema as S
from ..metering.diff import diff_rows
from ..metering.index import PriceTable, provider_key
from ..metering.litellm import convert_litellm
from ..metering.loader import LoadReport, parse_when, read_price_files
from ..metering.records import PriceRow, normalise
from ..metering.registry import default_registry
from ..types import CallDetail

__all__ = ["app"]

app = typer.Typer(
    help="Manage price files: validate, show, price a usage, diff, import LiteLLM prices.",
    no_args_is_help=True,
    add_completion=False,
)

FilesOption = Annotated[
    list[Path] | None,
    typer.Option("--file", "-f", help="Use these price files/folders instead of the default table."),
]


def _console(stderr: bool = False) -> Console:
    # Wide when not a terminal, so piped output (and file:line problem lines) is never wrapped.
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=240)
    return console


def _money(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = format(value.normalize(), "f")
    return text


def _report_problems(report: LoadReport) -> bool:
    """Print every problem; ``True`` when there was any."""
    for problem in report.problems:
        typer.echo(str(problem))
    return bool(report.problems)


def _table_from(files: list[Path] | None) -> tuple[PriceTable, LoadReport | None]:
    if not files:
        return default_registry().table, None
    report = read_price_files(files)
    return PriceTable([report]), report


@app.command("validate")
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Price files or folders (.csv/.txt, recursive).")],
) -> None:
    """Check price files; print every problem as file:line: column: reason; exit 1 if there is any."""
    report = read_price_files(paths)
    if _report_problems(report):
        typer.echo(f"{len(report.problems)} problem(s) in {len(report.files)} file(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: {len(report.rows)} rows in {len(report.files)} file(s)")


@app.command("show")
def show(
    provider: Annotated[
        str | None, typer.Option(help="Only this provider (names match ignoring case/spaces).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only models whose name contains this.")] = None,
    files: FilesOption = None,
    sources: Annotated[bool, typer.Option("--sources", help="Add SOURCE and CHECKED columns.")] = False,
) -> None:
    """Show the price table (the default one, or --file) as a table."""
    table, report = _table_from(files)
    problems = report is not None and _report_problems(report)
    rows = table.rows()
    if provider:
        rows = [r for r in rows if provider_key(r.provider) == provider_key(provider)]
    if model:
        rows = [r for r in rows if normalise(model) in normalise(r.model)]
    out = Table(title=f"{len(rows)} price row(s), USD per million tokens")
    for title in (
        "Provider",
        "Model",
        "Family",
        "Input",
        "Cached",
        "Output",
        "Write 5m",
        "Write 1h",
        "Long context",
        "Valid from",
    ):
        out.add_column(title, no_wrap=True)
    if sources:
        out.add_column("Source", no_wrap=True)
        out.add_column("Checked", no_wrap=True)
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
            r.valid_from.isoformat() if r.valid_from else "",
        ]
        if sources:
            cells += [r.source, r.checked.isoformat() if r.checked else ""]
        out.add_row(*cells)
    _console().print(out)
    if problems:
        raise typer.Exit(1)


def _long_context(row: PriceRow) -> str:
    tier = row.long_context
    if tier is None:
        return ""
    return f">{row.long_context_threshold}: {_money(tier.input)}/{_money(tier.cached)}/{_money(tier.output)}"


@app.command("cost")
def cost(
    provider: Annotated[str, typer.Option(help="Price-table provider, e.g. OPENAI.")],
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
    reported_cost: Annotated[str | None, typer.Option(help="Provider-reported USD cost (fallback).")] = None,
    at: Annotated[
        str | None, typer.Option(help="When the call was made (ISO date/time, UTC default).")
    ] = None,
    family: Annotated[str | None, typer.Option(help="Model family, when the table uses one.")] = None,
    files: FilesOption = None,
) -> None:
    """Price one call's usage exactly as statek would; exit 1 when it cannot be priced."""
    try:
        when = parse_when(at) if at else None
        reported = Decimal(reported_cost) if reported_cost is not None else None
    except (ValueError, InvalidOperation) as exc:
        raise typer.BadParameter(str(exc)) from None
    if cached + cache_write > input or cache_write_1h > cache_write:
        raise typer.BadParameter(
            "--cached + --cache-write must not exceed --input, nor --cache-write-1h --cache-write"
        )
    table, report = _table_from(files)
    if report is not None and _report_problems(report):
        raise typer.Exit(1)
    stats = CallDetail(0, 0, reported, input, output, cached, cache_write, cache_write_1h)
    result = table.price_call(provider, model, stats, when, family)
    row = table.find(provider, model, family, when)
    console = _console()
    if result.status == "unpriced":
        console.print(f"unpriced: no price for {provider} {model} and no reported cost")
        raise typer.Exit(1)
    out = Table(title=f"{provider} {model}: {result.status}")
    out.add_column("Part")
    out.add_column("Tokens", justify="right")
    out.add_column("USD / M", justify="right")
    out.add_column("USD", justify="right")
    if result.status == "calculated" and row is not None:
        tier, label = row.prices, "standard"
        if row.long_context is not None and input > (row.long_context_threshold or 0):
            tier, label = row.long_context, f"long context (> {row.long_context_threshold})"
        parts = (
            ("uncached input", input - cached - cache_write, tier.input),
            ("cache read", cached, tier.cached if tier.cached is not None else tier.input),
            (
                "cache write 5m",
                cache_write - cache_write_1h,
                tier.cache_write_5m if tier.cache_write_5m is not None else tier.input,
            ),
            (
                "cache write 1h",
                cache_write_1h,
                tier.cache_write_1h if tier.cache_write_1h is not None else tier.input,
            ),
            ("output", output, tier.output),
        )
        for name, tokens, price in parts:
            if tokens:
                out.add_row(name, str(tokens), _money(price), _money(tokens * price / 1_000_000))
        out.caption = f"row {row.model} ({row.location}), {label} prices"
    out.add_row("total", "", "", _money(result.amount), end_section=True)
    console.print(out)
    typer.echo(f"{result.status} {_money(result.amount)} {result.currency}")


@app.command("diff")
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier price file or folder.")],
    new: Annotated[Path, typer.Argument(help="The later price file or folder.")],
) -> None:
    """Show rows added, removed and changed from OLD to NEW; exit 1 if either has problems."""
    before, after = read_price_files([old]), read_price_files([new])
    problems = _report_problems(before) | _report_problems(after)
    changes = diff_rows(before.rows, after.rows)
    out = Table(title=f"{old} → {new}: {len(changes)} difference(s)")
    for title in ("Change", "Provider", "Model", "Valid from", "Details"):
        out.add_column(title, no_wrap=True)
    for change in changes:
        r = change.row
        details = ", ".join(f"{col} {_cell(a)} → {_cell(b)}" for col, a, b in change.changes)
        if change.kind == "added":
            details = f"input {_money(r.input)}, output {_money(r.output)}"
        out.add_row(
            change.kind, r.provider, r.model, r.valid_from.isoformat() if r.valid_from else "", details
        )
    _console().print(out)
    counts = {kind: sum(c.kind == kind for c in changes) for kind in ("added", "removed", "changed")}
    typer.echo(", ".join(f"{n} {kind}" for kind, n in counts.items()))
    if problems:
        raise typer.Exit(1)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return _money(value)
    return str(value)


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
    except (OSError, ValueError) as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(1) from None
    handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    try:
        writer = csv.DictWriter(handle, fieldnames=list(S.COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.rows)
    finally:
        if out:
            handle.close()
    for problem in result.problems:
        typer.echo(problem, err=True)
    typer.echo(
        f"converted {len(result.rows)} model(s), skipped {result.skipped} (not chat or no token prices), "
        f"{len(result.problems)} problem(s)",
        err=True,
    )
    if result.problems:
        raise typer.Exit(1)
