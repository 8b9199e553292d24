"""Which ``*.db`` files of a ``PROMETHEUS_MULTIPROC_DIR`` a scrape can trust, and reading them so
that one bad file never fails or hangs the scrape.

``prometheus_client`` sums every ``*.db`` file of the directory and fails the whole scrape on the
first one it cannot parse (garbage, empty, truncated), and ``open()`` blocks forever on a FIFO. So
before ``prometheus_client`` reads anything, :func:`candidates` drops, by their directory entry
alone (``lstat``: nothing is opened):

- names that are not ``prometheus_client``'s (``counter_<pid>.db``, ``histogram_<pid>.db``,
  ``summary_<pid>.db``, ``gauge_<mode>_<pid>.db``) - ``foreign``;
- symbolic links (a link can point anywhere, a FIFO or a device included) - ``symlink``;
- anything but a regular file (FIFO, socket, directory, device) - ``not_a_file``;
- files of another user (a shared directory must not let one user inject another's numbers) -
  ``other_owner``;
- files too short to hold the header (empty, truncated at birth) - ``empty``; larger than
  :data:`MAX_FILE_BYTES` - ``too_large``.

Then :func:`merge` reads the rest in one ``prometheus_client`` merge; only when that fails does it
read each file alone to find the ones that cannot be parsed (``corrupt``), and merges without
them. Each skipped file is counted by reason (:class:`SkipCounts`, exported by the serving
collector as ``statek_multiprocess_skipped_files_total``) and logged the first time its
reason is seen.

Not covered: a file swapped for a FIFO between the ``lstat`` and ``prometheus_client``'s ``open``
(the window is one directory scan); a well-formed file holding wrong numbers cannot be told from
a right one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "ARCHIVE_PID",
    "FileDebut",
    "MAX_FILE_BYTES",
    "SkipCounts",
    "candidates",
    "compact",
    "dead_pids",
    "directory_bytes_free",
    "directory_lock",
    "merge",
    "room_to_grow",
]

_log = logging.getLogger("statek.telemetry")

NAME = re.compile(r"^(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")
"""The names ``prometheus_client`` gives its files (``<type>_<pid>.db``, gauges with their mode)."""
HEADER_BYTES = 8
MAX_FILE_BYTES = 1 << 30
"""Larger files are skipped (a worker's file holds a few MB; reading a huge one would stall the scrape)."""


class SkipCounts:
    """Skipped files by reason, cumulative for the process; each reason logged once. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_reason: dict[str, int] = {}
        self.corrupt: dict[str, tuple[int, int]] = {}
        """Files found corrupt, with their (mtime ns, size) then: skipped unread while unchanged."""

    def skip(self, path: str, reason: str, detail: str = "") -> None:
        with self._lock:
            first = reason not in self.by_reason
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if first:
            _log.warning(
                "statek: skipping %s in the multiprocess directory (%s%s); its numbers are left out of "
                "/metrics. Later files skipped for this reason are counted in "
                "statek_multiprocess_skipped_files_total, not logged. Keep only the workers' own files "
                "in PROMETHEUS_MULTIPROC_DIR.",
                os.path.basename(path),
                reason,
                f": {detail}" if detail else "",
            )


def candidates(directory: str | os.PathLike[str], skipped: SkipCounts) -> list[str]:
    """The ``*.db`` files of ``directory`` worth reading (see the module docstring), sorted."""
    out: list[str] = []
    uid = os.geteuid()
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        skipped.skip(str(directory), "unreadable_directory", exc.strerror or type(exc).__name__)
        return out
    for entry in entries:
        name = entry.name
        if not name.endswith(".db"):
            continue
        reason = None
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:  # gone since the scan (a compaction, a dead worker's cleanup)
            continue
        if not NAME.match(name):
            reason = "foreign"
        elif stat.S_ISLNK(info.st_mode):
            reason = "symlink"
        elif not stat.S_ISREG(info.st_mode):
            reason = "not_a_file"
        elif info.st_uid != uid:
            reason = "other_owner"
        elif info.st_size < HEADER_BYTES:
            reason = "empty"
        elif info.st_size > MAX_FILE_BYTES:
            reason = "too_large"
        elif skipped.corrupt.get(entry.path) == (info.st_mtime_ns, info.st_size):
            reason = "corrupt"
        if reason is None:
            out.append(entry.path)
        else:
            skipped.skip(entry.path, reason)
    out.sort()
    return out


def merge(files: Iterable[str], skipped: SkipCounts) -> list[Any]:
    """``prometheus_client``'s merge of ``files`` (accumulated, as a scrape serves it), leaving out
    the files it cannot parse."""
    files = list(files)
    try:
        return list(MultiProcessCollector.merge(files, accumulate=True))
    except Exception:  # noqa: BLE001 - a corrupt file, or one gone mid-read: find which, below
        _log.debug("statek: reading the multiprocess files one by one", exc_info=True)
    good = []
    for path in files:
        try:
            MultiProcessCollector.merge([path], accumulate=True)
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - whatever prometheus_client raises on garbage
            skipped.skip(path, "corrupt", f"{type(exc).__module__}.{type(exc).__qualname__}")
            try:
                info = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            if len(skipped.corrupt) < 10_000:  # bounded: a directory of garbage must not grow memory
                skipped.corrupt[path] = (info.st_mtime_ns, info.st_size)
            continue
        good.append(path)
    try:
        return list(MultiProcessCollector.merge(good, accumulate=True))
    except Exception:  # noqa: BLE001 - a file changed between the two reads: serve nothing this time
        _log.warning("statek: the multiprocess files changed during the scrape; retry", exc_info=True)
        return []


def directory_bytes_free(directory: str | os.PathLike[str]) -> int:
    """Bytes an unprivileged process may still write on ``directory``'s filesystem."""
    info = os.statvfs(Path(directory))
    return info.f_bavail * info.f_frsize


LOCK_NAME = ".statek.lock"
"""The lock file in the directory: scrapes hold it shared, a compaction exclusive."""


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike[str], *, shared: bool) -> Iterator[None]:
    """``flock`` on the directory's lock file (shared or exclusive) for the ``with`` block. Without a
    writable directory (read-only mount) there is nothing to compact, so nothing is locked."""
    try:
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


