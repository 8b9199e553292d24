"""Budgets hold for calls metered by the httpx transport (official SDKs) as for ``LLM_API`` calls:
estimated from the JSON body before it is sent, refused with nothing sent, settled with the real cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from test_budget import (  # noqa: F401 - fixtures
    CAP,
    IN_TOKENS,
    OUT_TOKENS,
    PRICED,
    PROMPT,
    captured_fixture,
    prices_fixture,
    sim_fixture,
    usd,
)
from test_telemetry_support import Captured

import statek
from statek import Budget, BudgetExceededError, Job
from statek.testing import ProviderSimulator


def body(prompt: str = PROMPT) -> dict[str, Any]:
    return {"model": PRICED, "messages": [{"role": "user", "content": prompt}], "max_tokens": CAP}


async def test_a_transport_call_over_budget_is_refused_before_it_is_sent(
    sim: ProviderSimulator, captured: Captured
) -> None:
    one_call = usd(IN_TOKENS, OUT_TOKENS)
    async with statek.async_http_client(provider="OPENAI", backend="httpx") as client:
        with Job("sdk-budget", budget=Budget(usd=one_call * Decimal("1.5"))) as job:
            first = await client.post(sim.openai_url, json=body())
            assert first.status_code == 200
            with pytest.raises(BudgetExceededError) as refused:
                await client.post(sim.openai_url, json=body())

    assert sim.request_count == 1  # the refused call sent nothing
    assert refused.value.job_id == "sdk-budget" and refused.value.reason == "usd"
    status = job.usage.budget.status()  # type: ignore[union-attr]
    assert status.spent_usd == job.usage.total_cost == one_call  # settled with the real cost
    assert status.reserved_usd == 0 and status.refusals == 1
    refusals = captured.values("statek.budget.refusals")
    assert sum(refusals.values()) == 1 and all("job" not in str(key) for key in refusals)


async def test_a_failed_transport_call_releases_its_reservation(
    sim: ProviderSimulator, captured: Captured
) -> None:
    async with statek.async_http_client(provider="OPENAI", backend="httpx") as client:
        with Job("sdk-budget-fail", budget=Budget(calls=5)) as job:
            answer = await client.post(sim.openai_url, json={**body(), "model": "no-such-model"})
            assert answer.status_code >= 400
    status = job.usage.budget.status()  # type: ignore[union-attr]
    assert status.reserved_calls == 0 and status.spent_calls == 1
