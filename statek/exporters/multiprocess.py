"""Several worker processes on one machine, one exact ``/metrics``: ``prometheus_client``'s multiprocess mode.

With ``PROMETHEUS_MULTIPROC_DIR`` set (to an empty directory, before the workers start),
:func:`statek.instrument` in each worker starts a :class:`MultiprocessMirror`: every ``interval``
seconds, and at shutdown, it reads the worker's cumulative statek metrics through the ordinary
reading path (the Prometheus reader of the worker's ``MeterProvider``, the same families a
single-process ``/metrics`` serves) and writes them into the worker's own ``prometheus_client``
multiprocess files (``counter_<pid>.db``, ``histogram_<pid>.db``). Any process then serves the sum
of all the files: :func:`make_asgi_app` / :func:`make_wsgi_app` mounted in the application, or
:func:`start_http_server` in the gunicorn master. Series names and labels are those of one process.

Exactness: a file holds the worker's running totals (set, not incremented, under one lock, so a
newer total is never overwritten by an older one), and ``prometheus_client`` sums counter and
histogram files of dead processes too. So what a worker wrote survives its death, and a restarted
worker writes to a new file of its own. What a worker counted after its last write is lost only if
it is killed without a shutdown (SIGKILL, OOM): at most ``interval`` seconds of its calls. A graceful
stop writes the final totals: ``statek.shutdown()``, or the interpreter's exit (an ``atexit`` hook).

Gunicorn set-up (``gunicorn.conf.py``; see ``docs/production.md``)::

    from statek.exporters.multiprocess import child_exit, prepare_directory  # noqa: F401 (hooks)

    def on_starting(server):
        prepare_directory()

The directory is fixed per process: prometheus_client opens a process's files where the variable
pointed at its first write. Not carried over: exemplars (multiprocess files hold none) and
``target_info`` (one per process). Only counters and histograms are mirrored; statek records no gauges.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, values
from prometheus_client import make_asgi_app as _make_asgi_app
from prometheus_client import make_wsgi_app as _make_wsgi_app
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from ..exceptions import ConfigurationError
from ..instruments import CATALOGUE
from .prometheus import OTelCollector, PullMetricReader

__all__ = [
    "DEFAULT_INTERVAL",
    "ENV",
    "MultiprocessMirror",
    "StatekMultiProcessCollector",
    "child_exit",
    "make_asgi_app",
    "make_wsgi_app",
    "multiprocess_directory",
    "prepare_directory",
    "registry",
    "start_http_server",
]

_log = logging.getLogger("statek.telemetry")

ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The variable ``prometheus_client`` (and statek) read for the directory of the per-process files."""

DEFAULT_INTERVAL = 1.0
"""Seconds between two writes of a worker's totals: the most a SIGKILLed worker can lose."""

_UNITS = {spec.prometheus_name: spec.prometheus_unit for spec in CATALOGUE}