ARCHIVE_PID = 0
"""The pid in the names of the compacted files (``counter_0.db``, ``histogram_0.db``): no process has it."""
COMPACTED_KINDS = ("counter", "histogram")
"""Totals that outlive their process; gauges and summaries are left to ``mark_process_dead``."""


def compact(directory: str | os.PathLike[str], pids: Iterable[int]) -> int:
    """Add the counter and histogram files of the dead processes ``pids`` into the directory's
    archive files (``counter_0.db``, ``histogram_0.db``) and delete them; returns how many files were
    compacted. Served sums do not change: scrapes wait while a compaction runs (:func:`directory_lock`).

    Call it only for processes that are dead and reaped (gunicorn's ``child_exit``), from one process
    at a time. A file that cannot be read is left where it is (scrapes skip it); when the filesystem
    has no room for the archive to grow, nothing is compacted (logged)."""
    compacted = 0
    with directory_lock(directory, shared=False):
        for pid in pids:
            if pid == ARCHIVE_PID:
                continue
            for kind in COMPACTED_KINDS:
                dead = os.path.join(directory, f"{kind}_{pid}.db")
                try:
                    info = os.stat(dead, follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                try:
                    entries = [(e[0], e[1]) for e in MmapedDict.read_all_values_from_file(dead)]
                except Exception:  # noqa: BLE001 - garbage: scrapes skip it; it is not ours to fix
                    _log.warning("statek: %s cannot be read; not compacted", dead, exc_info=True)
                    continue
                archive_path = os.path.join(directory, f"{kind}_{ARCHIVE_PID}.db")
                if not room_to_grow(archive_path, info.st_size):
                    _log.warning(
                        "statek: no room on the multiprocess directory's filesystem to compact %s; "
                        "dead workers' files stay (scrapes still count them)",
                        dead,
                    )
                    return compacted
                archive = MmapedDict(archive_path)
                try:
                    for key, value in entries:
                        archive.write_value(key, _number(archive.read_value(key)) + value, 0.0)
                finally:
                    archive.close()
                os.unlink(dead)
                compacted += 1
    return compacted


def room_to_grow(path: str, adding: int) -> bool:
    """Whether ``path`` (a ``prometheus_client`` mmap file, which doubles when full) can take
    ``adding`` more bytes without the filesystem running out while it is mapped (a SIGBUS)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = 0
    growth = max(size, INITIAL_FILE_BYTES, adding * 2)
    return directory_bytes_free(os.path.dirname(path) or ".") >= growth + SPACE_MARGIN_BYTES


INITIAL_FILE_BYTES = 1 << 20
"""prometheus_client's first size of a file (``_INITIAL_MMAP_SIZE``, 1 MiB)."""
SPACE_MARGIN_BYTES = 1 << 20
"""Kept free beyond a file's next growth before statek lets it grow."""


def _number(read: Any) -> float:
    """``MmapedDict.read_value``: ``(value, timestamp)`` in current prometheus_client, a float before."""
    return float(read[0] if isinstance(read, tuple) else read)


def dead_pids(directory: str | os.PathLike[str]) -> list[int]:
    """Pids of the counter and histogram files in ``directory`` whose process no longer exists
    (for servers without a ``child_exit`` hook; a pid reused by a new process counts as alive)."""
    pids = set()
    for name in os.listdir(directory):
        match = _COMPACTABLE.match(name)
        if match is None or int(match.group(1)) == ARCHIVE_PID:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pids.add(pid)
        except PermissionError:
            pass  # alive, another user's
    return sorted(pids)


_COMPACTABLE = re.compile(r"^(?:counter|histogram)_(\d+)\.db$")


SHOWN_NAME = ".statek.shown"
"""The directory's record of the series some scrape has already shown (one JSON line per series)."""


class FileDebut:
    """No lost first increment in multiprocess mode: a counter or histogram series that no scrape of
    the directory has shown yet is served at zero once (the series' samples, buckets and sum), as
    :mod:`statek.exporters.debut` does for one process; the next scrape serves its total.

    Which series were shown lives in the directory (:data:`SHOWN_NAME`, appended to), not in the
    serving process: a scrape answered by another worker, or by the gunicorn master, does not show a
    series at zero again (that would read as a counter reset). The workers' files keep their real
    totals throughout, so a worker killed before the next scrape loses nothing more than before.
    Not covered: two Prometheus servers scraping the same endpoint (the second may see a new series
    first at its total), as in one process."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._path = os.path.join(directory, SHOWN_NAME)
        self._shown: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._offset = 0
        self._lock = threading.Lock()

    def apply(self, families: Iterable[Any]) -> list[Any]:
        """``families`` (merged, accumulated) with never-shown counter and histogram series at zero."""
        families = list(families)
        with self._lock:
            self._catch_up()
            new: list[tuple[str, tuple[tuple[str, str], ...]]] = []
            for family in families:
                if family.type not in ("counter", "histogram"):
                    continue
                samples = []
                for sample in family.samples:
                    key = (family.name, _series_labels(sample.labels))
                    if key in self._shown:
                        samples.append(sample)
                        continue
                    if not new or new[-1] != key:
                        new.append(key)
                    samples.append(sample._replace(value=0.0))
                family.samples = samples
            fresh = list(dict.fromkeys(k for k in new if k not in self._shown))
            self._shown.update(fresh)
            self._record(fresh)
        return families

    def _catch_up(self) -> None:
        """Read what other processes appended since the last scrape."""
        try:
            with open(self._path, "rb") as shown:
                shown.seek(self._offset)
                data = shown.read()
        except FileNotFoundError:
            return
        except OSError:
            _log.debug("statek: cannot read %s", self._path, exc_info=True)
            return
        complete = data.rfind(b"\n") + 1  # a line another process is still appending waits
        for line in data[:complete].splitlines():
            try:
                name, labels = json.loads(line)
                self._shown.add((str(name), tuple((str(k), str(v)) for k, v in labels)))
            except (ValueError, TypeError):
                continue  # a damaged line: that series may be shown at zero once more
        self._offset += complete

    def _record(self, keys: list[tuple[str, tuple[tuple[str, str], ...]]]) -> None:
        if not keys:
            return
        payload = b"".join(json.dumps([name, labels]).encode() + b"\n" for name, labels in keys)
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            _log.debug("statek: cannot record shown series in %s", self._path, exc_info=True)
            return
        try:
            os.write(fd, payload)  # O_APPEND: whole lines, never interleaved with another scrape's offset
        finally:
            os.close(fd)
        # our own lines are read back by _catch_up like anyone's; the set already has them


def _series_labels(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """A series' identity without ``le`` (a histogram's buckets, sum and count are one series)."""
    return tuple(sorted(item for item in labels.items() if item[0] != "le"))
