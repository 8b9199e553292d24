"""``statek usage ...``: who spent what, read back from the ledger.

``report`` sums calls per group (``--by tenant,model,day``: any job attribute, or ``model``,
``provider``, ``day``, ``job``), from a ledger directory (``--ledger DIR``, default
``STATEK_LEDGER_DIR``) or Postgres (``--db URL``, default ``STATEK_LEDGER_URL``); ``export`` writes
the raw call rows; ``reprice`` prices a period again with other price files; ``compact`` merges a
directory's small files; ``init-db`` creates the Postgres tables. Costs are exact decimal strings in
``--json`` and ``--csv``.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import typer

from ..settings import LEDGER_DIR_ENV, LEDGER_URL_ENV

if TYPE_CHECKING:
    import polars as pl

__all__ = ["app", "parse_moment"]

app = typer.Typer(help="Who spent what: reports over the usage ledger.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(text: str | None, now: datetime | None = None) -> datetime | None:
    """``30d`` / ``12h`` / ``90m`` (that long before ``now``), or an ISO date or time (UTC if naive)."""
    if text is None or not text.strip():
        return None
    now = now or datetime.now(timezone.utc)
    match = _DURATION.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a duration (30d, 12h) nor an ISO date/time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _keys(by: str) -> list[str]:
    keys = [k.strip() for k in by.split(",") if k.strip()]
    if len(set(keys)) != len(keys):
        raise typer.BadParameter(f"--by repeats a key: {by!r}")
    return keys


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Money as exact decimal strings without trailing zeros, dates as ISO strings: done by polars,
    column-wise (a report may have hundreds of thousands of groups)."""
    import polars as pl

    changes = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Decimal):
            text = pl.col(name).cast(pl.String)
            trimmed = text.str.replace(r"(\.\d*?)0+$", "$1").str.replace(r"\.$", "")
            changes.append(pl.when(trimmed == "-0").then(pl.lit("0")).otherwise(trimmed).alias(name))
        elif dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
            changes.append(pl.col(name).cast(pl.String))
    return frame.with_columns(changes) if changes else frame


def _emit(frame: pl.DataFrame, as_json: bool, as_csv: bool) -> None:
    text = _as_text(frame)
    if as_json:
        sys.stdout.write(text.write_json() + "\n")
        return
    if as_csv:
        sys.stdout.write(text.write_csv())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False)
    for column in text.columns:
        table.add_column(column, justify="right" if frame.schema[column].is_numeric() else "left")
    for row in text.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


def _source(ledger: str | None, db: str | None) -> tuple[str, str]:
    if ledger and db:
        raise typer.BadParameter("give --ledger or --db, not both")
    if ledger:
        return "dir", ledger
    if db:
        return "db", db
    if os.environ.get(LEDGER_DIR_ENV):
        return "dir", os.environ[LEDGER_DIR_ENV]
    if os.environ.get(LEDGER_URL_ENV):
        return "db", os.environ[LEDGER_URL_ENV]
    raise typer.BadParameter(f"no ledger: give --ledger DIR or --db URL (or set {LEDGER_DIR_ENV})")


def _calls(kind: str, where: str, since: datetime | None, until: datetime | None) -> pl.LazyFrame:
    if kind == "dir":
        from ..ledger.query import scan

        return scan(where)
    from ..ledger.postgres import read_calls

    return read_calls(where, since=since, until=until).lazy()


_LEDGER = typer.Option(None, "--ledger", help=f"Ledger directory (default: ${LEDGER_DIR_ENV}).")
_DB = typer.Option(None, "--db", help=f"Postgres ledger URL (default: ${LEDGER_URL_ENV}).")
_SINCE = typer.Option(None, help="Calls started since: 30d, 12h, or an ISO date/time (UTC).")
_UNTIL = typer.Option(None, help="Calls started before: 30d, 12h, or an ISO date/time (UTC).")


