"""Every call counts and every reservation ends, whatever path the call takes: answers without
usage, output caps a budget sets, providers that return nothing, cancellation, abandoned streams."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

import statek
from statek import LLM_API, Budget, BudgetExceededError, ChatHistoryItem, Job
from statek.executors.budget import BudgetLedger
from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.telemetry import current_retry_hook
from statek.testing import ModelBehavior, ProviderSimulator, SimRequest, Usage

MODEL = "stream-model"  # unknown to statek's tables: uncapped calls reserve 32,768 output tokens
PRICE_IN, PRICE_OUT = Decimal(2), Decimal(8)


def _honest_usage(request: SimRequest) -> Usage:
    """Writes 40,000 tokens unless the request caps it, like a reasoning model."""
    body = request.body if isinstance(request.body, dict) else {}
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    return Usage(input_tokens=10, output_tokens=min(40_000, cap) if isinstance(cap, int) else 40_000)


@pytest.fixture(autouse=True)
def prices() -> Iterator[None]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    set_model_pricing("OPENAI", MODEL, PRICE_IN, PRICE_OUT)
    set_model_pricing("OPENAI", "slow", PRICE_IN, PRICE_OUT)
    yield
    set_default_registry(previous)


@pytest.fixture(name="sim")
async def sim_fixture() -> AsyncIterator[ProviderSimulator]:
    behaviors = {
        MODEL: ModelBehavior(text="streamed words", usage=_honest_usage, stream_usage="never", latency=0.01),
        "slow": ModelBehavior(text="slow", usage=_honest_usage, latency=30),
    }
    async with ProviderSimulator(behaviors, seed=2) as sim:
        yield sim


def _ledger(job: Job) -> BudgetLedger:
    assert job.budget is not None
    return job.budget


async def test_openai_sdk_streams_without_usage_count_at_their_reservation_and_use_up_a_token_budget(
    sim: ProviderSimulator,
) -> None:
    """The openai SDK's default stream carries no usage: each call counts at its reservation (the
    prompt estimate plus 1,000 capped output tokens), so a 5,000-token budget stops the job after
    four calls, not after 100; the job's usage shows the reserved cost, never $0."""
    async with statek.async_http_client(provider="OPENAI", backend="httpx") as http:
        client = openai.AsyncOpenAI(
            base_url=sim.openai_url.removesuffix("/chat/completions"),
            api_key="k",
            http_client=http,
            max_retries=0,
        )
        sent = 0
        async with Job("no-usage", budget=Budget(tokens=5_000)) as job:
            for _ in range(100):
                try:
                    stream = await client.chat.completions.create(
                        model=MODEL,
                        messages=[{"role": "user", "content": "hi"}],
                        stream=True,
                        max_tokens=1_000,
                    )
                    async for _chunk in stream:
                        pass
                    sent += 1
                except (BudgetExceededError, openai.APIConnectionError):
                    break
    status = _ledger(job).status()
    assert sent == 4 and sim.request_count == 4
    assert status.spent_tokens <= 5_000 and status.reserved_calls == 0
    assert job.usage.no_usage_calls == 4 and job.usage.total_cost is not None and job.usage.total_cost > 0
    assert job.usage.total_cost == status.spent_usd


async def test_cap_output_writes_the_cap_into_the_request_so_64_uncapped_calls_stay_in_budget(
    sim: ProviderSimulator,
) -> None:
    api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="k")
    limit = Decimal("0.50")
    refused = 0

    async def one() -> None:
        nonlocal refused
        try:
            await api.process_request(model=MODEL, chat_history=[ChatHistoryItem.user("think")])
        except BudgetExceededError:
            refused += 1

    async with Job("capped", budget=Budget(usd=limit, cap_output=True)) as job:
        await asyncio.gather(*(one() for _ in range(64)))
    await api.aclose()
    # The model is unknown (32,768 tokens reserved uncapped) and writes 40,000 when nothing stops it:
    # without the cap in the request it would pass its reservation; with it, it cannot.
    assert job.usage.total_cost is not None and job.usage.total_cost <= limit
    assert job.usage.total_output_tokens <= 64 * 32_768 and job.usage.calls + refused == 64
    assert job.usage.calls >= 1


async def test_a_provider_returning_none_releases_everything_and_metering_goes_on(
    sim: ProviderSimulator,
) -> None:
    class Broken(LLM_API):
        def _build_request_payload(self, **kwargs: Any) -> dict[str, Any]:
            return {}

        async def _process_request(self, **kwargs: Any) -> Any:
            return None

    broken = Broken(model="m", provider_key="BROKEN_NONE")
    with Job("broken", budget=Budget(calls=2)) as job:
        for _ in range(2):
            with pytest.raises(TypeError):
                await broken.process_request(chat_history=[ChatHistoryItem.user("hi")])
        assert current_retry_hook() is None  # no call left "in flight" in this task
        with pytest.raises(BudgetExceededError):  # both failures counted: the third call is refused
            await broken.process_request(chat_history=[ChatHistoryItem.user("hi")])
    status = _ledger(job).status()
    assert status.reserved_calls == 0 and status.spent_calls == 2 and job.usage.failed_calls == 2


async def test_a_cancelled_call_releases_its_reservation(sim: ProviderSimulator) -> None:
    api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="k")
    async with Job("cancelled", budget=Budget(usd="1", calls=3)) as job:
        task = asyncio.create_task(
            api.process_request(
                model="slow", chat_history=[ChatHistoryItem.user("hi")], metadata={"MAX_TOKENS": 10}
            )
        )
        await asyncio.sleep(0.2)
        assert _ledger(job).status().reserved_calls == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await api.aclose()
    status = _ledger(job).status()
    assert status.reserved_calls == 0 and status.reserved_usd == 0 and status.spent_calls == 1


async def test_a_stream_dropped_without_closing_gives_its_reservation_back(sim: ProviderSimulator) -> None:
    async with statek.async_http_client(provider="OPENAI", backend="httpx") as http:
        with Job("dropped", budget=Budget(usd="1")) as job:
            request = http.build_request(
                "POST",
                sim.openai_url,
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 100,
                    "stream": True,
                },
            )
            response = await http.send(request, stream=True)
            assert _ledger(job).status().reserved_calls == 1
            del response, request  # never read, never closed
            for _ in range(3):
                gc.collect()
            status = _ledger(job).status()
    # Recorded with what was read (nothing: no usage), so settled at its reservation: spent as far as
    # the budget knows, nothing held any more, and the call is in the job's usage (its record ended).
    assert status.reserved_calls == 0 and status.spent_calls == 1 and status.spent_usd > 0
    assert job.usage.calls == 1 and job.usage.no_usage_calls == 1 and job.usage.total_cost == status.spent_usd


@pytest.mark.parametrize("cap", [-1, -(10**9), 0, "many", 1e300])
async def test_a_bad_cap_under_a_spent_budget_sends_nothing_through_an_sdk_client(
    sim: ProviderSimulator, cap: object
) -> None:
    async with statek.async_http_client(provider="OPENAI", backend="httpx") as http:
        with Job("spent-out", budget=Budget(usd="0.01")) as job:
            _ledger(job)._spent_pico = 10**10  # the job already spent its $0.01
            with pytest.raises(BudgetExceededError) as refused:
                await http.post(
                    sim.openai_url,
                    json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": cap},
                )
    assert refused.value.reason == "output_cap" and sim.request_count == 0
