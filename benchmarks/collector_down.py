"""Call latency when the OTLP collector is away: none configured, down (closed port), or stuck.

Sequential calls to the loopback chat-completions server of :mod:`benchmarks.overhead` (a child
process), each a full metered call (priced model, open ``Job``), with telemetry set up by
``statek.instrument`` in three configurations, one after the other in one run:

- (a) no OTLP: Prometheus registry only (spans are not recorded: no SDK tracer provider);
- (b) OTLP to a closed port: every export fails at once and is retried with backoff;
- (c) OTLP to a black hole: a loopback server that accepts connections and never answers, so
  every export hangs until the exporter's timeout (10 s by default).

OTLP timeouts are the defaults users get; metrics are pushed every ``--push-interval`` seconds so
exports are failing or stuck throughout the measurement. Printed per configuration: p50 and p99
per call and their ratios to (a), and how long ``statek.shutdown()`` took afterwards. The goal is
that (b) and (c) cost a call nothing measurable: exports happen on background threads, spans wait
in a bounded queue and are dropped when it is full.

    python -m benchmarks collector_down [--calls 4000] [--warmup 300] [--push-interval 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time

from benchmarks.overhead import MODEL, LoopbackServer
from statek.testing import BlackHole


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed again: nothing listens there


async def _call_latencies(url: str, calls: int, warmup: int) -> list[int]:
    """Nanoseconds of each of ``calls`` sequential metered calls, after ``warmup`` unmeasured ones."""
    from statek import LLM_API, ChatHistoryItem
    from statek.executors.job import Job

    api = LLM_API.get("OPENAI", model=MODEL, api_url=url, api_key="bench-key")
    history = [ChatHistoryItem.user("What is the capital of France?")]
    samples: list[int] = []
    with Job("bench-collector-down"):
        for i in range(warmup + calls):
            started = time.perf_counter_ns()
            await api.process_request("Be concise.", MODEL, chat_history=history)
            if i >= warmup:
                samples.append(time.perf_counter_ns() - started)
    await api.aclose()
    return samples


def _configuration(
    name: str, endpoint: str | None, url: str, args: argparse.Namespace
) -> tuple[list[int], float]:
    """(call latencies, seconds ``statek.shutdown()`` took) with OTLP to ``endpoint`` (``None``: off)."""
    from prometheus_client import CollectorRegistry

    import statek

    statek.instrument(
        f"bench-{name}",
        otlp_endpoint=endpoint,
        registry=CollectorRegistry(),
        metric_export_interval=args.push_interval,
    )
    try:
        samples = asyncio.run(_call_latencies(url, args.calls, args.warmup))
    finally:
        started = time.perf_counter()
        statek.shutdown()
        shutdown_s = time.perf_counter() - started
    return samples, shutdown_s


def _p(samples: list[int], q: int) -> float:
    """The ``q``-th percentile in microseconds."""
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] / 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks collector_down", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--calls", type=int, default=4000, help="measured calls per configuration")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured calls first, per configuration")
    parser.add_argument("--push-interval", type=float, default=1.0, help="OTLP metric push interval (s)")
    args = parser.parse_args(argv)

    from statek.exporters.otlp import ENDPOINT_ENVS
    from statek.model_pricing import set_model_pricing

    for name in ENDPOINT_ENVS:  # (a) must really have no OTLP
        os.environ.pop(name, None)
    set_model_pricing("OPENAI", MODEL, "0.15", "0.60", "0.075")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        f"{args.calls} sequential metered calls per configuration (after {args.warmup} warm-up), "
        f"OTLP metric push every {args.push_interval:g} s, default OTLP timeouts"
    )
    results: dict[str, tuple[list[int], float]] = {}
    with LoopbackServer() as server, BlackHole() as hole:
        for label, endpoint in (
            ("(a) no OTLP", None),
            ("(b) OTLP to a closed port", _closed_port()),
            ("(c) OTLP to a black hole", hole.url),
        ):
            results[label] = _configuration(label[:3].strip("()"), endpoint, server.url, args)
    base50, base99 = (_p(results["(a) no OTLP"][0], q) for q in (50, 99))
    for label, (samples, shutdown_s) in results.items():
        p50, p99 = _p(samples, 50), _p(samples, 99)
        print(
            f"{label:<27} p50 {p50:7.1f} us ({p50 / base50:4.2f}x)   p99 {p99:7.1f} us ({p99 / base99:4.2f}x)"
            f"   shutdown {shutdown_s:4.1f} s"
        )


if __name__ == "__main__":
    main()
