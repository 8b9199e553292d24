"""``LLM_API.get(...)`` per call, as applications written for the original STATEK do, against reusing one
instance, and against building a new instance per call (what an uncached ``get`` costs).

Each pattern makes whole calls to the loopback simulator (statek.testing, OpenAI wire, in a server
thread), metered as usual. The patterns run interleaved in shuffled blocks so that machine drift
spreads over all of them; the printed ratios are p50 per call against the reused instance, from this
one run. Goal (issue 8): ``get()`` + one call within 10 % of reusing one instance.

    python -m benchmarks get_cache [--calls 1500] [--block 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from statek import LLM_API, ChatHistoryItem
from statek.providers import registry
from statek.testing import ModelBehavior, ProviderSimulator

MODEL = "gpt-4o-mini"
HISTORY = [ChatHistoryItem.user("Capital of France?")]


async def _measure(calls: int, block: int, url: str) -> dict[str, list[float]]:
    settings = {"api_url": url, "api_key": "bench-key"}
    reused = LLM_API.get("OPENROUTER", **settings)

    async def with_reused() -> None:
        await reused.process_request(model=MODEL, chat_history=HISTORY)

    async def with_get() -> None:
        await LLM_API.get("OPENROUTER", **settings).process_request(model=MODEL, chat_history=HISTORY)

    async def with_new_instance() -> None:
        registry._instances.clear()  # an uncached get: a new instance and connection pool per call
        api = LLM_API.get("OPENROUTER", **settings)
        try:
            await api.process_request(model=MODEL, chat_history=HISTORY)
        finally:
            await api.aclose()

    patterns: dict[str, Callable[[], Awaitable[None]]] = {
        "reused instance": with_reused,
        "LLM_API.get per call": with_get,
        "new instance per call": with_new_instance,
    }
    for run in patterns.values():  # warm-up: connections, pricing tables, telemetry
        for _ in range(20):
            await run()
    samples: dict[str, list[float]] = {name: [] for name in patterns}
    order = [name for name in patterns for _ in range(max(calls // block, 1))]
    random.Random(7).shuffle(order)
    for name in order:
        run = patterns[name]
        for _ in range(block):
            started = time.perf_counter()
            await run()
            samples[name].append(time.perf_counter() - started)
    return samples


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks get_cache")
    parser.add_argument("--calls", type=int, default=1500, help="calls per pattern")
    parser.add_argument("--block", type=int, default=50, help="calls per interleaved block")
    args = parser.parse_args(list(argv))
    with ProviderSimulator({MODEL: ModelBehavior(text="Paris.", input_tokens=20, output_tokens=3)}) as sim:
        samples = asyncio.run(_measure(args.calls, args.block, sim.openai_url))
    base = statistics.median(samples["reused instance"])
    print(f"{'pattern':<24} {'p50 per call':>14} {'x reused':>9}")
    for name, values in samples.items():
        p50 = statistics.median(values)
        print(f"{name:<24} {p50 * 1e6:>11.0f} us {p50 / base:>8.2f}x")


if __name__ == "__main__":
    main()
