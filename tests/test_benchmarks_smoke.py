"""The benchmarks still run against the code they measure (they reach into statek's metering path, so
a change of its internals can break them silently): a few calls each, nothing timed or compared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bytecodes_counts_statek_the_metering_path_alone_and_raw() -> None:
    out = _run(
        "-m",
        "benchmarks",
        "bytecodes",
        "--calls",
        "2",
        "--only",
        "raw",
        "statek, no-op tracer",
        "metering path alone, no-op tracer",
        "an event loop turn",
    )
    assert "statek's own Python work (no-op tracer) over raw: +" in out
    assert "the metering path alone (a Job, the record, its consumers, pricing" in out


def test_the_overhead_benchmarks_own_time_hook_measures_a_call() -> None:
    script = """
import asyncio
from benchmarks.overhead import Clients, _install_own_time_hook, _own_ns
from benchmarks._loopback import LoopbackServer, telemetry_on

telemetry_on()
_install_own_time_hook()

async def main(url):
    clients = Clients(url)
    sink = []
    token = _own_ns.set(sink)
    try:
        response = await clients.statek_job_call()
    finally:
        _own_ns.reset(token)
    await clients.aclose()
    assert response.detail.priced_cost is not None, response
    assert len(sink) == 1 and sink[0] > 0, sink
    print("own time measured")

with LoopbackServer() as server:
    asyncio.run(main(server.url))
"""
    assert "own time measured" in _run("-c", script)
