"""Call latency when the OTLP collector is down or stuck, against a live collector, interleaved.

Each configuration runs in its own worker process, set up by ``statek.instrument`` with the
default OTLP timeouts and a metric push every ``--push-interval`` seconds, so exports succeed,
fail or hang throughout the run:

- ``live``: OTLP to a real collector, ``rotel-agent`` (from the ``rotel`` wheel) with its
  discarding exporter - the baseline;
- ``closed port``: OTLP to a port nothing listens on (every export fails at once, then backs off);
- ``black hole``: OTLP to a loopback server that accepts and never answers
  (:class:`statek.testing.BlackHole`), so every export waits for its timeout;
- ``no OTLP``: Prometheus only, no tracer provider, for reference.

The workers stay up for the whole run; in each round the parent asks each one in turn, in a
freshly shuffled order, for a block of sequential metered calls (a ``Job`` per call, priced model)
to the loopback server of :mod:`benchmarks._loopback`, so drift on the machine lands on every
configuration alike. Only one worker makes calls at a time; the others idle with their exporters.
Printed: p50 / p99 per configuration and their ratios to ``live`` (pooled over rounds, and the
per-round range), and how long ``statek.shutdown()`` took in each worker at the end.

Goals (issue 13): a dead collector (closed port, black hole) costs <= 5 % p50 and <= 10 % p99.

    python -m benchmarks collector_down [--quick] [--rounds N] [--calls N] [--push-interval S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from benchmarks._loopback import MODEL, QUESTION, SYSTEM, LoopbackServer, free_port, percentile

__all__ = ["main"]

CONFIGURATIONS = ("live", "closed port", "black hole", "no OTLP")


# ----------------------------------------------------------------------------- the worker process
def _worker(endpoint: str, url: str, push_interval: float, warmup: int) -> None:
    """Serve ``run N`` / ``stop`` lines on stdin; answer each with one JSON line on stdout."""
    from prometheus_client import CollectorRegistry

    import statek
    from statek.exporters.otlp import ENDPOINT_ENVS
    from statek.model_pricing import set_model_pricing

    for name in ENDPOINT_ENVS:
        os.environ.pop(name, None)
    set_model_pricing("OPENAI", MODEL, "0.15", "0.60", "0.075")
    statek.instrument(
        "bench-collector-down",
        otlp_endpoint=endpoint or None,
        registry=CollectorRegistry(),
        metric_export_interval=push_interval,
    )
    loop = asyncio.new_event_loop()
    api = statek.LLM_API.get("OPENAI", model=MODEL, api_url=url, api_key="bench-key")
    history = [statek.ChatHistoryItem.user(QUESTION)]

    async def block(calls: int) -> list[int]:
        from statek.executors.job import Job

        samples = []
        for _ in range(calls):
            started = time.perf_counter_ns()
            async with Job("bench-request"):
                await api.process_request(SYSTEM, MODEL, chat_history=history)
            samples.append(time.perf_counter_ns() - started)
        return samples

    loop.run_until_complete(block(warmup))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            print(json.dumps({"ns": loop.run_until_complete(block(int(command[1])))}), flush=True)
        else:
            loop.run_until_complete(api.aclose())
            started = time.perf_counter()
            statek.shutdown()
            print(json.dumps({"shutdown_s": time.perf_counter() - started}), flush=True)
            return


class Worker:
    """A worker process for one configuration, driven line by line."""

    def __init__(self, name: str, endpoint: str, url: str, args: argparse.Namespace) -> None:
        self.name = name
        self.samples_ns: list[int] = []
        self.block_p: list[tuple[float, float]] = []
        self.shutdown_s = float("nan")
        # the exporters' complaints about the dead collector: kept, shown only if the worker fails
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.collector_down",
                "--worker",
                endpoint,
                url,
                str(args.push_interval),
                str(args.warmup),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def _ask(self, line: str | None) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            self.stderr.seek(0)
            raise RuntimeError(f"benchmark worker {self.name!r} exited early:\n{self.stderr.read()[-4000:]}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def ready(self) -> None:
        self._ask(None)

    def run(self, calls: int) -> None:
        block = self._ask(f"run {calls}")["ns"]
        self.samples_ns.extend(block)
        self.block_p.append((percentile(block, 0.5), percentile(block, 0.99)))

    def stop(self) -> None:
        self.shutdown_s = self._ask("stop")["shutdown_s"]
        self.process.wait(timeout=60)
        self.stderr.close()


# ----------------------------------------------------------------------------- collectors
@contextmanager
def live_collector() -> Iterator[str]:
    """``rotel-agent`` receiving OTLP/HTTP on loopback and discarding it; yields its base URL."""
    import rotel

    binary = Path(rotel.__file__).parent / "rotel-agent"
    port = free_port()
    with TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            [
                str(binary),
                "start",
                "--otlp-http-endpoint",
                f"127.0.0.1:{port}",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{free_port()}",
                "--exporter",
                "blackhole",
                "--pid-file",
                str(Path(workdir) / "rotel.pid"),
                "--log-file",
                str(Path(workdir) / "rotel.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the live collector did not listen on port {port}")


def _closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}"  # free a moment ago: nothing listens there


# ----------------------------------------------------------------------------- the run
def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--worker":
        endpoint, url, push, warmup = argv[1:5]
        _worker(endpoint, url, float(push), int(warmup))
        return
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks collector_down", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized: 4 rounds of 300 calls")
    parser.add_argument("--rounds", type=int, help="rounds (default 4 quick, 8 full)")
    parser.add_argument("--calls", type=int, help="calls per block (default 300 quick, 1000 full)")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured calls per worker first")
    parser.add_argument("--push-interval", type=float, default=1.0, help="OTLP metric push interval (s)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    rounds = args.rounds or (4 if args.quick else 8)
    calls = args.calls or (300 if args.quick else 1000)
    from statek.testing import BlackHole

    rng = random.Random(args.seed)
    with LoopbackServer() as server, BlackHole() as hole, live_collector() as live:
        endpoints = {"live": live, "closed port": _closed_port(), "black hole": hole.url, "no OTLP": ""}
        workers = [Worker(name, endpoints[name], server.url, args) for name in CONFIGURATIONS]
        for worker in workers:
            worker.ready()
        for _ in range(rounds):
            order = list(workers)
            rng.shuffle(order)
            for worker in order:
                worker.run(calls)
        for worker in workers:
            worker.stop()
    _report(workers, rounds, calls, args)


def _report(workers: list[Worker], rounds: int, calls: int, args: argparse.Namespace) -> None:
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        f"{rounds} rounds x {calls} sequential metered calls (a Job per call) per configuration, shuffled "
        f"(seed {args.seed}); OTLP metric push every {args.push_interval:g} s, default OTLP timeouts"
    )
    base = workers[0]
    b50, b99 = percentile(base.samples_ns, 0.5), percentile(base.samples_ns, 0.99)
    print(
        f"{'configuration':<14}{'p50 us':>9}{'x live':>8}{'range':>12}{'p99 us':>9}{'x live':>8}"
        f"{'range':>12}{'shutdown s':>12}"
    )
    for worker in workers:
        p50, p99 = percentile(worker.samples_ns, 0.5), percentile(worker.samples_ns, 0.99)
        r50 = [a[0] / b[0] for a, b in zip(worker.block_p, base.block_p)]
        r99 = [a[1] / b[1] for a, b in zip(worker.block_p, base.block_p)]
        print(
            f"{worker.name:<14}{p50 / 1000:9.1f}{p50 / b50:8.3f}{min(r50):6.2f}..{max(r50):4.2f}"
            f"{p99 / 1000:9.1f}{p99 / b99:8.3f}{min(r99):6.2f}..{max(r99):4.2f}{worker.shutdown_s:12.2f}"
        )
    print("goals: closed port and black hole <= 1.05x live p50 and <= 1.10x live p99")
    for worker in workers[1:3]:
        p50 = percentile(worker.samples_ns, 0.5) / b50
        p99 = percentile(worker.samples_ns, 0.99) / b99
        verdict = "met" if p50 <= 1.05 and p99 <= 1.10 else "MISSED"
        print(f"  {worker.name:<12} p50 {p50:5.3f}x  p99 {p99:5.3f}x  {verdict}")


if __name__ == "__main__":
    main()
