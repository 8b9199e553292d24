"""Calls counted off the calling thread: every collection sees every finished call, once.

The metrics consumer only appends a finished call to its instruments' backlog; the backlog is counted
before each collection, or by a background thread once :data:`statek.instruments.BACKLOG_WAKE` calls
wait, and before a fork. These tests drive real calls and real collections.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    call,
    captured_fixture,
    prices_fixture,
    scripted_api,
)

from statek.call_record import CallRecord, CallSite
from statek.instruments import BACKLOG_WAKE
from statek.telemetry.config import telemetry_config
from statek.telemetry.metrics import MetricsConsumer
from statek.types import CallDetail


def _finished(n: int) -> CallRecord:
    """A call answered with ``n`` input tokens, through the real metrics consumer's ``start``."""
    record = CallRecord(CallSite("BENCH", "bench", "BENCH", "m", "chat"), None)
    MetricsConsumer().start(record)
    record.outcome = "ok"
    record.detail = CallDetail(0, 0, None, n, 1)
    record.duration = 0.01
    return record


def _requests(captured: Captured) -> int:
    return sum(v for k, v in captured.values("statek.requests").items() if ("statek.outcome", "success") in k)


def _input_tokens(captured: Captured) -> int:
    if captured.reader.get_metrics_data() is None:  # nothing was ever counted
        return 0
    values = captured.values("statek.tokens")
    return sum(v for k, v in values.items() if ("statek.token.type", "input") in k)


async def test_a_collection_right_after_a_call_sees_it(captured: Captured) -> None:
    await call(scripted_api(), "in=40 out=2")
    assert telemetry_config().instruments.pending == 1  # counted later, not on the caller's path
    assert _requests(captured) == 1
    assert telemetry_config().instruments.pending == 0


async def test_a_full_backlog_is_counted_in_the_background_without_any_collection(captured: Captured) -> None:
    api = scripted_api()
    for _ in range(BACKLOG_WAKE):
        await call(api, "in=40 out=2")
    instruments = telemetry_config().instruments
    deadline = time.monotonic() + 10
    while instruments.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert instruments.pending == 0  # the background thread counted them: memory stays bounded
    assert _requests(captured) == BACKLOG_WAKE


@settings(max_examples=15, deadline=None)
@given(
    per_thread=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=4),
    collections=st.integers(min_value=0, max_value=20),
)
def test_calls_finishing_on_many_threads_while_readers_collect_are_counted_exactly_once(
    per_thread: list[int], collections: int
) -> None:
    captured = Captured()
    try:
        consumer = MetricsConsumer()
        start = threading.Barrier(len(per_thread) + 1)

        def caller(count: int, seed: int) -> None:
            start.wait()
            for i in range(count):
                consumer.finish(_finished(seed * 1000 + i))

        threads = [threading.Thread(target=caller, args=(count, t)) for t, count in enumerate(per_thread)]
        for thread in threads:
            thread.start()
        start.wait()
        for _ in range(collections):
            captured.reader.get_metrics_data()
        for thread in threads:
            thread.join()
        expected_tokens = sum(t * 1000 + i for t, count in enumerate(per_thread) for i in range(count))
        assert _input_tokens(captured) == expected_tokens
        assert telemetry_config().instruments.pending == 0
    finally:
        captured.meter_provider.shutdown()


FORKING = """
import asyncio, os, sys
sys.path.insert(0, sys.argv[1])
from test_telemetry_support import Captured, call, scripted_api
from statek.telemetry.config import telemetry_config

captured = Captured()
api = scripted_api()
for _ in range(5):
    asyncio.run(call(api, "in=40 out=2"))
assert telemetry_config().instruments.pending == 5
pid = os.fork()
if pid == 0:  # the child: count 3 calls of its own, report what its own collection shows
    code = 1
    try:
        for _ in range(3):
            asyncio.run(call(api, "in=40 out=2"))
        requests = sum(
            v for k, v in captured.values("statek.requests").items() if ("statek.outcome", "success") in k
        )
        print("child", requests, flush=True)
        code = 0
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
requests = sum(v for k, v in captured.values("statek.requests").items() if ("statek.outcome", "success") in k)
print("parent", requests, flush=True)
"""


def test_a_fork_counts_the_parents_waiting_calls_in_the_parent_before_the_child_exists() -> None:
    """Without the drain before the fork, the child would inherit the parent's uncounted calls and
    count them a second time (5 + 5 + 3)."""
    tests = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, "-c", FORKING, tests], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split() for line in done.stdout.splitlines())
    assert lines == {"child": "8", "parent": "5"}  # the child inherits the 5 counted, adds its 3


def test_the_consumer_counts_under_the_configuration_of_the_calls_start(captured: Captured) -> None:
    record = _finished(7)
    later = Captured()  # reconfigured while the call runs
    try:
        MetricsConsumer().finish(record)
        assert _input_tokens(captured) == 7
        assert _input_tokens(later) == 0
    finally:
        later.meter_provider.shutdown()
