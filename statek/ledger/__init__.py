"""The usage ledger: one durable record per call and per job, for "who spent what".

Records go, off the calling thread, to a ledger directory of Parquet files (``STATEK_LEDGER_DIR`` or
``statek.instrument(ledger=DIR)``), to Postgres (``STATEK_LEDGER_URL``) and as OTLP log records;
:func:`scan` reads a directory back as a ``polars.LazyFrame`` and ``statek usage report`` sums it.
See ``docs/ledger.md`` for the schema and the guarantees. polars is imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .rows import CALL_COLUMNS, JOB_COLUMNS, call_row, job_row

if TYPE_CHECKING:
    import polars as pl

__all__ = ["CALL_COLUMNS", "JOB_COLUMNS", "call_row", "job_row", "scan"]


def scan(directory: Any, table: str = "calls") -> pl.LazyFrame:
    """A ledger directory's ``calls`` (or ``jobs``) as one ``polars.LazyFrame``; see :func:`.query.scan`."""
    from .query import scan as _scan

    return _scan(directory, table)
