"""The ledger directory: Parquet files written by polars, one set per process, no locks.

Layout: ``DIR/calls/*.parquet`` and ``DIR/jobs/*.parquet``. A file is named
``{utc time}-{instance}-{sequence}.parquet``, so processes sharing ``DIR`` never write the same
name. It is written as a hidden temporary file in the same folder and renamed into place
(``os.replace``, atomic on one file system): a reader never sees half a file, and a process killed
while writing leaves at most a hidden ``.tmp`` file that no reader looks at.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from .schema import TABLES, to_frame

__all__ = ["ParquetSink", "table_files", "write_frame"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def table_files(directory: str | os.PathLike[str], table: str) -> list[Path]:
    """The visible Parquet files of ``table`` in a ledger directory, sorted by name."""
    folder = Path(directory) / table
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def write_frame(frame: Any, folder: Path, name: str) -> Path:
    """Write ``frame`` as ``folder/name`` through a hidden temporary file and an atomic rename."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    temporary = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        frame.write_parquet(temporary, compression="zstd", statistics=True)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


class ParquetSink:
    """Writes batches of ledger rows into ``directory`` as new Parquet files (see the module doc)."""

    name = "parquet"

    def __init__(self, directory: str | os.PathLike[str], instance: str) -> None:
        self.directory = Path(directory)
        self._prefix = _UNSAFE.sub("_", instance)[:80] or "process"
        self._sequence = itertools.count()

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` of ``table`` as one new file; raises ``OSError`` when the disk refuses."""
        if table not in TABLES:
            raise ValueError(f"unknown ledger table {table!r}")
        if not rows:
            return
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{self._prefix}-{next(self._sequence):06d}.parquet"
        write_frame(to_frame(table, rows), self.directory / table, name)

    def after_fork(self, instance: str) -> None:
        """In a forked child: file names of its own."""
        self._prefix = _UNSAFE.sub("_", instance)[:80] or "process"
        self._sequence = itertools.count()

    def close(self) -> None:
        """Nothing to release: every batch is a closed file."""
