"""Budget check overhead: what a job's budget adds to each call (estimate, reserve, settle).

The call is ``observe_call`` around a provider step that returns at once (no I/O), with the full
telemetry stack on (as :mod:`benchmarks._loopback` wires it) and a priced model, made in three kinds
of job: without a budget; with a USD budget (the common case); and with USD, token, call and
``STATEK_MAX_TOKEN_USAGE`` limits, nested in a parent with a USD limit (two ledgers per call, as in
an application that budgets both a request and its tenant). Limits are never reached. The kinds are
measured interleaved in blocks in one run, so a difference is not a difference between runs.

Each call is timed twice over: wall time (``perf_counter_ns``) and this thread's CPU time
(``thread_time_ns``), which a shared machine's preemptions do not inflate. Printed: p50 per call
for each kind on both clocks, and what the budget adds (difference and ratio to no budget); then the
budget work alone in a tight loop (warm caches: its CPU cost without the call around it).
Goal (issue 14): <= 5 us at p50 added to a call.

``--overspend``: N concurrent uncapped calls (16, 64, 256) to a reasoning model that writes 40,000
tokens, against the loopback simulator, under a $1 budget, in each reservation mode: the old
estimate (``reserve="estimate"``: before), the worst case (the default: after), and
``cap_output=True``. Printed: what they spent against the limit.

``--shared``: the budget check of a shared budget (``Budget(key=...)``), in this process's store
and in Redis on loopback (``--redis-url``, else a ``redis-server`` started on a free port): p50 of
reserve + settle, and Redis round trips (commands processed) per call.

    python -m benchmarks.budget [--calls 20000] [--quick] [--overspend] [--shared [--redis-url URL]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from typing import Any

from benchmarks._loopback import MODEL
from benchmarks._loopback import telemetry_on as _telemetry_on

_PROMPT = "Summarise the attached quarterly report in three bullet points. " * 40


def _jobs(kind: str) -> list[Any]:
    """The jobs to enter (outermost first) for one block of calls: a fresh set per block, since a
    job is entered once. Limits are far above what the run spends: nothing is ever refused."""
    from statek import Budget, Job

    huge = 10**15
    if kind == "off":
        return [Job("bench-off", budget=Budget())]
    if kind == "usd":
        return [Job("bench-usd", budget=Budget(usd=huge))]
    return [
        Job("bench-tenant", budget=Budget(usd=huge)),
        Job("bench-all", budget=Budget(usd=huge, tokens=huge, calls=huge, approx_tokens=huge)),
    ]


async def measure(calls: int, block: int = 200) -> dict[str, tuple[float, float]]:
    """p50 ns of one call per kind of job, (wall, thread CPU): ``off`` (no budget), ``usd`` (one
    USD limit) and ``nested`` (a job with all four limits inside a parent with a USD limit)."""
    from statek import LLM_API, ChatHistoryItem
    from statek.llm_api import MAX_TOKENS, LLM_Response
    from statek.telemetry import observe_call, telemetry_config
    from statek.types import CallDetail

    api = LLM_API.get("OPENAI", model=MODEL, api_url="http://127.0.0.1:9/v1/chat/completions", api_key="k")
    history = [
        ChatHistoryItem.user(_PROMPT),
        ChatHistoryItem.assistant("Noted."),
        ChatHistoryItem.user("Go."),
    ]
    params = api._prepare("Be concise.", MODEL, {MAX_TOKENS: 300}, None, history, None, None, False)
    response = LLM_Response(
        "Paris.", CallDetail(3200, 330, None, 1200, 3, 1024, response_model="bench-model-2025"), None
    )

    async def run() -> LLM_Response:
        return response

    instruments = telemetry_config().instruments
    samples: dict[str, list[int]] = {kind: [] for kind in _KINDS}
    cpu_samples: dict[str, list[int]] = {kind: [] for kind in _KINDS}
    wall, cpu = time.perf_counter_ns, time.thread_time_ns

    async def block_of(kind: str, n: int, keep: bool) -> None:
        jobs = _jobs(kind)
        with contextlib.ExitStack() as stack:
            for job in jobs:
                stack.enter_context(job)
            out, out_cpu = samples[kind], cpu_samples[kind]
            for _ in range(n):
                c0 = cpu()
                t0 = wall()
                await observe_call(api, params, run)
                t1 = wall()
                c1 = cpu()
                instruments.flush_histograms()
                if keep:
                    out.append(t1 - t0)
                    out_cpu.append(c1 - c0)

    for kind in _KINDS:  # warm-up: series, caches, price lookups
        await block_of(kind, 500, keep=False)
    for round_ in range(max(calls // block, 2)):
        kinds = _KINDS if round_ % 2 == 0 else tuple(reversed(_KINDS))
        for kind in kinds:
            await block_of(kind, block, keep=True)
    return {kind: (statistics.median(samples[kind]), statistics.median(cpu_samples[kind])) for kind in _KINDS}


_KINDS = ("off", "usd", "nested")


def check_alone(calls: int) -> float:
    """p50 ns of the budget work alone (estimate, reserve, settle; one USD budget), in a tight loop:
    the CPU it costs without the rest of a call around it (so with warm caches)."""
    from decimal import Decimal

    from statek import LLM_API, Budget, ChatHistoryItem, Job
    from statek.executors.budget import reserve_call
    from statek.llm_api import MAX_TOKENS

    api = LLM_API.get("OPENAI", model=MODEL, api_url="http://127.0.0.1:9/v1/chat/completions", api_key="k")
    history = [
        ChatHistoryItem.user(_PROMPT),
        ChatHistoryItem.assistant("Noted."),
        ChatHistoryItem.user("Go."),
    ]
    params = api._prepare("Be concise.", MODEL, {MAX_TOKENS: 300}, None, history, None, None, False)
    cost = Decimal("0.000181")
    samples = []
    with Job("bench-alone", budget=Budget(usd=10**15)) as job:
        for i in range(calls + 500):
            t0 = time.perf_counter_ns()
            held = reserve_call(job, api, params)
            assert held is not None
            held.settle(cost, 1200, 3, 3200, 330)
            t1 = time.perf_counter_ns()
            if i >= 500:
                samples.append(t1 - t0)
    return statistics.median(samples)


REASONING_TOKENS = 40_000


async def overspend(concurrency: int, budget: Any) -> tuple[Any, int, int]:
    """Spend of ``concurrency`` concurrent uncapped calls (a model writing 40,000 tokens unless the
    request caps it) in one job under ``budget``: (total cost, calls sent, calls refused)."""
    from statek import LLM_API, BudgetExceededError, ChatHistoryItem, Job
    from statek.testing import ModelBehavior, ProviderSimulator, SimRequest, Usage

    def usage(request: SimRequest) -> Usage:
        body = request.body if isinstance(request.body, dict) else {}
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        out = min(REASONING_TOKENS, cap) if isinstance(cap, int) else REASONING_TOKENS
        return Usage(input_tokens=30, output_tokens=out, reasoning_tokens=out - 10)

    refused = 0
    async with ProviderSimulator({"o3": ModelBehavior(text="QED", usage=usage, latency=0.05)}) as sim:
        api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="k")

        async def one() -> None:
            nonlocal refused
            try:
                await api.process_request(model="o3", chat_history=[ChatHistoryItem.user("Prove it.")])
            except BudgetExceededError:
                refused += 1

        async with Job("overspend", budget=budget) as job:
            await asyncio.gather(*(one() for _ in range(concurrency)))
        await api.aclose()
    return job.usage.total_cost, job.usage.calls, refused


def report_overspend() -> None:
    from decimal import Decimal

    from statek import Budget
    from statek.metering import PriceRegistry, set_default_registry
    from statek.model_pricing import set_model_pricing

    set_default_registry(PriceRegistry(shipped=False, model_info_dir=None))
    set_model_pricing("OPENAI", "o3", Decimal(2), Decimal(8))  # o3's list price per million tokens
    limit = Decimal(1)
    modes = {
        "estimate (before)": Budget(usd=limit, reserve="estimate"),
        "worst case (after)": Budget(usd=limit),
        "cap_output=True": Budget(usd=limit, cap_output=True),
    }
    print(f"uncapped o3 calls writing {REASONING_TOKENS:,} tokens each, one job, Budget(usd=1):")
    for concurrency in (16, 64, 256):
        for name, budget in modes.items():
            cost, sent, refused = asyncio.run(overspend(concurrency, budget))
            print(
                f"  {concurrency:3d} concurrent, {name:19s}: spent ${cost or 0:.4f} "
                f"({(cost or 0) / limit:4.2f}x the limit), {sent} sent, {refused} refused"
            )


def shared_check(calls: int, redis_url: str | None) -> None:
    """p50 of reserve + settle on a shared budget, in memory and in Redis; Redis commands per call."""
    from decimal import Decimal

    from statek import LLM_API, Budget, ChatHistoryItem, Job
    from statek.executors.budget import reserve_call, set_shared_store
    from statek.executors.budget_redis import RedisStore
    from statek.llm_api import MAX_TOKENS

    api = LLM_API.get("OPENAI", model=MODEL, api_url="http://127.0.0.1:9/v1/chat/completions", api_key="k")
    history = [ChatHistoryItem.user(_PROMPT)]
    params = api._prepare("Be concise.", MODEL, {MAX_TOKENS: 300}, None, history, None, None, False)
    cost = Decimal("0.000181")
    budget = Budget(usd=10**6, period="day", key="tenant:{tenant}")

    def run(label: str) -> float:
        samples = []
        with Job("bench-shared", attributes={"tenant": "bench"}, budget=budget) as job:
            for i in range(calls + 200):
                t0 = time.perf_counter_ns()
                held = reserve_call(job, api, params)
                assert held is not None
                held.settle(cost, 1200, 3, 3200, 330)
                if i >= 200:
                    samples.append(time.perf_counter_ns() - t0)
        p50 = statistics.median(samples)
        print(f"  {label:34s}: {p50 / 1000:8.2f} us p50 per call (reserve + settle)")
        return p50

    print(f"shared budget (Budget(key=...)), {calls} calls:")
    set_shared_store(None)
    run("in-process store")
    started = None
    if redis_url is None:
        started, redis_url = _start_redis()
    try:
        store = RedisStore.from_url(redis_url)
        set_shared_store(store)
        before = _round_trips(store)
        run(f"Redis on loopback ({redis_url})")
        after = _round_trips(store)
        # Commands a script runs inside Redis are not round trips: count the scripts the client sent.
        trips = (after - before) / (calls + 200)
        print(f"  Redis round trips per call         : {trips:8.2f} (one reserve, one settle)")
    finally:
        set_shared_store(None)
        if started is not None:
            started.terminate()
            started.wait()


def _round_trips(store: Any) -> int:
    stats = store.client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval", "script|load")
    )


def _start_redis() -> tuple[Any, str]:
    import shutil
    import socket
    import subprocess

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--shared needs --redis-url or redis-server (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    for _ in range(200):
        try:
            if redis.Redis(port=port).ping():
                break
        except redis.RedisError:
            time.sleep(0.02)
    return process, f"redis://127.0.0.1:{port}/0"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per kind of job")
    parser.add_argument("--quick", action="store_true", help="4000 calls per kind of job")
    parser.add_argument("--overspend", action="store_true", help="overspend of concurrent uncapped calls")
    parser.add_argument("--shared", action="store_true", help="a shared budget's check, in memory and Redis")
    parser.add_argument("--redis-url", default=None, help="Redis for --shared (default: start redis-server)")
    args = parser.parse_args(argv)
    calls = 4000 if args.quick else args.calls
    if args.overspend:
        report_overspend()
        return
    if args.shared:
        _telemetry_on()
        shared_check(min(calls, 5000), args.redis_url)
        return
    _telemetry_on()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} CPUs (load average {load}), Python {sys.version.split()[0]}; {calls} calls per kind"
    )
    p50 = asyncio.run(measure(calls))
    alone = check_alone(calls)
    for clock, index in (("wall", 0), ("CPU", 1)):
        off = p50["off"][index]
        print(f"call p50 ({clock:4s}), job without budget:              {off / 1000:7.2f} us")
        for kind, label in (("usd", "job with a USD budget"), ("nested", "all limits, in a budgeted parent")):
            on = p50[kind][index]
            print(
                f"call p50 ({clock:4s}), {label + ':':33s}{on / 1000:7.2f} us   budget check adds "
                f"{(on - off) / 1000:5.2f} us (ratio {on / off:4.2f}x)   (goal <= 5 us)"
            )
    print(f"the budget work alone (estimate, reserve, settle) in a tight loop: {alone / 1000:5.2f} us p50")


if __name__ == "__main__":
    main()
