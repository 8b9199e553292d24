"""The ledger's writer: records handed off by the calling thread, turned into rows and written by
one background thread.

The calling thread only appends ``(table, record)`` to a deque (a few hundred nanoseconds; see
``benchmarks/ledger.py``). The writer thread wakes every ``interval`` seconds (1 s by default), turns
what accumulated into rows (:mod:`.rows`) and hands one batch per table to each sink. So a process
killed with SIGKILL loses at most the records of its last interval. :meth:`LedgerWriter.close` (called
by ``statek.shutdown()`` and at interpreter exit) writes what is left.

A sink that fails (a full or read-only disk, a database that is down and whose spool is full) never
raises into the application: the writer logs the first failure of each sink (then every hundredth)
and counts the records lost in :attr:`LedgerWriter.dropped` and in the metric
``statek.consumer.errors{statek.consumer="ledger"}`` (Prometheus ``statek_consumer_errors_total``), as
every consumer of the metering path counts what it failed to record.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import Counter, deque
from typing import Any, Protocol

from ..telemetry.metrics import count_consumer_error
from .rows import ServiceIdentity, call_facts, call_row, fresh_instance, job_row

__all__ = ["LedgerSink", "LedgerWriter"]

_log = logging.getLogger("statek.ledger")


class LedgerSink(Protocol):
    """Where rows go: a ledger directory, Postgres, OTLP log records."""

    name: str

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Store ``rows`` of ``table`` (``calls`` or ``jobs``) or raise; called on the writer thread."""

    def close(self) -> None:
        """Release resources; called once, after the last :meth:`write`."""


class LedgerWriter:
    """A queue and a thread between the metering path and the ledger's sinks."""

    def __init__(self, sinks: list[LedgerSink], service: ServiceIdentity, *, interval: float = 1.0) -> None:
        self.sinks = list(sinks)
        self.service = service
        self.interval = interval
        self.written: Counter[str] = Counter()
        """Rows stored, by sink name."""
        self.dropped: Counter[str] = Counter()
        """Rows lost, by sink name (the sink failed; see the log)."""
        self._queue: deque[tuple[str, Any]] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._flush_lock = threading.Lock()
        self._failures: Counter[str] = Counter()
        self._sink_lost: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="statek-ledger", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(reference))

    def _after_fork(self) -> None:
        """In a forked child (a pre-forking server's worker): the parent's queued records are the
        parent's to write; the child gets its own identity, files, connections and writer thread."""
        self._queue = deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self.service = ServiceIdentity(self.service.name, fresh_instance())
        for sink in self.sinks:
            after_fork = getattr(sink, "after_fork", None)
            if after_fork is not None:
                after_fork(self.service.instance)
        if not self._closed:
            self._thread = threading.Thread(target=self._run, name="statek-ledger", daemon=True)
            self._thread.start()

    def add_call(self, record: Any) -> None:
        """Hand off a finished call record (cheap: its :class:`~statek.ledger.rows.CallFacts` are
        taken and queued; the row is made on the writer thread)."""
        self._queue.append(("calls", call_facts(record)))

    def add_job(self, record: Any) -> None:
        """Hand off a finished job record."""
        self._queue.append(("jobs", record))

    def flush(self) -> None:
        """Write everything handed off so far, now, on this thread."""
        with self._flush_lock:
            self._drain()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is left; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self.flush()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - closing never raises into the application
                _log.exception("statek ledger: could not close the %s sink", sink.name)
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            if self._closed:
                return
            with self._flush_lock:
                self._drain()

    def _drain(self) -> None:
        queue = self._queue
        batches: dict[str, list[dict[str, Any]]] = {"calls": [], "jobs": []}
        service = self.service
        while queue:
            table, record = queue.popleft()
            try:
                row = call_row(record, service) if table == "calls" else job_row(record, service)
            except Exception:  # noqa: BLE001
                self._failed("rows", 1, "could not make a ledger row")
                continue
            batches[table].append(row)
        for table, rows in batches.items():
            if not rows:
                continue
            for sink in self.sinks:
                try:
                    sink.write(table, rows)
                except Exception as exc:  # noqa: BLE001 - a sink's failure never reaches the app
                    self._failed(sink.name, len(rows), f"{type(exc).__name__}: {exc}")
                else:
                    self.written[sink.name] += len(rows)
        for sink in self.sinks:
            lost = int(getattr(sink, "dropped", 0))
            if lost > self._sink_lost[sink.name]:  # a sink's own losses (a Postgres spool overflow)
                _count_lost(lost - self._sink_lost[sink.name])
                self._sink_lost[sink.name] = lost
            tick = getattr(sink, "tick", None)
            if tick is not None:
                try:
                    tick()
                except Exception:  # noqa: BLE001
                    _log.exception("statek ledger: the %s sink failed to retry", sink.name)

    def dropped_total(self) -> int:
        """Rows lost so far, all sinks (the writer's count and the sinks' own, e.g. a full spool)."""
        return sum(self.dropped.values()) + sum(int(getattr(s, "dropped", 0)) for s in self.sinks)

    def _failed(self, sink: str, count: int, reason: str) -> None:
        self.dropped[sink] += count
        _count_lost(count)
        failures = self._failures[sink]
        self._failures[sink] += 1
        if failures % 100 == 0:
            _log.error(
                "statek ledger: %d record(s) lost by the %s sink (%s); %d lost so far "
                '(counted in statek_consumer_errors_total{statek_consumer="ledger"})',
                count,
                sink,
                reason,
                self.dropped[sink],
            )


def _restart_in_child(reference: weakref.ref[LedgerWriter]) -> None:
    writer = reference()
    if writer is not None:
        writer._after_fork()


def _count_lost(count: int) -> None:
    for _ in range(count):
        count_consumer_error("ledger")
