"""Shared budgets on a real Redis (Debian's redis-server), with worker processes against the simulator.

- 4 worker processes x 64 concurrent calls on one shared daily budget: total spend <= the limit,
  Redis's figure equals the sum of the calls' real costs, and every refusal was justified when it
  happened (spent + in flight + the call > limit: no phantom refusals).
- A worker SIGKILLed mid-call: its reservation returns within one lease.
- Redis restarted mid-load (AOF persistence): calls during the outage are refused (``on_error=refuse``),
  and afterwards Redis's spend equals the sum of the costs the workers saw: nothing lost, nothing
  counted twice (settles that failed are retried; the retries count once).
- A settle command sent again counts once.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import free_port

from statek.executors.budget_redis import RedisStore
from statek.executors.budget_store import Account, Claim, window_of
from statek.testing import ModelBehavior, ProviderSimulator, SimRequest, Usage

pytestmark = pytest.mark.e2e

REDIS_INSTALL = "apt-get update && apt-get install -y --no-install-recommends redis-server"
MODEL = "o3"  # priced by the workers at $2 / $8 per million tokens
CAP = 2_000  # each call's MAX_TOKENS: it writes exactly that (the simulator honours the cap)
LIMIT = Decimal("1.50")
ROOT = Path(__file__).resolve().parents[2]


class Redis:
    """A redis-server on a free loopback port, with its data in ``folder`` (AOF, fsync always)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(f"redis-server is missing: {REDIS_INSTALL}")
        subprocess.run(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.folder),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.folder / "redis.pid"),
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        pytest.fail("redis-server did not answer PING within 10 s")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        pid_file = self.folder / "redis.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)  # redis-server flushes its AOF and exits
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@pytest.fixture(name="redis_server")
def redis_fixture(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


def _capped_usage(request: SimRequest) -> Usage:
    body = request.body if isinstance(request.body, dict) else {}
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or 40_000
    return Usage(input_tokens=20, output_tokens=int(cap), reasoning_tokens=int(cap) - 1)


@pytest.fixture(name="sim")
async def sim_fixture() -> AsyncIterator[ProviderSimulator]:
    behaviors = {
        MODEL: ModelBehavior(text="ok", usage=_capped_usage, latency=0.05),
        "slow": ModelBehavior(text="ok", usage=_capped_usage, latency=60.0),
        "steady": ModelBehavior(text="ok", usage=_capped_usage, latency=0.5),
    }
    async with ProviderSimulator(behaviors, seed=9) as sim:
        yield sim


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from decimal import Decimal
    from statek import LLM_API, Budget, BudgetExceededError, ChatHistoryItem, Job
    from statek.executors.budget import shared_store
    from statek.llm_api import MAX_TOKENS
    from statek.metering import PriceRegistry, set_default_registry
    from statek.model_pricing import set_model_pricing

    url, worker, calls, model, cap, limit = sys.argv[1:7]
    set_default_registry(PriceRegistry(shipped=False, model_info_dir=None))
    set_model_pricing("OPENAI", "o3", 2, 8)
    set_model_pricing("OPENAI", "slow", 2, 8)
    set_model_pricing("OPENAI", "steady", 2, 8)

    async def main():
        api = LLM_API.get("OPENAI", api_url=url, api_key="test-key")
        budget = Budget(usd=limit, period="day", key="fleet:{team}")
        out = {"costs": [], "refused": [], "store": 0}

        async def one(number):
            async with Job(f"w{worker}-{number}", attributes={"team": "blue"}, budget=budget):
                try:
                    answer = await api.process_request(
                        model=model, chat_history=[ChatHistoryItem.user("think")], metadata={MAX_TOKENS: int(cap)}
                    )
                    out["costs"].append(str(answer.detail.priced_cost))
                except BudgetExceededError as refused:
                    if refused.reason == "store":
                        out["store"] += 1
                    else:
                        out["refused"].append([str(refused.spent), str(refused.reserved), str(refused.estimate), str(refused.limit)])

        await asyncio.gather(*(one(n) for n in range(int(calls))))
        await api.aclose()
        store = shared_store()
        if store is not None:
            store.close(timeout=10)  # settles that failed during an outage land before we exit
        print(json.dumps(out))

    asyncio.run(main())
    """
)


async def _worker(
    sim: ProviderSimulator, redis_url: str, worker: int, calls: int, model: str = MODEL, lease: float = 30
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "STATEK_BUDGET_STORE": f"{redis_url}?lease={lease}&on_error=refuse",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        sim.openai_url,
        str(worker),
        str(calls),
        model,
        str(CAP),
        str(LIMIT),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )


async def _results(process: asyncio.subprocess.Process) -> dict[str, object]:
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0
    return json.loads(stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def _store(url: str) -> RedisStore:
    return RedisStore.from_url(url)


def _spent(url: str) -> dict[str, int]:
    return _store(url).status("fleet:blue", window_of("day"))


def _check(outputs: list[dict[str, object]], url: str) -> Decimal:
    costs = [Decimal(cost) for out in outputs for cost in out["costs"]]  # type: ignore[attr-defined]
    total = sum(costs, Decimal(0))
    assert total <= LIMIT
    status = _spent(url)
    # Redis keeps nano-dollars rounded up per call: its figure is the real one to within a nano each.
    assert total <= Decimal(status["spent_pico"]).scaleb(-12) <= total + Decimal(len(costs)).scaleb(-9)
    assert status["spent_calls"] == len(costs) and status["reserved_calls"] == 0
    for spent, reserved, needed, limit in (r for out in outputs for r in out["refused"]):  # type: ignore[attr-defined]
        assert Decimal(spent) + Decimal(reserved) + Decimal(needed) > Decimal(limit)  # no phantom refusal
    return total


async def test_four_workers_by_64_calls_never_pass_the_shared_daily_limit(
    redis_server: Redis, sim: ProviderSimulator
) -> None:
    workers = [await _worker(sim, redis_server.url, n, 64) for n in range(4)]
    outputs = [await _results(w) for w in workers]
    total = _check(outputs, redis_server.url)
    # The budget was really used: at $0.016 a call, $1.50 holds 93 calls; at least 90 went.
    assert total > LIMIT - Decimal("0.05")
    assert sim.request_count == sum(len(out["costs"]) for out in outputs)  # type: ignore[arg-type]


async def test_a_sigkilled_workers_reservation_returns_within_one_lease(
    redis_server: Redis, sim: ProviderSimulator
) -> None:
    lease = 2.0
    victim = await _worker(sim, redis_server.url, 9, 1, model="slow", lease=lease)
    deadline = time.monotonic() + 30
    while _spent(redis_server.url).get("reserved_calls", 0) < 1:
        assert time.monotonic() < deadline, "the worker never reserved"
        await asyncio.sleep(0.05)
    await asyncio.sleep(lease)  # its renewals have kept the lease alive past its first term
    assert _spent(redis_server.url)["reserved_calls"] == 1
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    await victim.wait()
    while _spent(redis_server.url).get("reserved_calls", 0) != 0:
        await asyncio.sleep(0.05)
    returned = time.monotonic() - killed
    assert returned <= lease + 0.5
    assert _spent(redis_server.url)["lease_expiries"] == 1


async def test_redis_restarted_mid_load_loses_nothing_and_counts_nothing_twice(
    redis_server: Redis, sim: ProviderSimulator
) -> None:
    workers = [await _worker(sim, redis_server.url, n, 64, model="steady") for n in range(2)]
    deadline = time.monotonic() + 30
    while _spent(redis_server.url).get("reserved_calls", 0) < 10:  # calls in flight
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    redis_server.stop()
    await asyncio.sleep(1.0)  # the outage: reserves refuse (on_error=refuse), settles wait
    redis_server.start()
    outputs = [await _results(w) for w in workers]
    _check(outputs, redis_server.url)
    refused_by_outage = sum(out["store"] for out in outputs)  # type: ignore[misc]
    settled = sum(len(out["costs"]) for out in outputs)  # type: ignore[arg-type]
    assert refused_by_outage > 0 and settled > 0


def test_a_settle_sent_again_counts_once(redis_server: Redis) -> None:
    store = _store(redis_server.url)
    account = (Account("retry", "", 10**12, None, None, None, True),)
    claim = Claim("one-call", 10**9, 10, 10)
    store.reserve(account, claim)
    for _ in range(3):  # e.g. the reply was lost and the client sent the command again
        store.settle(account, claim, 5 * 10**8, 20, 100, False)
    status = store.status("retry", "")
    assert status["spent_pico"] == 5 * 10**8 and status["spent_calls"] == 1 and status["reserved_calls"] == 0
