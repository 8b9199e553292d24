"""Multiprocess files a scrape can trust: bad files beside good ones never fail or hang a scrape,
compaction never changes what is served, a forked worker counts only its own calls, and the
documented app imports without ``PROMETHEUS_MULTIPROC_DIR``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from statek.exporters import multiprocess
from statek.exporters.multiprocess_files import FileDebut, SkipCounts, candidates, compact, merge

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(exposition: bytes) -> Samples:
    out = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _write(directory: Path, pid: int, counts: dict[str, float]) -> Path:
    """A worker's counter file as prometheus_client writes it: ``statek_tokens_total`` by model."""
    path = directory / f"counter_{pid}.db"
    values = MmapedDict(str(path))
    try:
        for model, value in counts.items():
            key = mmap_key("statek_tokens", "statek_tokens_total", ["model"], [model], "Tokens")
            values.write_value(key, value, 0.0)
    finally:
        values.close()
    return path


def _served(directory: Path) -> tuple[Samples, Samples]:
    """(statek's token samples, the skipped-files counter by reason) of a scrape after one that
    showed the new series at zero."""
    generate_latest(multiprocess.registry(directory))
    samples = _samples(generate_latest(multiprocess.registry(directory)))
    tokens = {k: v for k, v in samples.items() if k[0] == "statek_tokens_total"}
    skipped = {k: v for k, v in samples.items() if k[0] == "statek_multiprocess_skipped_files_total"}
    return tokens, skipped


def _scrape_in_thread(directory: Path, timeout: float = 20) -> tuple[Samples, Samples]:
    """A scrape that must finish: a hang (a FIFO opened) fails the test instead of blocking it."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(_served(directory)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the scrape hung"
    return result[0]


def test_bad_files_beside_good_ones_are_skipped_counted_and_never_hang(tmp_path: Path) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    _write(directory, 101, {"gpt-4o": 40})
    good = _write(directory, 102, {"gpt-4o": 2, "o3": 7})
    entry = (19).to_bytes(4, "little") + b"not a json key, no!" + bytes(1) + bytes(16)
    (directory / "counter_103.db").write_bytes((8 + len(entry)).to_bytes(4, "little") + bytes(4) + entry)
    (directory / "counter_104.db").write_bytes(b"")  # empty
    (directory / "counter_105.db").write_bytes(good.read_bytes()[:40])  # truncated
    (directory / "counter_106.db").symlink_to(good)  # a link (would count 102 twice)
    os.mkfifo(directory / "counter_107.db")  # open() on it blocks forever
    (directory / "histogram_108.db").mkdir()
    (directory / "notes.db").write_bytes(b"SQLite format 3\x00" + bytes(100))  # not a worker's
    used = (10_000).to_bytes(4, "little") + bytes(4) + (500).to_bytes(4, "little")
    (directory / "counter_109.db").write_bytes(used + bytes(100))  # a header promising more

    tokens, skipped = _scrape_in_thread(directory)
    assert tokens == {
        ("statek_tokens_total", (("model", "gpt-4o"),)): 42,
        ("statek_tokens_total", (("model", "o3"),)): 7,
    }
    reasons = {dict(labels)["reason"]: value for (_, labels), value in skipped.items()}
    assert reasons == {"corrupt": 6, "empty": 2, "symlink": 2, "not_a_file": 4, "foreign": 2}  # 2 scrapes
    # the next scrape skips the known-corrupt files without reading them, and says so again
    tokens_again, skipped_again = _scrape_in_thread(directory)
    assert tokens_again == tokens
    assert {dict(labels)["reason"]: v for (_, labels), v in skipped_again.items()}["corrupt"] == 12


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=3000), prefix=st.sampled_from([b"", b"\x10\x00\x00\x00\x00\x00\x00\x00"]))
def test_any_bytes_in_a_workers_file_leave_the_others_served(
    tmp_path_factory: pytest.TempPathFactory, garbage: bytes, prefix: bytes
) -> None:
    directory = tmp_path_factory.mktemp("garbage")
    _write(directory, 201, {"gpt-4o": 5})
    (directory / "counter_202.db").write_bytes(prefix + garbage)
    tokens, _ = _scrape_in_thread(directory)
    assert tokens.get(("statek_tokens_total", (("model", "gpt-4o"),)), 0) >= 5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    workers=st.lists(
        st.dictionaries(st.sampled_from(["gpt-4o", "o3", "_other_"]), st.integers(0, 10**9), min_size=1),
        min_size=1,
        max_size=8,
    ),
    data=st.data(),
)
def test_compacting_any_dead_workers_never_changes_what_is_served(
    tmp_path_factory: pytest.TempPathFactory, workers: list[dict[str, int]], data: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("compact")
    for n, counts in enumerate(workers):
        _write(directory, 1000 + n, {k: float(v) for k, v in counts.items()})
    before, _ = _served(directory)
    rounds = data.draw(st.lists(st.sets(st.integers(0, len(workers) - 1)), max_size=3))
    for dead in rounds:
        compact(directory, [1000 + n for n in dead])
        after, _ = _served(directory)
        assert after == before
    gone = {n for dead in rounds for n in dead}
    names = {p.name for p in directory.glob("*.db")}
    assert names == {f"counter_{1000 + n}.db" for n in range(len(workers)) if n not in gone} | (
        {"counter_0.db"} if gone else set()
    )


def test_two_thousand_restarts_leave_one_archive_file(tmp_path: Path) -> None:
    """gunicorn's child_exit after each of 2,000 worker deaths: the directory keeps one counter file."""
    directory = tmp_path / "prom"
    directory.mkdir()

    class Worker:
        def __init__(self, pid: int) -> None:
            self.pid = pid

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(multiprocess.ENV, str(directory))
        for n in range(2000):
            _write(directory, 10_000 + n, {"gpt-4o": 1, f"m{n % 7}": 2})
            multiprocess.child_exit(None, Worker(10_000 + n))
    assert [p.name for p in directory.glob("*.db")] == ["counter_0.db"]
    tokens, _ = _served(directory)
    assert tokens[("statek_tokens_total", (("model", "gpt-4o"),))] == 2000
    assert sum(tokens.values()) == 2000 + 2 * 2000


