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

    python -m benchmarks.budget [--calls 20000] [--quick]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per kind of job")
    parser.add_argument("--quick", action="store_true", help="4000 calls per kind of job")
    args = parser.parse_args(argv)
    calls = 4000 if args.quick else args.calls
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
