"""The ledger in Postgres, for fleets: ``STATEK_LEDGER_URL=postgresql://...`` (extra ``statek[postgres]``,
psycopg 3).

Tables ``statek_calls`` and ``statek_jobs`` (:data:`DDL`, created by ``statek usage init-db``): one row
per record, keyed by ``record_id``; job attributes in a ``jsonb`` column (``attributes->>'tenant'``),
money as ``numeric`` (exact). Writes are batched (one transaction per batch) and idempotent
(``ON CONFLICT (record_id) DO NOTHING``): a batch sent again after a lost acknowledgement counts once.

While Postgres is unreachable the rows wait in a bounded in-memory spool (``STATEK_LEDGER_SPOOL``,
default 100000 rows) and go out, oldest first, when it answers again; past the bound the oldest rows
are dropped, logged and counted (:attr:`PostgresSink.dropped`). The spool lives in the process: rows
still waiting when the process is killed are lost.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..settings import LEDGER_SPOOL_ENV
from .rows import CALL_COLUMNS, JOB_COLUMNS
from .schema import ATTRIBUTE_PREFIX, MONEY_COLUMNS, money, polars_schema

if TYPE_CHECKING:
    import polars as pl

__all__ = ["DDL", "PostgresSink", "init_db", "read_calls", "sql_column"]

_log = logging.getLogger("statek.ledger")

_TYPES = {
    "start": "timestamptz NOT NULL",
    "end": "timestamptz NOT NULL",
    "parent_job_ids": "text[] NOT NULL",
    "attributes": "jsonb NOT NULL",
    "stream": "boolean",
    "duration_s": "double precision",
    "first_chunk_s": "double precision",
}
_SQL_NAMES = {"start": "started_at", "end": "ended_at"}


def sql_column(column: str) -> str:
    """The Postgres column of a ledger field (``start``/``end`` are ``started_at``/``ended_at``)."""
    return _SQL_NAMES.get(column, column)


def _sql_type(column: str) -> str:
    if column in _TYPES:
        return _TYPES[column]
    if column == "record_id":
        return "text PRIMARY KEY"
    if column.endswith("_usd"):
        return "numeric"
    if column.endswith(
        ("_tokens", "_calls", "calls", "bytes_sent", "bytes_received", "retries", "_refusals")
    ):
        return "bigint"
    return "text"


def _table_ddl(table: str, columns: tuple[str, ...]) -> str:
    body = ",\n  ".join(f"{sql_column(c)} {_sql_type(c)}" for c in columns)
    return f"CREATE TABLE IF NOT EXISTS statek_{table} (\n  {body}\n);"


DDL = "\n".join(
    [
        _table_ddl("calls", CALL_COLUMNS),
        _table_ddl("jobs", JOB_COLUMNS),
        "CREATE INDEX IF NOT EXISTS statek_calls_started_at ON statek_calls (started_at);",
        "CREATE INDEX IF NOT EXISTS statek_calls_job_id ON statek_calls (job_id);",
        "CREATE INDEX IF NOT EXISTS statek_jobs_ended_at ON statek_jobs (ended_at);",
    ]
)
"""The ledger's tables and indexes (idempotent)."""


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("the Postgres ledger needs psycopg 3: pip install 'statek[postgres]'") from exc
    return psycopg.connect(url, connect_timeout=3, autocommit=False)


def init_db(url: str) -> None:
    """Create the ledger's tables in the database at ``url`` (idempotent)."""
    with _connect(url) as connection:
        connection.execute(DDL)