@app.command("report")
def report_command(
    by: str = typer.Option("tenant", help="Group keys: any job attribute, model, provider, day, job."),
    ledger: str = _LEDGER,
    db: str = _DB,
    since: str = _SINCE,
    until: str = _UNTIL,
    job: str = typer.Option(None, help="Only the calls of this job and of its child jobs."),
    as_json: bool = typer.Option(False, "--json", help="A JSON array of objects."),
    as_csv: bool = typer.Option(False, "--csv", help="CSV with a header line."),
) -> None:
    """Calls, failed calls, tokens and exact cost per group."""
    from ..ledger.query import report

    kind, where = _source(ledger, db)
    start, end = parse_moment(since), parse_moment(until)
    frame = report(_calls(kind, where, start, end), _keys(by), since=start, until=end, job=job)
    _emit(frame, as_json, as_csv)


@app.command("export")
def export_command(
    ledger: str = _LEDGER,
    db: str = _DB,
    since: str = _SINCE,
    until: str = _UNTIL,
    output: str = typer.Option(..., "--output", "-o", help="File to write: .parquet, .csv or .jsonl."),
) -> None:
    """Write the call rows of a period to one file (Parquet, CSV or JSON lines)."""
    import polars as pl

    kind, where = _source(ledger, db)
    start, end = parse_moment(since), parse_moment(until)
    frame = _calls(kind, where, start, end)
    if start is not None:
        frame = frame.filter(pl.col("start") >= start)
    if end is not None:
        frame = frame.filter(pl.col("start") < end)
    data = frame.collect()
    if output.endswith(".parquet"):
        data.write_parquet(output)
    elif output.endswith(".csv"):
        data.with_columns(pl.col("parent_job_ids").list.join(",")).write_csv(output)
    elif output.endswith((".jsonl", ".ndjson")):
        data.write_ndjson(output)
    else:
        raise typer.BadParameter("--output must end in .parquet, .csv or .jsonl")
    typer.echo(f"{data.height} call rows -> {output}")


@app.command("compact")
def compact_command(
    ledger: str = typer.Argument(None, help=f"Ledger directory (default: ${LEDGER_DIR_ENV})."),
) -> None:
    """Merge a ledger directory's small files into one file per table (safe beside running writers)."""
    from ..ledger.query import compact

    where = ledger or os.environ.get(LEDGER_DIR_ENV)
    if not where:
        raise typer.BadParameter(f"give the ledger directory (or set {LEDGER_DIR_ENV})")
    merged = compact(where)
    typer.echo(", ".join(f"{table}: {n} files merged" for table, n in merged.items()))


@app.command("init-db")
def init_db_command(db: str = _DB) -> None:
    """Create the ledger's tables and indexes in Postgres (idempotent)."""
    from ..ledger.postgres import init_db

    where = db or os.environ.get(LEDGER_URL_ENV)
    if not where:
        raise typer.BadParameter(f"give --db postgresql://... (or set {LEDGER_URL_ENV})")
    init_db(where)
    typer.echo("statek ledger tables ready")


@app.command("reprice")
def reprice_command(
    prices: str = typer.Option(..., "--prices", help="A price file (CSV/TXT) or a folder of them."),
    by: str = typer.Option("model", help="Group keys, as for report."),
    ledger: str = _LEDGER,
    db: str = _DB,
    since: str = _SINCE,
    until: str = _UNTIL,
    as_json: bool = typer.Option(False, "--json", help="A JSON array of objects."),
    as_csv: bool = typer.Option(False, "--csv", help="CSV with a header line."),
) -> None:
    """What a period would have cost with other prices, per group, and the difference."""
    from ..ledger.reprice import reprice

    kind, where = _source(ledger, db)
    start, end = parse_moment(since), parse_moment(until)
    frame = reprice(_calls(kind, where, start, end), prices, _keys(by), since=start, until=end)
    _emit(frame, as_json, as_csv)