FORKING_APP = """
import os, sys
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from statek.exporters import PrometheusExporter, multiprocess
from statek.instruments import TOKENS, Instruments

exporter = PrometheusExporter(registry=CollectorRegistry(), target_info=False)
provider = MeterProvider(metric_readers=[exporter.reader])
instruments = Instruments(provider.get_meter("fork-test"))
cell = instruments.cell(TOKENS, {"gen_ai.request.model": "gpt-4o", "statek.token.type": "input"})
mirror = multiprocess.MultiprocessMirror(exporter.reader, interval=3600)
mirror.start()
cell.value += 5  # the parent's own, before the fork
pid = os.fork()
if pid == 0:  # the child: count 7 more, write, leave without the parent's atexit hooks
    code = 1
    try:
        cell.value += 7
        mirror.flush()
        code = 0 if os.path.exists(os.path.join(sys.argv[1], f"counter_{os.getpid()}.db")) else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
mirror.shutdown()
provider.shutdown()
"""


def test_a_forked_worker_counts_only_its_own_calls(tmp_path: Path) -> None:
    """Instrumented before the fork (gunicorn --preload): the child re-initialises its mirror, writes
    a file of its own, and what the parent counted before the fork is counted once. (In a fresh
    interpreter: prometheus_client fixes a process's directory at its first write.)"""
    directory = tmp_path / "prom"
    directory.mkdir()
    env = {**os.environ, multiprocess.ENV: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", FORKING_APP, str(directory)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    generate_latest(multiprocess.registry(directory))  # new series are served at zero first
    served = _samples(generate_latest(multiprocess.registry(directory)))
    assert len(list(directory.glob("counter_*.db"))) == 2  # the parent's file and the child's
    total = sum(v for (name, _), v in served.items() if name == "statek_tokens_total")
    assert total == 5 + 7


def test_the_documented_app_imports_and_serves_without_the_variable(tmp_path: Path) -> None:
    """make_asgi_app() at import time with PROMETHEUS_MULTIPROC_DIR unset: no error; the endpoint
    serves the process's own metrics (prometheus_client's default registry)."""
    script = (
        "import asyncio\n"
        "from statek.exporters.multiprocess import make_asgi_app\n"
        "from prometheus_client import Counter\n"
        "app = make_asgi_app()\n"
        "Counter('app_jobs', 'jobs').inc()\n"
        "sent = []\n"
        "async def receive():\n"
        "    return {'type': 'http.request', 'body': b'', 'more_body': False}\n"
        "async def send(message):\n"
        "    sent.append(message)\n"
        "scope = {'type': 'http', 'method': 'GET', 'path': '/', 'query_string': b'', 'headers': []}\n"
        "asyncio.run(app(scope, receive, send))\n"
        "body = b''.join(m.get('body', b'') for m in sent)\n"
        "assert b'app_jobs_total 1.0' in body, body[:500]\n"
        "print('served')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (multiprocess.ENV, "prometheus_multiproc_dir")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "served"


def test_a_new_series_is_served_at_zero_once_whichever_process_answers(tmp_path: Path) -> None:
    """The first scrape shows a new series at zero (increase() then sees its first increment); a
    later scrape answered by another process (a fresh FileDebut reading the directory) shows the
    total, never the zero again (that would read as a counter reset)."""
    directory = tmp_path / "prom"
    directory.mkdir()
    _write(directory, 301, {"gpt-4o": 3})
    families = merge(candidates(directory, SkipCounts()), SkipCounts())
    first = FileDebut(directory).apply(families)
    assert [s.value for f in first for s in f.samples if s.name == "statek_tokens_total"] == [0.0]
    again = FileDebut(directory).apply(merge(candidates(directory, SkipCounts()), SkipCounts()))
    assert [s.value for f in again for s in f.samples if s.name == "statek_tokens_total"] == [3.0]
    _write(directory, 302, {"o3": 1})  # a new series later: zero once, the old one keeps its total
    later = FileDebut(directory).apply(merge(candidates(directory, SkipCounts()), SkipCounts()))
    values = {s.labels["model"]: s.value for f in later for s in f.samples if s.name == "statek_tokens_total"}
    assert values == {"gpt-4o": 3.0, "o3": 0.0}


def test_dead_pids_finds_the_files_of_processes_that_are_gone(tmp_path: Path) -> None:
    """For servers without a child_exit hook (uvicorn --workers): only files of exited processes."""
    from statek.exporters.multiprocess_files import dead_pids

    directory = tmp_path / "prom"
    directory.mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    dead = int(gone.stdout)
    _write(directory, dead, {"gpt-4o": 1})
    _write(directory, os.getpid(), {"gpt-4o": 2})  # alive: this process
    _write(directory, 0, {"gpt-4o": 3})  # the archive is never a candidate
    assert dead_pids(directory) == [dead]
    compact(directory, dead_pids(directory))
    assert sorted(p.name for p in directory.glob("*.db")) == ["counter_0.db", f"counter_{os.getpid()}.db"]
    tokens, _ = _served(directory)
    assert tokens == {("statek_tokens_total", (("model", "gpt-4o"),)): 6}
