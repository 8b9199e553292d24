"""Metering overhead against raw httpx with the same pool layout, interleaved in one run.

Every figure compares clients measured in the same run, in rounds; in each round every
(scenario, client) cell runs one block, in a freshly shuffled order, so machine drift (other
processes, CPU frequency) lands on all clients alike. Calls go to the loopback chat-completions
server of :mod:`benchmarks._loopback` (a child process).

Clients:

- ``statek``: ``api.process_request`` inside a new ``Job`` per call (as a server uses it), with
  the full telemetry stack (SDK tracer with a ``BatchSpanProcessor``, SDK meter with the Prometheus
  reader and the OTLP metric push; exporters discard), a priced model;
- ``statek long job``: the same, all calls of a block in one ``Job``;
- ``statek gc.freeze``: ``statek`` with ``gc.freeze()`` for the block (as a server would call it
  once after start-up; ``gc.unfreeze()`` after the block keeps the other cells unfrozen);
- ``raw sharded``: raw ``httpx`` posting the same body and parsing the JSON answer, through
  statek's own pool layout (``statek._http.ClientPool``: 16 clients x 16 connections) - the
  baseline every ratio is taken against;
- ``raw transport``: the same body sent straight to 16 httpx transports of 16 connections, past
  the client layer, as statek's own pool clients send (issue 25, sixth pass): the like-for-like
  baseline (hot and concurrent cells; its ratios are printed against ``raw sharded`` too);
- ``raw single``: one ``httpx.AsyncClient`` with 256 connections, for reference (sequential and
  at 64 only: httpcore's pool scan makes it crawl at 256 and 1,000).

Scenarios: sequential calls back to back (``hot``), sequential with a 2 ms pause between calls
(``paused``: caches and branch predictors go cold, as on a real server), and throughput at
concurrency 64 / 256 / 1,000. The wrapper's own time (``Job`` enter/exit plus ``observe_call``
minus the provider step it awaits; no await inside, so nothing else runs in it) is measured in
extra ``statek timed`` cells, so the timing hook does not weigh on the ``statek`` cells.

Goals (issue 13): overhead <= 50 us p50 over raw sharded in the hot loop with a Job per call;
>= 0.9x its throughput at 64, 256 and 1,000; wrapper's own time p99.9 <= 200 us, max <= 1 ms.

    python -m benchmarks overhead [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from benchmarks._loopback import (
    MODEL,
    QUESTION,
    SYSTEM,
    LoopbackServer,
    RawClient,
    RawTransportClient,
    percentile,
    telemetry_on,
)

__all__ = ["LoopbackServer", "MODEL", "main", "run_suite"]

PAUSE_S = 0.002
CONCURRENCY = (64, 256, 1000)


@dataclass(frozen=True)
class Sizes:
    """Block sizes: sequential calls per block, and calls per throughput block at each concurrency."""

    rounds: int
    hot: int
    paused: int
    per_task: dict[int, int]
    single_at_64: bool
    """Also run the single-client reference at concurrency 64 (slow: httpcore's pool scan)."""


QUICK = Sizes(rounds=3, hot=200, paused=80, per_task={64: 8, 256: 4, 1000: 2}, single_at_64=False)
FULL = Sizes(rounds=7, hot=600, paused=240, per_task={64: 30, 256: 12, 1000: 4}, single_at_64=True)


@dataclass
class Cell:
    """One (scenario, client) pair and what its blocks measured."""

    scenario: str
    client: str
    latencies_us: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    own_us: list[float] = field(default_factory=list)
    own_cpu_us: list[float] = field(default_factory=list)
    block_p50_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    """Client-process CPU per call (all threads: exporters included), one figure per block."""
    cpu_rates: list[float] = field(default_factory=list)
    """Calls per second of client-process CPU, one figure per concurrent block."""


# ----------------------------------------------------------------------------- the wrapper's own time
_own_ns: ContextVar[list[int] | None] = ContextVar("bench_own_ns", default=None)
_clock = time.perf_counter_ns


def _install_own_time_hook() -> None:
    """Wrap ``statek.telemetry.observe_call`` (looked up per call by ``LLM_API.process_request``) to
    add its time minus the awaited provider step to the list in ``_own_ns``, when one is set (by
    :func:`_clock`: wall time, or this thread's CPU time when measuring CPU)."""
    from statek import telemetry

    original = telemetry.observe_call

    async def timed(
        api: Any, params: Any, run: Callable[[], Awaitable[Any]] | None = None, **kwargs: Any
    ) -> Any:
        sink = _own_ns.get()
        if sink is None:
            return await original(api, params, run, **kwargs)
        inner = 0

        clock = _clock

        async def timed_run() -> Any:
            nonlocal inner
            started = clock()
            try:  # the provider step: run, or by default the API's own send (as observe_call does)
                return await (run() if run is not None else api._send(params, kwargs.get("payload")))
            finally:
                inner += clock() - started

        started = clock()
        try:
            return await original(api, params, timed_run, **kwargs)
        finally:
            sink.append(clock() - started - inner)

    telemetry.observe_call = timed  # type: ignore[assignment]


# ----------------------------------------------------------------------------- one call per client
class Clients:
    """The ways of making one call that the cells compare."""

    def __init__(self, url: str) -> None:
        from statek import LLM_API, ChatHistoryItem

        self.api = LLM_API.get("OPENAI", model=MODEL, api_url=url, api_key="bench-key")
        self.history = [ChatHistoryItem.user(QUESTION)]
        body = json.dumps(
            self.api.preview_request(SYSTEM, MODEL, chat_history=self.history), separators=(",", ":")
        ).encode()
        self.sharded = RawClient(url, body, sharded=True)
        self.transport = RawTransportClient(url, body)
        self.single = RawClient(url, body, sharded=False)

    async def statek_call(self) -> Any:
        return await self.api.process_request(SYSTEM, MODEL, chat_history=self.history)

    async def statek_job_call(self) -> Any:
        from statek.executors.job import Job

        async with Job("bench-request"):
            return await self.statek_call()

    async def statek_timed_call(self, own: list[float], own_cpu: list[float]) -> Any:
        """A Job per call; add the wrapper's own wall time in µs to ``own``, and its CPU time (this
        thread's: not inflated when the OS runs another process meanwhile) to ``own_cpu``."""
        global _clock
        for clock, out in ((time.perf_counter_ns, own), (time.thread_time_ns, own_cpu)):
            _clock = clock
            await self._timed_once(clock, out)
        _clock = time.perf_counter_ns

    async def _timed_once(self, clock: Callable[[], int], out: list[float]) -> None:
        from statek.executors.job import Job

        sink: list[int] = []
        token = _own_ns.set(sink)
        try:
            t0 = clock()
            job = Job("bench-request")
            job.__enter__()
            t1 = clock()
            try:
                await self.statek_call()
            finally:
                t2 = clock()
                job.__exit__(None, None, None)
                t3 = clock()
        finally:
            _own_ns.reset(token)
        out.append(((t1 - t0) + (t3 - t2) + sum(sink)) / 1000)

    def call_for(self, client: str, own: list[float], own_cpu: list[float]) -> Callable[[], Awaitable[Any]]:
        if client in ("statek", "statek gc.freeze"):
            return self.statek_job_call
        if client == "statek long job":
            return self.statek_call
        if client == "statek timed":
            return lambda: self.statek_timed_call(own, own_cpu)
        if client == "raw sharded":
            return self.sharded.call
        if client == "raw transport":
            return self.transport.call
        if client == "raw single":
            return self.single.call
        raise ValueError(client)

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.sharded.aclose()
        await self.transport.aclose()
        await self.single.aclose()


def cells(full: bool = True) -> list[Cell]:
    out: list[Cell] = []
    statek_kinds = ("statek", "statek long job", "statek gc.freeze")
    for client in (*statek_kinds, "statek timed", "raw sharded", "raw transport", "raw single"):
        out.append(Cell("hot", client))
    for client in ("statek", "statek long job", "raw sharded", "raw single"):
        out.append(Cell("paused", client))
    for n in CONCURRENCY:
        clients = [*statek_kinds, "raw sharded", "raw transport"]
        if n == 64 and full:
            clients.append("raw single")
        if n == 256:
            clients.append("statek timed")
        out.extend(Cell(f"c{n}", client) for client in clients)
    return out


MINI_BLOCK = 20
"""Sequential calls a client makes before the next client takes over (in a shuffled order)."""


def _freeze(cell: Cell) -> bool:
    if cell.client == "statek gc.freeze":
        gc.freeze()
        return True
    return False


async def run_sequential(clients: Clients, group: list[Cell], calls: int, rng: random.Random) -> None:
    """One round of a sequential scenario: every client of ``group`` makes ``calls`` calls, in mini
    blocks of :data:`MINI_BLOCK` taken in a new shuffled order each time, so two clients' samples
    are never more than a few milliseconds apart."""
    from statek.executors.job import Job

    pause = group[0].scenario == "paused"
    this_round: dict[str, list[float]] = {cell.client: [] for cell in group}
    for _ in range(max(1, calls // MINI_BLOCK)):
        order = list(group)
        rng.shuffle(order)
        for cell in order:
            call = clients.call_for(cell.client, cell.own_us, cell.own_cpu_us)
            frozen = _freeze(cell)
            job = Job("bench-long") if cell.client == "statek long job" else None
            if job is not None:
                job.__enter__()
            try:
                cpu = time.process_time_ns()
                for _ in range(MINI_BLOCK):
                    started = time.perf_counter_ns()
                    await call()
                    this_round[cell.client].append((time.perf_counter_ns() - started) / 1000)
                    if pause:
                        await asyncio.sleep(PAUSE_S)
                cell.cpu_us.append((time.process_time_ns() - cpu) / MINI_BLOCK / 1000)
            finally:
                if job is not None:
                    job.__exit__(None, None, None)
                if frozen:
                    gc.unfreeze()
    for cell in group:
        cell.latencies_us.extend(this_round[cell.client])
        cell.block_p50_us.append(statistics.median(this_round[cell.client]))


async def run_concurrent(clients: Clients, cell: Cell, per_task: int) -> None:
    """One block of calls at the cell's concurrency; append its rate (calls/s)."""
    from statek.executors.job import Job

    call = clients.call_for(cell.client, cell.own_us, cell.own_cpu_us)
    concurrency = int(cell.scenario[1:])
    frozen = _freeze(cell)
    job = Job("bench-long") if cell.client == "statek long job" else None
    if job is not None:
        job.__enter__()

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    try:
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cell.rates.append(concurrency * per_task / (time.perf_counter() - started))
        cell.cpu_rates.append(concurrency * per_task / (time.process_time() - cpu))
    finally:
        if job is not None:
            job.__exit__(None, None, None)
        if frozen:
            gc.unfreeze()


async def run_suite(url: str, sizes: Sizes, seed: int) -> list[Cell]:
    """All scenarios for ``sizes.rounds`` rounds, each round in a new shuffled order."""
    rng = random.Random(seed)
    clients = Clients(url)
    all_cells = cells(sizes.single_at_64)
    groups = {s: [c for c in all_cells if c.scenario == s] for s in ("hot", "paused")}
    concurrent = [c for c in all_cells if c.scenario not in groups]
    units: list[Any] = [*groups.values(), *concurrent]

    async def run_unit(unit: Any, scale: float) -> None:
        if isinstance(unit, list):
            calls = sizes.hot if unit[0].scenario == "hot" else sizes.paused
            await run_sequential(clients, unit, max(MINI_BLOCK, int(calls * scale)), rng)
        else:
            await run_concurrent(clients, unit, max(1, int(sizes.per_task[int(unit.scenario[1:])] * scale)))

    print(f"warming up {len(all_cells)} cells", file=sys.stderr)
    for unit in units:  # warm-up: pools, series caches, price lookups; results dropped below
        await run_unit(unit, 0.1)
    for cell in all_cells:
        for samples in (
            cell.latencies_us,
            cell.rates,
            cell.own_us,
            cell.own_cpu_us,
            cell.block_p50_us,
            cell.cpu_us,
            cell.cpu_rates,
        ):
            samples.clear()
    started = time.perf_counter()
    for round_ in range(sizes.rounds):
        rng.shuffle(units)
        for unit in units:
            await run_unit(unit, 1.0)
        print(
            f"round {round_ + 1}/{sizes.rounds} done at {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    await clients.aclose()
    return all_cells


# ----------------------------------------------------------------------------- the SDK's own span
_SPAN_START: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": MODEL,
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "gen_ai.output.type": "text",
    "statek.job.id": "bench-request",
}
_SPAN_END: dict[str, Any] = {
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 3,
    "statek.cost.status": "calculated",
    "statek.bytes.sent": 200,
    "statek.bytes.received": 330,
    "gen_ai.response.model": "bench-model-2025",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.usage.cache_read.input_tokens": 1024,
    "statek.cost.usd": 0.0001,
}


def span_floor_us(calls: int = 5000) -> float:
    """p50 thread-CPU us of what the OpenTelemetry SDK itself costs for one call's span, with the
    tracer statek uses here (``BatchSpanProcessor``): start with the attributes statek sets at the
    start of a chat call, make it current and restore, set the answer's attributes, end. Every
    statek figure above includes it; no metering wrapper that keeps a span per call can cost less."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    from statek.telemetry import telemetry_config

    tracer = telemetry_config().tracer
    clock = time.thread_time_ns
    samples = []
    for i in range(calls + 500):
        started = clock()
        span = tracer.start_span(f"chat {MODEL}", kind=SpanKind.CLIENT, attributes=_SPAN_START)
        token = otel_context.attach(trace.set_span_in_context(span))
        otel_context.detach(token)
        span.set_attributes(_SPAN_END)
        span.end()
        if i >= 500:
            samples.append((clock() - started) / 1000)
    return statistics.median(samples)


# ----------------------------------------------------------------------------- report
def _by(all_cells: list[Cell]) -> dict[tuple[str, str], Cell]:
    return {(c.scenario, c.client): c for c in all_cells}


def _spread(values: list[float]) -> str:
    return f"{min(values):.0f}..{max(values):.0f}" if values else "-"


_SEQUENTIAL_ROWS = (
    "statek",
    "statek long job",
    "statek gc.freeze",
    "raw sharded",
    "raw transport",
    "raw single",
)
"""The clients of the sequential tables (latency, CPU per call), in print order."""


def report(all_cells: list[Cell], sizes: Sizes, seed: int) -> dict[str, Any]:
    """Print the tables; return the goal figures."""
    by = _by(all_cells)
    goals: dict[str, Any] = {}
    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {sizes.rounds} rounds, "
        f"shuffled (seed {seed}); server in a child process on loopback"
    )
    print("\nsequential latency, us (p50 over all blocks; overhead = p50 - raw sharded p50, per-round range)")
    print(
        f"{'client':<18}{'hot p50':>9}{'hot p99':>9}{'overhead':>10}{'range':>11}"
        f"{'paused p50':>12}{'overhead':>10}{'range':>11}"
    )
    for client in _SEQUENTIAL_ROWS:
        row = f"{client:<18}"
        for scenario in ("hot", "paused"):
            cell, base = by.get((scenario, client)), by[(scenario, "raw sharded")]
            if cell is None:
                row += (
                    f"{'-':>9}{'-':>9}{'-':>10}{'-':>11}"
                    if scenario == "hot"
                    else f"{'-':>12}{'-':>10}{'-':>11}"
                )
                continue
            p50 = statistics.median(cell.latencies_us)
            diff = p50 - statistics.median(base.latencies_us)
            per_round = [a - b for a, b in zip(cell.block_p50_us, base.block_p50_us)]
            if scenario == "hot":
                row += f"{p50:9.0f}{percentile(cell.latencies_us, 0.99):9.0f}{diff:+10.0f}{_spread(per_round):>11}"
            else:
                row += f"{p50:12.0f}{diff:+10.0f}{_spread(per_round):>11}"
            if client == "statek":
                goals[f"overhead_{scenario}_us"] = diff
        print(row)

    print("\nthroughput, calls/s (median of rounds) and x raw sharded (median of per-round ratios, range)")
    print(f"{'client':<18}" + "".join(f"{'c' + str(n):>10}{'x raw':>7}{'range':>12}" for n in CONCURRENCY))
    for client in (
        "statek",
        "statek long job",
        "statek gc.freeze",
        "statek timed",
        "raw sharded",
        "raw transport",
        "raw single",
    ):
        row = f"{client:<18}"
        for n in CONCURRENCY:
            cell, base = by.get((f"c{n}", client)), by[(f"c{n}", "raw sharded")]
            if cell is None:
                row += f"{'-':>10}{'-':>7}{'-':>12}"
                continue
            ratios = [a / b for a, b in zip(cell.rates, base.rates)]
            ratio = statistics.median(ratios)
            row += f"{statistics.median(cell.rates):10.0f}{ratio:7.2f}{min(ratios):6.2f}..{max(ratios):4.2f}"
            if client == "statek":
                goals[f"throughput_c{n}_x"] = ratio
        print(row)

    print(
        "\nclient CPU per call, us (process CPU incl. exporter threads; median of blocks) - robust to a busy machine"
    )
    print(
        f"{'client':<18}{'hot':>8}{'+ over raw':>12}{'paused':>9}{'+ over raw':>12}"
        + "".join(f"{'calls/CPU-s c' + str(n):>20}{'x raw':>7}" for n in CONCURRENCY)
    )
    for client in _SEQUENTIAL_ROWS:
        row = f"{client:<18}"
        for scenario in ("hot", "paused"):
            cell, base = by.get((scenario, client)), by[(scenario, "raw sharded")]
            if cell is None:
                row += f"{'-':>8}{'-':>12}" if scenario == "hot" else f"{'-':>9}{'-':>12}"
                continue
            cpu, diff = (
                statistics.median(cell.cpu_us),
                statistics.median(cell.cpu_us) - statistics.median(base.cpu_us),
            )
            row += f"{cpu:8.0f}{diff:+12.0f}" if scenario == "hot" else f"{cpu:9.0f}{diff:+12.0f}"
            if client == "statek":
                goals[f"cpu_overhead_{scenario}_us"] = diff
        for n in CONCURRENCY:
            cell, base = by.get((f"c{n}", client)), by[(f"c{n}", "raw sharded")]
            if cell is None:
                row += f"{'-':>20}{'-':>7}"
                continue
            ratio = statistics.median([a / b for a, b in zip(cell.cpu_rates, base.cpu_rates)])
            row += f"{statistics.median(cell.cpu_rates):20.0f}{ratio:7.2f}"
            if client == "statek":
                goals[f"cpu_throughput_c{n}_x"] = ratio
        print(row)

    print("\nwrapper's own time per call (Job enter/exit + observe_call minus the provider step), us")
    print(f"{'cell':<18}{'clock':>7}{'calls':>7}{'p50':>8}{'p99':>8}{'p99.9':>8}{'max':>9}")
    for scenario in ("hot", "c256"):
        cell = by[(scenario, "statek timed")]
        for clock, own in (("wall", cell.own_us), ("CPU", cell.own_cpu_us)):
            print(
                f"{scenario:<18}{clock:>7}{len(own):7d}{percentile(own, 0.5):8.1f}{percentile(own, 0.99):8.1f}"
                f"{percentile(own, 0.999):8.1f}{max(own):9.1f}"
            )
            goals[f"own_{clock}_{scenario}_p999_us"] = percentile(own, 0.999)
            goals[f"own_{clock}_{scenario}_max_us"] = max(own)

    floor = span_floor_us()
    goals["span_floor_us"] = floor
    print(
        f"\nthe OpenTelemetry SDK's own span per call (start with the call's attributes, attach, "
        f"end with the answer's), thread CPU p50: {floor:.1f} us - in every statek figure above"
    )

    print("\ngoals")
    checks = [
        ("overhead hot p50 <= 50 us", goals["overhead_hot_us"], goals["overhead_hot_us"] <= 50),
        ("overhead paused p50 (reported)", goals["overhead_paused_us"], None),
        ("CPU overhead hot <= 50 us", goals["cpu_overhead_hot_us"], goals["cpu_overhead_hot_us"] <= 50),
        ("CPU overhead paused (reported)", goals["cpu_overhead_paused_us"], None),
        *(
            (f"throughput c{n} >= 0.9x", goals[f"throughput_c{n}_x"], goals[f"throughput_c{n}_x"] >= 0.9)
            for n in CONCURRENCY
        ),
        *(
            (
                f"calls per CPU-s c{n} >= 0.9x",
                goals[f"cpu_throughput_c{n}_x"],
                goals[f"cpu_throughput_c{n}_x"] >= 0.9,
            )
            for n in CONCURRENCY
        ),
        *(
            (
                f"own {c} time {s} p99.9 <= 200 us",
                goals[f"own_{c}_{s}_p999_us"],
                goals[f"own_{c}_{s}_p999_us"] <= 200,
            )
            for c in ("wall", "CPU")
            for s in ("hot", "c256")
        ),
        *(
            (
                f"own {c} time {s} max <= 1000 us",
                goals[f"own_{c}_{s}_max_us"],
                goals[f"own_{c}_{s}_max_us"] <= 1000,
            )
            for c in ("wall", "CPU")
            for s in ("hot", "c256")
        ),
    ]
    for name, value, ok in checks:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        print(f"  {name:<34}{value:10.2f}  {verdict}")
    return goals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 3 rounds of small blocks (~1 min)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3 quick, 7 full)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the shuffled order")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(args.rounds, sizes.hot, sizes.paused, sizes.per_task, sizes.single_at_64)
    telemetry_on()
    _install_own_time_hook()
    with LoopbackServer() as server:
        all_cells = asyncio.run(run_suite(server.url, sizes, args.seed))
    report(all_cells, sizes, args.seed)


if __name__ == "__main__":
    main()