def multiprocess_directory() -> Path | None:
    """``PROMETHEUS_MULTIPROC_DIR`` as a path, ``None`` when unset; raises when it is not a directory."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_dir():
        raise ConfigurationError(
            f"{ENV}={raw!r} is not a directory: create it (empty) before the workers start, or unset it"
        )
    return path


def prepare_directory(path: str | os.PathLike[str] | None = None) -> Path:
    """Create ``path`` (default ``PROMETHEUS_MULTIPROC_DIR``) if needed and delete the ``*.db`` files
    an earlier run left in it (only those: a misconfigured path loses nothing else).

    Call it once, before any worker starts (gunicorn's ``on_starting`` hook); never while workers run.
    """
    raw = path if path is not None else os.environ.get(ENV)
    if not raw:
        raise ConfigurationError(f"no directory for multiprocess metrics: set {ENV} or pass a path")
    directory = Path(raw)
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()
    return directory


class _Value(Protocol):
    def set(self, value: float, timestamp: float | None = None) -> None: ...
    def get(self) -> float: ...


_private_value_class: Any = None
_private_lock = threading.Lock()


def _value_class() -> Callable[..., _Value]:
    """The mmap-backed value class to write with.

    ``prometheus_client`` picks its own value class when it is imported: when ``PROMETHEUS_MULTIPROC_DIR``
    was already set, that is the multiprocess one, and statek must share it (two writers on one
    ``counter_<pid>.db`` would corrupt it). When the variable was set later, prometheus_client's own
    metrics in this process stay in-memory and statek writes through a class of its own.
    """
    global _private_value_class
    shared = values.ValueClass
    if getattr(shared, "_multiprocess", False):
        return shared  # type: ignore[no-any-return]
    with _private_lock:
        if _private_value_class is None:
            _private_value_class = values.MultiProcessValue()
        return _private_value_class  # type: ignore[no-any-return]


_SeriesKey = tuple[str, str, str, tuple[tuple[str, str], ...]]


class _Written:
    """One sample's file value: ``base`` (what the file held when this process opened it) plus the
    process's ``total`` as last written."""

    __slots__ = ("base", "total", "value")

    def __init__(self, value: _Value) -> None:
        self.value = value
        self.base = value.get()
        self.total: float | None = None


_running: MultiprocessMirror | None = None
"""The mirror this process started last (the instrumented worker's), until it shuts down."""


class MultiprocessMirror:
    """Writes one process's cumulative statek metrics into its ``prometheus_client`` multiprocess files.

    ``reader`` is the process's Prometheus reader (``Instrumentation.prometheus.reader``). :meth:`start`
    writes every ``interval`` seconds from a daemon thread; :meth:`flush` writes now (the mounted
    ``/metrics`` calls it so the serving worker is current); :meth:`shutdown` stops the thread after a
    last write, and so does the interpreter's exit when nothing called it. Telemetry never breaks the application: a failed write is logged and retried next time.

    A mirror belongs to the process that created it: after a ``fork`` the child's copy writes
    nothing (it would count the parent's totals twice) and logs why once; call
    :func:`statek.instrument` in each worker instead (no ``--preload`` of an instrumented app).
    """

    def __init__(self, reader: PullMetricReader, *, interval: float = DEFAULT_INTERVAL) -> None:
        if interval <= 0:
            raise ConfigurationError(f"the multiprocess write interval must be > 0 seconds, not {interval!r}")
        if multiprocess_directory() is None:
            raise ConfigurationError(f"multiprocess metrics need {ENV} set to an existing directory")
        self.interval = interval
        self._families = OTelCollector(reader, target_info=False, debut=False)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._values: dict[_SeriesKey, _Written] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_fork = False
        self._closed = False

    def start(self) -> None:
        """Start the periodic writes (once), and write once more when the interpreter exits. The
        started mirror is this process's: a mounted ``/metrics`` (:func:`registry`) flushes it."""
        global _running
        if self._thread is None and not self._closed:
            _running = self
            self._thread = threading.Thread(target=self._run, name="statek-multiprocess", daemon=True)
            self._thread.start()
            # Registered after the MeterProvider's own exit hook, so it runs first (atexit is LIFO).
            atexit.register(self.shutdown)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Write this process's current totals to its files (serialised: a total never goes back).
        Does nothing after :meth:`shutdown`."""
        if self._closed:
            return
        if os.getpid() != self._pid:
            if not self._warned_fork:
                self._warned_fork = True
                _log.warning(
                    "statek was instrumented before this process was forked; its metrics are not "
                    "written from here: call statek.instrument() in each worker"
                )
            return
        try:
            with self._lock:
                for family in self._families.collect():
                    if family.type == "counter":
                        self._write_counter(family)
                    elif family.type == "histogram":
                        self._write_histogram(family)
        except Exception:  # noqa: BLE001 - telemetry never breaks the application
            _log.exception("statek could not write its multiprocess metrics; retrying at the next write")

    def shutdown(self) -> None:
        """Stop the periodic writes after one last write. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()
        self._closed = True
        atexit.unregister(self.shutdown)
        global _running
        if _running is self:
            _running = None

    def _write_counter(self, family: Metric) -> None:
        for sample in family.samples:
            self._set("counter", family, sample.name, sample.labels, sample.value)

    def _write_histogram(self, family: Metric) -> None:
        # The exposition's buckets are cumulative over ``le``; the files hold each bucket on its own
        # (prometheus_client's Histogram.observe writes one bucket) and the collector adds them up and
        # derives ``_count``. Samples of one series come in ascending ``le`` order.
        below: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                series = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                previous = below.get(series, 0.0)
                below[series] = sample.value
                self._set("histogram", family, sample.name, sample.labels, sample.value - previous)
            elif sample.name.endswith("_sum"):
                self._set("histogram", family, sample.name, sample.labels, sample.value)

    def _set(self, kind: str, family: Metric, sample: str, labels: dict[str, str], total: float) -> None:
        key = (kind, family.name, sample, tuple(sorted(labels.items())))
        written = self._values.get(key)
        if written is None:
            names = sorted(labels)
            value = _value_class()(
                kind, family.name, sample, names, [labels[n] for n in names], family.documentation
            )
            # A file left by an earlier process with this pid already holds a total: keep it (base).
            written = self._values[key] = _Written(value)
        if written.total != total:
            written.value.set(written.base + total)
            written.total = total


class StatekMultiProcessCollector(Collector):
    """``prometheus_client``'s :class:`MultiProcessCollector` over ``path`` (default
    ``PROMETHEUS_MULTIPROC_DIR``), with each statek family's OpenMetrics unit restored, after
    ``before`` (e.g. the serving worker's :meth:`MultiprocessMirror.flush`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, before: Callable[[], None] | None = None):
        directory = Path(path) if path is not None else multiprocess_directory()
        if directory is None:
            raise ConfigurationError(f"multiprocess metrics need {ENV} set to an existing directory")
        self._inner = MultiProcessCollector(None, path=str(directory))
        self._before = before

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if self._before is not None:
            self._before()
        for family in self._inner.collect():
            unit = _UNITS.get(family.name)
            if unit:
                family.unit = unit
            yield family


def registry(path: str | os.PathLike[str] | None = None) -> CollectorRegistry:
    """A fresh registry serving the sum of every process's files; in an instrumented worker it first
    writes that worker's own totals."""

    def flush_own() -> None:
        mirror = _running
        if mirror is not None:
            mirror.flush()

    served = CollectorRegistry(auto_describe=False)
    served.register(StatekMultiProcessCollector(path, before=flush_own))
    return served


def make_asgi_app(path: str | os.PathLike[str] | None = None) -> Callable[..., Any]:
    """An ASGI ``/metrics`` application for all workers (mount it in the app, e.g. Starlette's
    ``Mount("/metrics", app=make_asgi_app())``)."""
    return _make_asgi_app(registry(path))


def make_wsgi_app(path: str | os.PathLike[str] | None = None) -> Callable[..., Iterable[bytes]]:
    """A WSGI ``/metrics`` application for all workers."""
    return _make_wsgi_app(registry(path))


def start_http_server(port: int, addr: str = "127.0.0.1", path: str | os.PathLike[str] | None = None) -> int:
    """Serve ``/metrics`` for all workers on ``addr:port`` from a daemon thread (e.g. in the gunicorn
    master's ``when_ready`` hook); returns the bound port (``0`` picks a free one)."""
    server, _ = _start_http_server(port, addr=addr, registry=registry(path))
    return int(server.server_port)


def child_exit(server: Any, worker: Any) -> None:
    """Gunicorn ``child_exit`` hook: a dead worker's live gauges leave the exposition; its counters and
    histograms stay (they are totals). Import it into ``gunicorn.conf.py`` under this name."""
    mark_process_dead(worker.pid)