def _insert_sql(table: str) -> str:
    columns = CALL_COLUMNS if table == "calls" else JOB_COLUMNS
    names = ", ".join(sql_column(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO statek_{table} ({names}) VALUES ({marks}) ON CONFLICT (record_id) DO NOTHING"


def _values(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    columns = CALL_COLUMNS if table == "calls" else JOB_COLUMNS
    return tuple(json.dumps(row[c], sort_keys=True) if c == "attributes" else row[c] for c in columns)


class PostgresSink:
    """Writes ledger rows to Postgres in batches, spooling them while it is unreachable."""

    name = "postgres"

    def __init__(self, url: str, *, spool: int | None = None) -> None:
        self.url = url
        self.limit = spool if spool is not None else int(os.environ.get(LEDGER_SPOOL_ENV) or 100_000)
        self.dropped = 0
        self._spool: deque[tuple[str, dict[str, Any]]] = deque()
        self._connection: Any = None
        self._down = False

    @property
    def waiting(self) -> int:
        """Rows in the spool, not yet in Postgres."""
        return len(self._spool)

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Spool ``rows`` and send everything spooled; never raises for an unreachable database."""
        spool = self._spool
        spool.extend((table, row) for row in rows)
        overflow = len(spool) - self.limit
        if overflow > 0:
            for _ in range(overflow):
                spool.popleft()
            self.dropped += overflow
            _log.error(
                "statek ledger: Postgres spool full (%d rows): %d oldest rows dropped, %d so far "
                "(counted in statek_consumer_errors_total)",
                self.limit,
                overflow,
                self.dropped,
            )
        self.send()

    def tick(self) -> None:
        """Retry the spool (called by the writer every interval, with or without new rows)."""
        if self._spool:
            self.send()

    def send(self) -> None:
        """Send the spool in transactions of up to 5000 rows, oldest first; stop at the first failure."""
        spool = self._spool
        while spool:
            batch = [spool[i] for i in range(min(5000, len(spool)))]
            try:
                self._send(batch)
            except Exception as exc:  # noqa: BLE001 - psycopg.OperationalError and friends
                self._close_connection()
                if not self._down:
                    self._down = True
                    _log.warning(
                        "statek ledger: Postgres unreachable (%s: %s); %d rows wait in the spool",
                        type(exc).__name__,
                        str(exc).strip()[:200],
                        len(spool),
                    )
                return
            for _ in batch:
                spool.popleft()
            if self._down:
                self._down = False
                _log.warning("statek ledger: Postgres is back; the spool is being sent")

    def _send(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        if self._connection is None:
            self._connection = _connect(self.url)
        connection = self._connection
        with connection.transaction(), connection.cursor() as cursor:
            for table in ("calls", "jobs"):
                values = [_values(table, row) for kind, row in batch if kind == table]
                if values:
                    cursor.executemany(_insert_sql(table), values)

    def after_fork(self, instance: str) -> None:
        """In a forked child: the parent's spool and connection stay the parent's."""
        self._spool = deque()
        self._connection = None  # the parent's socket: never used (nor closed) here
        self.dropped = 0

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001
                _log.debug("statek ledger: closing a broken Postgres connection failed", exc_info=True)

    def close(self) -> None:
        """Send what the spool holds one last time; rows still waiting are counted as dropped."""
        self.send()
        if self._spool:
            self.dropped += len(self._spool)
            _log.error(
                "statek ledger: %d rows never reached Postgres before exit (counted in statek_consumer_errors_total)",
                len(self._spool),
            )
            self._spool.clear()
        self._close_connection()


def read_calls(url: str, *, since: datetime | None = None, until: datetime | None = None) -> pl.DataFrame:
    """The ``statek_calls`` rows of a period as a DataFrame shaped like :func:`statek.ledger.scan`'s."""
    import polars as pl

    columns = list(CALL_COLUMNS)
    select = ", ".join(sql_column(c) for c in columns)
    where, params = [], []
    if since is not None:
        where.append("started_at >= %s")
        params.append(since)
    if until is not None:
        where.append("started_at < %s")
        params.append(until)
    sql = f"SELECT {select} FROM statek_calls" + (f" WHERE {' AND '.join(where)}" if where else "")
    with _connect(url) as connection:
        rows = connection.execute(sql, params).fetchall()
    schema = polars_schema("calls")
    data: dict[str, list[Any]] = {c: [] for c in schema}
    attributes: list[dict[str, str]] = []
    for row in rows:
        for column, value in zip(columns, row):
            if column == "attributes":
                attributes.append(value if isinstance(value, dict) else json.loads(value or "{}"))
            else:
                data[column].append(money(value) if column in MONEY_COLUMNS else value)
    keys = sorted({k for each in attributes for k in each})
    full: dict[str, Any] = dict(schema)
    for key in keys:
        data[ATTRIBUTE_PREFIX + key] = [each.get(key) for each in attributes]
        full[ATTRIBUTE_PREFIX + key] = pl.String
    return pl.DataFrame(data, schema=full)
