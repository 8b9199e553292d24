"""Budgets: a call that would pass a job's budget is refused before it is sent.

Calls go over real HTTP to the loopback provider simulator (OpenAI wire), which counts every request
it receives; telemetry is read back from in-memory OpenTelemetry exporters.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_telemetry_support import Captured

from statek import LLM_API, Budget, BudgetExceededError, ChatHistoryItem, Job
from statek.exceptions import ProviderHTTPError
from statek.executors.estimate import DEFAULT_OUTPUT_TOKENS, estimate_call
from statek.executors.output_limits import UNKNOWN_MAX_OUTPUT
from statek.llm_api import MAX_TOKENS
from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.telemetry import configure_telemetry
from statek.testing import Failure, ModelBehavior, ProviderSimulator, SimRequest, Usage

PRICED = "budget-model"
UNPRICED = "mystery-model"
PRICE_IN, PRICE_OUT = Decimal(2), Decimal(10)  # USD per million tokens
PROMPT = "word " * 800  # 4,000 characters: about 1,000 tokens by the estimate's rule
CAP = 100  # MAX_TOKENS of every call below
IN_TOKENS, OUT_TOKENS = 1_000, CAP  # what the simulator reports for an ordinary call
OVERRUN_OUT = 600  # what it reports for a prompt containing "overrun": the model ignored the cap


def usd(inp: int, out: int) -> Decimal:
    return (inp * PRICE_IN + out * PRICE_OUT) / 1_000_000


def _usage(request: SimRequest) -> Usage:
    out = OVERRUN_OUT if "overrun" in request.prompt_text else OUT_TOKENS
    cost = Decimal("0.01") if "reported" in request.prompt_text else None
    return Usage(input_tokens=IN_TOKENS, output_tokens=out, cost=cost)


@pytest.fixture(name="prices")
def prices_fixture() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    set_model_pricing("OPENAI", PRICED, PRICE_IN, PRICE_OUT)
    yield registry
    set_default_registry(previous)


@pytest.fixture(name="captured")
def captured_fixture(prices: PriceRegistry) -> Iterator[Captured]:
    captured = Captured()
    yield captured
    configure_telemetry()


@pytest.fixture(name="sim")
async def sim_fixture(captured: Captured) -> AsyncIterator[ProviderSimulator]:
    behaviors = {model: ModelBehavior(text="ok", usage=_usage, latency=0.02) for model in (PRICED, UNPRICED)}
    async with ProviderSimulator(behaviors, seed=1) as sim:
        yield sim


@pytest.fixture(name="api")
async def api_fixture(sim: ProviderSimulator) -> AsyncIterator[LLM_API]:
    api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="test-key")
    yield api
    await api.aclose()


async def ask(api: LLM_API, model: str = PRICED, prompt: str = PROMPT, **metadata: Any) -> Any:
    return await api.process_request(
        model=model, chat_history=[ChatHistoryItem.user(prompt)], metadata={MAX_TOKENS: CAP, **metadata}
    )


def refusals(captured: Captured) -> dict[frozenset[tuple[str, Any]], Any]:
    return captured.values("statek.budget.refusals")


def one_estimate(api: LLM_API, model: str = PRICED) -> Decimal:
    params = api._prepare(
        None, model, {MAX_TOKENS: CAP}, None, [ChatHistoryItem.user(PROMPT)], None, None, False
    )
    amount = estimate_call(api, params).usd
    assert amount is not None
    return amount


# ----------------------------------------------------------------------------- refusing
async def test_a_refused_call_sends_nothing_and_is_counted_by_provider_and_model(
    api: LLM_API, sim: ProviderSimulator, captured: Captured
) -> None:
    estimate = one_estimate(api)
    async with Job("tiny", budget=Budget(usd=estimate / 2)) as job:
        with pytest.raises(BudgetExceededError) as refused:
            await ask(api)

    assert sim.request_count == 0  # not one byte reached the provider
    error = refused.value
    assert (error.job_id, error.reason, error.model, error.provider) == ("tiny", "usd", PRICED, "OPENAI")
    assert (
        error.limit == estimate / 2
        and error.spent == 0
        and error.reserved == 0
        and error.estimate == estimate
    )
    assert "\n" not in str(error) and "nothing sent" in str(error)
    assert job.usage.calls == job.usage.failed_calls == 0 and job.usage.total_bytes_sent == 0
    assert captured.finished(f"chat {PRICED}") == []  # no call span: there was no call
    assert refusals(captured) == {
        frozenset({("gen_ai.provider.name", "openai"), ("gen_ai.request.model", PRICED)}): 1
    }
    (job_span,) = captured.finished("job tiny")
    assert [e.name for e in job_span.events] == ["statek.budget.refused"]
    assert job_span.attributes["statek.job.budget.usd"] == float(estimate / 2)
    assert job_span.attributes["statek.job.budget.remaining_usd"] == float(estimate / 2)
    assert job_span.attributes["statek.job.budget.refusals"] == 1


async def test_a_budgeted_job_earns_its_span_like_any_job_and_replays_its_refusals(
    api: LLM_API, sim: ProviderSimulator, captured: Captured
) -> None:
    estimate = one_estimate(api)
    async with Job("one-call", budget=Budget(usd=estimate * 2)):
        await ask(api)
    assert captured.finished("job one-call") == []  # one call, nothing refused: no span to pay for

    async with Job("caught", budget=Budget(usd=estimate * 3 / 2)) as job:
        await ask(api)
        with pytest.raises(BudgetExceededError):
            await ask(api)  # refused, and the job goes on: the refusal earns the span
    (call,) = [s for s in captured.finished(f"chat {PRICED}") if s.attributes["statek.job.id"] == "caught"]
    (job_span,) = captured.finished("job caught")
    (event,) = job_span.events
    assert event.name == "statek.budget.refused" and event.attributes["statek.budget.reason"] == "usd"
    assert call.end_time <= event.timestamp <= job_span.end_time  # when it happened, not when replayed
    assert job_span.start_time <= call.start_time
    assert job_span.attributes["statek.job.budget.refusals"] == 1 and job.usage.calls == 1


async def test_calls_go_while_the_estimate_fits_and_the_job_span_records_what_remained(
    api: LLM_API, sim: ProviderSimulator, captured: Captured
) -> None:
    estimate = one_estimate(api)
    budget = Budget(usd=estimate * 3, tokens=10_000, calls=5)
    async with Job("three", budget=budget) as job:
        for _ in range(3):
            await ask(api)
        with pytest.raises(BudgetExceededError):
            await ask(api)

    assert sim.request_count == 3
    spent = 3 * usd(IN_TOKENS, OUT_TOKENS)
    assert job.usage.total_cost == spent
    status = job.budget.status() if job.budget else None
    assert status is not None and status.spent_usd == spent and status.spent_calls == 3
    assert status.reserved_usd == 0 and status.reserved_calls == 0 and status.reserved_tokens == 0
    assert status.remaining_usd == estimate * 3 - spent and status.remaining_calls == 2
    assert status.remaining_tokens == 10_000 - 3 * (IN_TOKENS + OUT_TOKENS)
    # LLM_Usage shows spend against the limit
    assert "spent $0.009 of $0.009048, 3,300 of 10,000 tokens, 3 of 5 calls; calls refused: 1" in repr(
        job.usage
    )
    (span,) = captured.finished("job three")
    assert span.attributes["statek.job.budget.remaining_usd"] == float(estimate * 3 - spent)
    assert span.attributes["statek.job.budget.remaining_calls"] == 2


async def test_the_estimate_is_the_price_of_the_prompt_and_the_output_cap(api: LLM_API) -> None:
    params = api._prepare(
        None, PRICED, {MAX_TOKENS: CAP}, None, [ChatHistoryItem.user(PROMPT)], None, None, False
    )
    estimate = estimate_call(api, params)
    assert estimate.input_tokens == len(PROMPT) // 4 + 8  # 4 characters a token, 8 for the message
    assert estimate.output_tokens == CAP
    assert estimate.usd == usd(estimate.input_tokens, CAP)
    uncapped = api._prepare(None, PRICED, None, None, [ChatHistoryItem.user("hi")], None, None, False)
    # Uncapped: the model's maximum (unknown model: the documented stand-in), or the old estimate.
    assert estimate_call(api, uncapped).output_tokens == UNKNOWN_MAX_OUTPUT
    assert estimate_call(api, uncapped, worst_case=False).output_tokens == DEFAULT_OUTPUT_TOKENS


async def test_a_call_that_costs_more_than_its_estimate_is_recorded_as_it_was_and_stops_the_job(
    api: LLM_API, sim: ProviderSimulator
) -> None:
    estimate = one_estimate(api)
    async with Job("overrun", budget=Budget(usd=estimate * 2)) as job:
        await ask(api, prompt=PROMPT + " overrun")  # the model ignores the cap: 600 output tokens
        with pytest.raises(BudgetExceededError) as refused:
            await ask(api)

    real = usd(IN_TOKENS, OVERRUN_OUT)
    assert real > estimate and sim.request_count == 1
    assert job.usage.total_cost == real and job.budget is not None and job.budget.status().spent_usd == real
    assert refused.value.spent == real


async def test_a_failed_call_counts_as_a_call_with_its_bytes(api: LLM_API, sim: ProviderSimulator) -> None:
    sim.set_behavior(PRICED, ModelBehavior(text="ok", usage=_usage, failures=[Failure.hard(400)]))
    async with Job("failing", budget=Budget(calls=2)) as job:
        for _ in range(2):
            with pytest.raises(ProviderHTTPError) as failed:
                await ask(api)
            assert failed.value.status_code == 400
        with pytest.raises(BudgetExceededError) as refused:
            await ask(api)
    assert refused.value.reason == "calls" and sim.request_count == 2
    assert job.budget is not None
    status = job.budget.status()
    assert status.spent_calls == 2 and status.spent_usd == 0 and status.reserved_calls == 0
    assert (
        status.spent_approx_tokens == (job.usage.total_bytes_sent + job.usage.total_bytes_received) // 4 > 0
    )


# ----------------------------------------------------------------------------- concurrency
async def test_200_concurrent_calls_spend_no_more_than_the_budget_plus_one_calls_estimation_error(
    api: LLM_API, sim: ProviderSimulator, captured: Captured
) -> None:
    estimate = one_estimate(api)
    budget = estimate * 50 + estimate / 3  # allows about 50 calls
    outcomes: list[str] = []

    async def one(i: int) -> None:
        await asyncio.sleep(i * 0.0005)  # staggered: calls start while others are in flight or settling
        try:
            # One of the calls overruns its estimate (the model ignores the cap).
            await ask(api, prompt=PROMPT + (" overrun" if i == 7 else f" {i}"))
            outcomes.append("sent")
        except BudgetExceededError:
            outcomes.append("refused")

    async with Job("fan-out", budget=Budget(usd=budget)) as job:
        await asyncio.gather(*(one(i) for i in range(200)))

    error_of_one_call = usd(IN_TOKENS, OVERRUN_OUT) - estimate
    assert job.usage.total_cost is not None
    assert job.usage.total_cost <= budget + error_of_one_call
    sent = outcomes.count("sent")
    assert sent == sim.request_count == job.usage.calls
    assert 40 <= sent <= 51, sent  # not 200: reservations held the budget while calls were in flight
    assert outcomes.count("refused") == 200 - sent == sum(refusals(captured).values())
    assert job.budget is not None and job.budget.status().reserved_usd == 0


# ----------------------------------------------------------------------------- nesting
async def test_a_parents_budget_bounds_all_its_children(api: LLM_API, sim: ProviderSimulator) -> None:
    estimate = one_estimate(api)
    async with Job("parent", budget=Budget(usd=estimate * 3)) as parent:
        async with Job("child-a", budget=Budget(usd=estimate * 10)) as a:
            await ask(api)
            await ask(api)
        async with Job("child-b") as b:  # no budget of its own: still bounded by the parent
            await ask(api)
            with pytest.raises(BudgetExceededError) as by_parent:
                await ask(api)
        async with Job("child-c", budget=Budget(calls=0)) as c:
            with pytest.raises(BudgetExceededError) as by_child:
                await ask(api)

    assert sim.request_count == 3
    assert (by_parent.value.job_id, by_parent.value.reason) == ("parent", "usd")
    assert (by_child.value.job_id, by_child.value.reason) == ("child-c", "calls")
    one_call = usd(IN_TOKENS, OUT_TOKENS)
    assert parent.budget is not None and a.budget is not None and c.budget is not None
    assert parent.budget.status().spent_usd == 3 * one_call == parent.usage.total_cost
    assert a.budget.status().spent_usd == 2 * one_call and b.budget is None
    # The child refused after nothing was reserved on the parent; a parent refusal released the child's hold.
    assert a.budget.status().reserved_usd == 0 and parent.budget.status().reserved_calls == 0
    assert parent.budget.status().refusals == 1 and c.budget.status().refusals == 1


async def test_a_refusal_by_the_parent_leaves_nothing_held_on_the_child(api: LLM_API) -> None:
    estimate = one_estimate(api)
    async with (
        Job("p", budget=Budget(usd=estimate / 2)) as parent,
        Job("c", budget=Budget(usd=estimate * 5, calls=5)) as child,
    ):
        with pytest.raises(BudgetExceededError) as refused:
            await ask(api)
    assert refused.value.job_id == "p"
    assert child.budget is not None and parent.budget is not None
    status = child.budget.status()
    assert (status.reserved_usd, status.reserved_calls, status.reserved_tokens, status.refusals) == (
        0,
        0,
        0,
        0,
    )
    assert status.remaining_calls == 5


# ----------------------------------------------------------------------------- unpriced models
async def test_an_unpriced_model_under_a_usd_budget_is_refused_by_default(
    api: LLM_API, sim: ProviderSimulator
) -> None:
    async with Job("strict", budget=Budget(usd="5")):
        with pytest.raises(BudgetExceededError) as refused:
            await ask(api, model=UNPRICED)
    assert refused.value.reason == "unpriced" and refused.value.estimate is None
    assert "has no price" in str(refused.value) and sim.request_count == 0


async def test_allowed_unpriced_calls_are_named_never_counted_as_zero(sim: ProviderSimulator) -> None:
    router = LLM_API.get("OPENROUTER", api_url=sim.openai_url, api_key="test-key")  # reports usage.cost
    async with Job("lenient", budget=Budget(usd="5", tokens=3_000, unpriced="allow")) as job:
        await ask(router, model=UNPRICED)
        await ask(router, model=UNPRICED, prompt=PROMPT + " reported")  # the provider reports $0.01 itself
        with pytest.raises(BudgetExceededError) as refused:  # the token limit still holds
            await ask(router, model=UNPRICED)
    await router.aclose()
    assert sim.request_count == 2 and refused.value.reason == "tokens"
    assert job.budget is not None
    status = job.budget.status()
    assert status.unpriced_calls == 1 and status.spent_usd == Decimal("0.01")
    assert "+1 unpriced calls, not in the USD figure" in str(status)


async def test_no_usd_limit_means_unpriced_models_are_fine(api: LLM_API, sim: ProviderSimulator) -> None:
    async with Job("calls-only", budget=Budget(calls=1)):
        await ask(api, model=UNPRICED)
    assert sim.request_count == 1


# ----------------------------------------------------------------------------- STATEK_MAX_TOKEN_USAGE
async def test_statek_max_token_usage_stops_a_job_once_its_approximate_usage_exceeds_it(
    api: LLM_API, sim: ProviderSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEK_MAX_TOKEN_USAGE", "3000")
    async with Job("guarded") as job:
        assert job.budget is not None and job.budget.budget.approx_tokens == 3000
        approx_before_each: list[int] = []
        with pytest.raises(BudgetExceededError) as refused:
            for _ in range(10):
                approx_before_each.append((job.usage.total_bytes_sent + job.usage.total_bytes_received) // 4)
                await ask(api)
    approx = (job.usage.total_bytes_sent + job.usage.total_bytes_received) // 4
    sent = sim.request_count
    assert refused.value.reason == "approx_tokens" and refused.value.spent == approx
    assert sent == job.usage.calls >= 1
    # Every call that went started under the limit; the refused one would have passed it.
    assert all(before + len(PROMPT) // 4 <= 3000 for before in approx_before_each[:sent])
    assert approx + len(PROMPT) // 4 > 3000
    async with Job("opted-out", budget=Budget()) as free:
        await ask(api)
    assert free.budget is None


def test_budget_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_BUDGET_USD", "2.50")
    monkeypatch.setenv("STATEK_BUDGET_CALLS", "7")
    monkeypatch.setenv("STATEK_BUDGET_UNPRICED", "ALLOW")
    job = Job("env")
    assert job.budget is not None
    assert job.budget.budget == Budget(usd=Decimal("2.50"), calls=7, unpriced="allow")
    monkeypatch.setenv("STATEK_BUDGET_TOKENS", "lots")
    with pytest.raises(
        ValueError, match="STATEK_BUDGET_TOKENS must be a whole number of 0 or more, not 'lots'"
    ):
        Job("bad-env")


# ----------------------------------------------------------------------------- the raw-body entry point
async def test_a_raw_request_body_is_reserved_and_settled_like_an_llm_api_call(
    api: LLM_API, sim: ProviderSimulator, captured: Captured
) -> None:
    """What an httpx transport under an official SDK does: reserve from the body, send, settle."""
    import httpx

    from statek.executors.budget import reserve_request
    from statek.telemetry import count_budget_refusal

    body = api.preview_request(model=PRICED, chat_history=[ChatHistoryItem.user(PROMPT)])
    body["max_completion_tokens"] = CAP
    raw = json.dumps(body).encode()
    async with Job("sdk", budget=Budget(usd=usd(len(raw) // 4 + 1, CAP) * Decimal("1.5"))) as job:
        held = reserve_request(job, "OPENAI", PRICED, raw)
        assert held is not None
        async with httpx.AsyncClient() as client:
            answer = (await client.post(sim.openai_url, content=raw)).json()
        held.settle(
            cost=usd(answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]),
            input_tokens=answer["usage"]["prompt_tokens"],
            output_tokens=answer["usage"]["completion_tokens"],
            bytes_sent=len(raw),
            bytes_received=len(json.dumps(answer)),
        )
        with pytest.raises(BudgetExceededError) as refused:
            reserve_request(job, "OPENAI", PRICED, raw)
        count_budget_refusal("openai", PRICED, refused.value)
    assert sim.request_count == 1
    assert job.budget is not None and job.budget.status().spent_usd == usd(IN_TOKENS, OUT_TOKENS)
    assert reserve_request(None, "OPENAI", PRICED, raw) is None
    assert sum(refusals(captured).values()) == 1


async def test_a_fault_in_the_estimate_never_breaks_the_call(
    sim: ProviderSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    from statek import OpenAI_API
    from statek.settings import ProviderSettings

    class OddProvider(OpenAI_API):  # a user's subclass whose attribute the estimate reads raises
        @property
        def default_max_tokens(self) -> int:
            raise RuntimeError("odd provider")

    api = OddProvider(ProviderSettings(api_url=sim.openai_url, api_key="test-key"))
    async with Job("odd", budget=Budget(usd="1")) as job:
        response = await api.process_request(model=PRICED, chat_history=[ChatHistoryItem.user(PROMPT)])
    await api.aclose()
    assert response.stats.input_tokens == IN_TOKENS and sim.request_count == 1
    assert job.usage.calls == 1 and "goes unbudgeted" in caplog.text
