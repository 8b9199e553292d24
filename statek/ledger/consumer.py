"""The ledger as a consumer of the metering path: every finished call and job record is handed to a
:class:`~statek.ledger.writer.LedgerWriter`.

On the calling thread it does one thing, an append to the writer's queue (see
``benchmarks/ledger.py``): the row is made, encoded and written on the writer's thread. It knows
the record, not the other consumers (span, metrics, job usage, budget).
"""

from __future__ import annotations

import threading
from typing import Any

from ..call_record import (
    CallRecord,
    JobRecord,
    add_call_consumer,
    add_job_consumer,
    remove_call_consumer,
    remove_job_consumer,
)
from .writer import LedgerWriter

__all__ = ["LedgerConsumer", "attach", "detach"]


class LedgerConsumer:
    """A ``CallConsumer`` and ``JobConsumer`` that hands finished records to a writer."""

    __slots__ = ("_add_call", "_add_job", "writer")

    name = "ledger"

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer
        self._add_call = writer.add_call
        self._add_job = writer.add_job

    def start(self, record: CallRecord) -> None:
        """Nothing to do before the call is sent."""

    def finish(self, record: CallRecord) -> None:
        """Queue the finished call's record (ok, error or refused)."""
        self._add_call(record)

    def job_started(self, job: Any) -> None:
        """Nothing to do when a job starts."""

    def job_finished(self, record: JobRecord) -> None:
        """Queue the finished job's record."""
        self._add_job(record)


_lock = threading.Lock()
_attached: dict[int, LedgerConsumer] = {}


def attach(writer: LedgerWriter) -> LedgerConsumer:
    """Register a consumer feeding ``writer`` with the metering path (calls and jobs)."""
    consumer = LedgerConsumer(writer)
    with _lock:
        _attached[id(writer)] = consumer
    add_call_consumer(consumer)
    add_job_consumer(consumer)
    return consumer


def detach(writer: LedgerWriter) -> None:
    """Stop feeding ``writer`` (idempotent)."""
    with _lock:
        consumer = _attached.pop(id(writer), None)
    if consumer is not None:
        remove_call_consumer(consumer)
        remove_job_consumer(consumer)
