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
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, values
from prometheus_client import make_asgi_app as _make_asgi_app
from prometheus_client import make_wsgi_app as _make_wsgi_app
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.registry import Collector

from ..exceptions import ConfigurationError
from ..instruments import CATALOGUE
from .multiprocess_files import (
    FileDebut,
    SkipCounts,
    candidates,
    compact,
    directory_lock,
    merge,
    room_to_grow,
)
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
        self._offsets: dict[_SeriesKey, float] = {}
        self._fork_totals: dict[_SeriesKey, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._full: set[str] = set()
        self.refused = 0
        """New series not written because the filesystem had no room for the file to grow."""
        self._warned_full = False
        _register_fork_hooks(self)

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

    def _before_fork(self) -> None:
        """In the parent, just before a fork: the totals the child inherits (it must not count them
        again: the parent's own file has them)."""
        if self._closed or os.getpid() != self._pid:
            return
        try:
            with self._lock:
                self._fork_totals = dict(self._totals())
        except Exception:  # noqa: BLE001 - never break a fork
            self._fork_totals = None
            _log.warning("statek could not read its totals before a fork", exc_info=True)

    def _after_fork_in_child(self) -> None:
        """In a forked child (gunicorn ``--preload``, multiprocessing): start over as this process,
        with files of its own, counting only what happens from here on."""
        if self._closed:
            return
        self._lock = threading.Lock()  # the parent's may have been held by another thread
        self._pid = os.getpid()
        self._values = {}
        self._offsets = self._fork_totals or {}
        self._fork_totals = None
        self._stop = threading.Event()
        self._thread = None
        self.start()

    def _after_fork_in_parent(self) -> None:
        self._fork_totals = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Write this process's current totals to its files (serialised: a total never goes back).
        Does nothing after :meth:`shutdown`."""
        if self._closed or os.getpid() != self._pid:
            return  # a fork the hooks did not see (os.fork without them cannot happen in CPython)
        try:
            with self._lock:
                self._full = set()  # kinds found full in this write: not asked again until the next
                for (kind, name, sample, labels, documentation), total in self._samples():
                    self._set(kind, name, sample, labels, documentation, total)
                self._set("counter", *_REFUSED, {}, _REFUSED_HELP, self.refused)
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

    def _samples(self) -> Iterator[tuple[tuple[str, str, str, dict[str, str], str], float]]:
        """Every file sample of this process's families with its total: counters as they are,
        histogram buckets one by one (the exposition's are cumulative over ``le``; the files hold each
        bucket on its own, as prometheus_client's ``observe`` writes it, and the collector adds them up
        and derives ``_count``), and histogram sums."""
        for family in self._families.collect():
            if family.type == "counter":
                for sample in family.samples:
                    yield (
                        ("counter", family.name, sample.name, sample.labels, family.documentation),
                        sample.value,
                    )
            elif family.type == "histogram":
                below: dict[tuple[tuple[str, str], ...], float] = {}
                for sample in family.samples:  # samples of one series come in ascending ``le`` order
                    where = ("histogram", family.name, sample.name, sample.labels, family.documentation)
                    if sample.name.endswith("_bucket"):
                        series = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                        previous = below.get(series, 0.0)
                        below[series] = sample.value
                        yield where, sample.value - previous
                    elif sample.name.endswith("_sum"):
                        yield where, sample.value

    def _totals(self) -> Iterator[tuple[_SeriesKey, float]]:
        for (kind, name, sample, labels, _), total in self._samples():
            yield (kind, name, sample, tuple(sorted(labels.items()))), total

    def _set(
        self, kind: str, family: str, sample: str, labels: dict[str, str], documentation: str, total: float
    ) -> None:
        key = (kind, family, sample, tuple(sorted(labels.items())))
        total -= self._offsets.get(key, 0.0)  # counted before a fork: in the parent's file
        written = self._values.get(key)
        if written is None:
            if not total and key in self._offsets:
                return  # nothing of this process's own yet
            if not self._room(kind):
                return
            names = sorted(labels)
            value = _value_class()(kind, family, sample, names, [labels[n] for n in names], documentation)
            # A file left by an earlier process with this pid already holds a total: keep it (base).
            written = self._values[key] = _Written(value)
            _back_file(kind)
        if written.total != total:
            written.value.set(written.base + total)
            written.total = total

    def _room(self, kind: str) -> bool:
        """Whether a new series may be added to this process's ``kind`` file: adding one can grow
        the mmap'ed file, and a page of it the filesystem cannot back kills the process (SIGBUS)."""
        if kind not in self._full:
            directory = multiprocess_directory()
            if directory is None or room_to_grow(str(directory / f"{kind}_{os.getpid()}.db"), 0):
                return True
            self._full.add(kind)
        self.refused += 1
        if not self._warned_full:
            self._warned_full = True
            _log.error(
                "statek: the filesystem of %s is (nearly) full; new metric series of this process are "
                "not written to the multiprocess files (counted in "
                "statek_multiprocess_refused_series_total); existing series keep being updated. Free space or move %s.",
                multiprocess_directory(),
                ENV,
            )
        return False


_REFUSED = ("statek_multiprocess_refused_series", "statek_multiprocess_refused_series_total")
_REFUSED_HELP = (
    "New series a worker could not add to its multiprocess files: the filesystem was (nearly) full"
)


def _register_fork_hooks(mirror: MultiprocessMirror) -> None:
    reference = weakref.ref(mirror)

    def call(method: str) -> Callable[[], None]:
        def hook() -> None:
            target = reference()
            if target is not None:
                getattr(target, method)()

        return hook

    os.register_at_fork(
        before=call("_before_fork"),
        after_in_parent=call("_after_fork_in_parent"),
        after_in_child=call("_after_fork_in_child"),
    )


def _back_file(kind: str) -> None:
    """Give this process's ``kind`` file real blocks for all its bytes (``posix_fallocate``): a file
    grown by ``truncate`` is sparse, and the first write to an unbacked page on a full filesystem
    is a SIGBUS, not an error. Where the filesystem cannot preallocate, :meth:`MultiprocessMirror._room`
    is the only guard."""
    directory = multiprocess_directory()
    if directory is None:
        return
    path = directory / f"{kind}_{os.getpid()}.db"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError:
        pass  # ENOSPC (the room check keeps a margin) or no preallocation on this filesystem
    finally:
        os.close(fd)


class StatekMultiProcessCollector(Collector):
    """The sum of every process's files in ``path`` (default ``PROMETHEUS_MULTIPROC_DIR``, read at each
    scrape; when it is unset, prometheus_client's default registry: one process's ``/metrics``), as
    ``prometheus_client``'s :class:`MultiProcessCollector` serves it, but without the files it could
    not read or that are not a worker's (:mod:`statek.exporters.multiprocess_files`: skipped, logged,
    counted in ``statek_multiprocess_skipped_files_total``), each statek family's OpenMetrics unit
    restored, after ``before`` (e.g. the serving worker's :meth:`MultiprocessMirror.flush`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, before: Callable[[], None] | None = None):
        self._path = Path(path) if path is not None else None
        self._before = before
        self._warned_unset = False

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        directory = self._path or multiprocess_directory()  # read at each scrape: imports never need it
        if directory is None:  # one process: serve prometheus_client's default registry (statek's there)
            if not self._warned_unset:
                self._warned_unset = True
                _log.info("statek: %s is not set; /metrics serves this process's metrics only", ENV)
            yield from REGISTRY.collect()
            return
        if self._before is not None:
            self._before()
        skipped = _skip_counts(directory)
        with directory_lock(directory, shared=True):  # a compaction is never seen half-done
            families = merge(candidates(directory, skipped), skipped)
        families = _debuts(directory).apply(families)
        for family in families:
            unit = _UNITS.get(family.name)
            if unit:
                family.unit = unit
            yield family
        family = CounterMetricFamily(
            "statek_multiprocess_skipped_files",
            "Files of the multiprocess directory a scrape left out (not a worker's, unreadable), by reason",
            labels=["reason"],
        )
        for reason, count in sorted(skipped.by_reason.items()):
            family.add_metric([reason], count)
        yield family


_debut_by_directory: dict[str, FileDebut] = {}


def _debuts(directory: Path) -> FileDebut:
    """The process's view of which series of ``directory`` any scrape has shown (see :class:`FileDebut`)."""
    key = os.path.realpath(directory)
    with _skipped_lock:
        debut = _debut_by_directory.get(key)
        if debut is None:
            debut = _debut_by_directory[key] = FileDebut(directory)
        return debut


_skipped_by_directory: dict[str, SkipCounts] = {}
_skipped_lock = threading.Lock()


def _skip_counts(directory: Path) -> SkipCounts:
    """The process's skip counts for ``directory`` (shared by every registry serving it, so each
    reason is logged once per process and the counter never goes back)."""
    key = os.path.realpath(directory)
    with _skipped_lock:
        counts = _skipped_by_directory.get(key)
        if counts is None:
            counts = _skipped_by_directory[key] = SkipCounts()
        return counts


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
    """Gunicorn ``child_exit`` hook: a dead worker's live gauges leave the exposition, and its counter
    and histogram files are added into the directory's archive files and deleted (their totals stay
    served; 2,000 restarts leave two files, not 4,000). Import it into ``gunicorn.conf.py`` under
    this name."""
    mark_process_dead(worker.pid)
    directory = multiprocess_directory()
    if directory is not None:
        try:
            compact(directory, [worker.pid])
        except Exception:  # noqa: BLE001 - never break the master; scrapes still count the files
            _log.exception("statek could not compact worker %s's metric files", worker.pid)
