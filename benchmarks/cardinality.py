"""A flood of distinct model names (request ids sent as the model by mistake): memory, scrape time,
and whether a real model that appears afterwards keeps its own series.

Each scenario runs in a fresh child process: ``statek.instrument`` with a private Prometheus
registry (the /metrics path), calls through statek's OpenAI provider to an in-process answer
(``httpx.MockTransport``: no network) that echoes the model; warm-up with ``gpt-4o`` (imports,
price database, first series), then ``--names`` calls each with a new unpriced model name, then one
``gpt-4o`` call. Reported: resident memory growth over the flood (``VmRSS``, after a GC), the
median of 5 scrapes (``generate_latest``), the series count, and whether ``gpt-4o`` is labelled.

Scenarios: ``guarded`` (the default limit, ``STATEK_METRICS_MAX_MODELS`` unset) and ``unguarded``
(the limit raised above the flood: what statek did before the guard).

With ``--multiprocess`` (a scratch ``PROMETHEUS_MULTIPROC_DIR``) it also times one write of the
worker's totals to its files and one multiprocess scrape, and sums the files' size.

    python -m benchmarks cardinality [--names N] [--only guarded|unguarded] [--multiprocess]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

__all__ = ["main"]


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _answer(request: Any) -> Any:
    import httpx

    body = json.loads(request.content)
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        },
    )


def child(names: int) -> dict[str, Any]:
    """One scenario in this process (the environment sets the limit)."""
    import httpx
    from prometheus_client import CollectorRegistry, generate_latest

    import statek
    from statek import LLM_API, ChatHistoryItem

    registry = CollectorRegistry()
    active = statek.instrument(service_name="flood", registry=registry)
    client = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
    api = LLM_API.get("OPENAI", api_url="http://127.0.0.1:9/v1", api_key="test-key", http_client=client)
    question = [ChatHistoryItem.user("hi")]

    async def calls(models: list[str]) -> None:
        for model in models:
            await api.process_request(model=model, chat_history=question)

    asyncio.run(calls(["gpt-4o", "gpt-4o-mini"] * 5))
    generate_latest(registry)
    gc.collect()
    before = _rss_bytes()
    started = time.perf_counter()
    asyncio.run(calls([f"req-{i:06d}-{os.getpid()}" for i in range(names)]))
    flood_s = time.perf_counter() - started
    failures: list[str] = []

    def scrape() -> bytes:
        try:
            return generate_latest(registry)
        except Exception as exc:  # noqa: BLE001 - e.g. the SDK's 10 s collection timeout: reported
            failures.append(type(exc).__name__)
            return b""

    scrape()
    asyncio.run(calls(["gpt-4o"]))
    scrapes = []
    text = b""
    for _ in range(5):
        t = time.perf_counter()
        text = scrape() or text
        scrapes.append(time.perf_counter() - t)
    gc.collect()
    after = _rss_bytes()
    lines = [line for line in text.decode().splitlines() if line and not line.startswith("#")]
    gpt4o = [line for line in lines if line.startswith("statek_requests_total") and '"gpt-4o"' in line]
    out: dict[str, Any] = {"scrape_failures": failures} if failures else {}
    if active.multiprocess is not None:  # multiprocess mode: one write of the worker's totals, one scrape
        from statek.exporters import multiprocess

        t = time.perf_counter()
        active.multiprocess.flush()
        out["multiprocess_write_ms"] = round((time.perf_counter() - t) * 1000, 1)
        served = multiprocess.registry()
        generate_latest(served)  # new series at zero first
        t = time.perf_counter()
        generate_latest(served)
        out["multiprocess_scrape_ms"] = round((time.perf_counter() - t) * 1000, 1)
        out["multiprocess_files_kb"] = round(
            sum(p.stat().st_size for p in multiprocess.multiprocess_directory().glob("*.db")) / 1024  # type: ignore[union-attr]
        )
    statek.shutdown()
    return {
        **out,
        "names": names,
        "rss_growth_mb": round((after - before) / 2**20, 1),
        "scrape_ms_median": round(statistics.median(scrapes) * 1000, 1),
        "samples": len(lines),
        "flood_calls_per_s": round(names / flood_s),
        "gpt-4o_labelled": bool(gpt4o),
        "gpt-4o_requests": gpt4o,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cardinality")
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--only", choices=("guarded", "unguarded"))
    parser.add_argument(
        "--multiprocess", action="store_true", help="with PROMETHEUS_MULTIPROC_DIR: time a write and a scrape"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.names)))
        return
    for scenario in ("guarded", "unguarded"):
        if args.only and scenario != args.only:
            continue
        env = dict(os.environ)
        env.pop("STATEK_METRICS_MAX_MODELS", None)
        if scenario == "unguarded":
            env["STATEK_METRICS_MAX_MODELS"] = str(args.names + 10)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        scratch = tempfile.TemporaryDirectory() if args.multiprocess else None
        if scratch is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = scratch.name
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks", "cardinality", "--child", "--names", str(args.names)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        if scratch is not None:
            scratch.cleanup()
        print(scenario, out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
