"""The demo tells one story per seed: the same calls and cost every run, whatever the interleaving."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.demo import DemoRun
from statek.demo.session import DemoResult
from statek.testing import Failure, ModelBehavior, ProviderSimulator


def _fingerprint(result: DemoResult) -> dict[str, tuple[int, int, int, Decimal | None, bool]]:
    return {
        o.plan.job_id: (
            o.usage.calls,
            o.usage.total_input_tokens,
            o.usage.total_output_tokens,
            o.usage.total_cost,
            o.failure is not None,
        )
        for o in result.outcomes
    }


def test_the_same_seed_gives_the_same_calls_and_cost_at_any_concurrency() -> None:
    first = DemoRun(jobs=24, concurrency=24, seed=11).run()
    again = DemoRun(jobs=24, concurrency=5, seed=11).run()
    assert first.total().calls == again.total().calls
    assert first.total().cost == again.total().cost is not None
    assert _fingerprint(first) == _fingerprint(again)
    assert any(o.failure is not None for o in first.outcomes)  # the injected failures happened, the same way


@settings(max_examples=15, deadline=None)
@given(order=st.permutations(range(12)))
def test_content_indexed_answers_do_not_depend_on_arrival_order(order: list[int]) -> None:
    behavior = ModelBehavior(failures=[Failure.server_error(every=3)])

    async def ask(sim: ProviderSimulator, numbers: list[int]) -> dict[int, tuple[int, str]]:
        async with httpx.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
            answers = {}
            for n in numbers:
                body = {"model": "m", "messages": [{"role": "user", "content": f"question {n}"}]}
                response = await client.post("/v1/chat/completions", json=body)
                answers[n] = (response.status_code, response.text if response.status_code >= 400 else "")
            return answers

    in_order = asyncio.run(
        ask(ProviderSimulator({"m": behavior}, seed=3, index_by="content"), list(range(12)))
    )
    shuffled = asyncio.run(ask(ProviderSimulator({"m": behavior}, seed=3, index_by="content"), order))
    assert in_order == shuffled
    assert 0 < sum(status == 503 for status, _ in in_order.values()) < 12
