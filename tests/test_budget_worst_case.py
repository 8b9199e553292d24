"""Budgets that hold under concurrency: worst-case reservations, checked caps, per-request fees,
non-Latin prompts, and the output cap a budget sets (``docs/budgets.md``, "Guarantees")."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statek import LLM_API, Budget, BudgetExceededError, ChatHistoryItem, Job
from statek.executors.budget import BudgetLedger, reserve_request
from statek.executors.estimate import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    estimate_request_body,
    text_units,
)
from statek.executors.output_cap import cap_body
from statek.executors.output_limits import MAX_OUTPUT_CAP, checked_cap, model_max_output
from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.testing import ModelBehavior, ProviderSimulator, SimRequest, Usage

REASONER = "o3"  # a model whose maximum output (100,000 tokens) statek knows
PRICE_IN, PRICE_OUT = Decimal(2), Decimal(8)  # USD per million tokens
REASONING = 40_000  # what the simulated reasoner writes when nothing caps it


def _cost(inp: int, out: int) -> Decimal:
    return (inp * PRICE_IN + out * PRICE_OUT) / 1_000_000


def _reasoner_usage(request: SimRequest) -> Usage:
    """A model that thinks for 40,000 tokens, stopping at the request's cap like a real provider."""
    body = request.body if isinstance(request.body, dict) else {}
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    out = min(REASONING, cap) if isinstance(cap, int) else REASONING
    return Usage(input_tokens=20, output_tokens=out, reasoning_tokens=out - 1)


@pytest.fixture(name="prices")
def prices_fixture() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    set_model_pricing("OPENAI", REASONER, PRICE_IN, PRICE_OUT)
    yield registry
    set_default_registry(previous)


@pytest.fixture(name="api")
async def api_fixture(prices: PriceRegistry) -> AsyncIterator[tuple[LLM_API, ProviderSimulator]]:
    behavior = ModelBehavior(text="ok", usage=_reasoner_usage, latency=0.01)
    async with ProviderSimulator({REASONER: behavior}, seed=3) as sim:
        api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="test-key")
        yield api, sim
        await api.aclose()


async def _flood(api: LLM_API, budget: Budget, calls: int) -> tuple[Job, int]:
    refused = 0

    async def one() -> None:
        nonlocal refused
        try:
            await api.process_request(model=REASONER, chat_history=[ChatHistoryItem.user("think hard")])
        except BudgetExceededError:
            refused += 1

    async with Job("flood", budget=budget) as job:
        await asyncio.gather(*(one() for _ in range(calls)))
    return job, refused


async def test_64_concurrent_uncapped_reasoning_calls_never_spend_more_than_the_budget(
    api: tuple[LLM_API, ProviderSimulator],
) -> None:
    client, sim = api
    limit = Decimal(3)
    job, refused = await _flood(client, Budget(usd=limit), 64)
    # Each uncapped call reserves its model's maximum output (100,000 tokens, $0.80): at most three
    # are in flight at once, and together they cannot pass $3 whatever they write.
    assert job.usage.total_cost is not None and job.usage.total_cost <= limit
    assert sim.request_count == job.usage.calls and job.usage.calls + refused == 64
    assert job.usage.calls >= 3  # the budget was used, not refused outright


async def test_the_old_estimate_mode_overspends_as_documented(api: tuple[LLM_API, ProviderSimulator]) -> None:
    client, _ = api
    limit = Decimal(3)
    job, _ = await _flood(client, Budget(usd=limit, reserve="estimate"), 64)
    # The opt-in reserves 4,096 output tokens per uncapped call; 40,000 are written: the documented
    # bound is the calls in flight times (real cost - estimate).
    cost = job.usage.total_cost
    assert cost is not None and cost > limit
    per_call = _cost(20, REASONING)
    in_flight = job.usage.calls
    assert cost <= limit + in_flight * per_call


# ----------------------------------------------------------------------------- caps
@pytest.mark.parametrize("bad", [-1, 0, -(10**9), 1.5, "lots", True, MAX_OUTPUT_CAP + 1, 10**30])
def test_a_cap_a_budget_cannot_bound_is_refused_before_sending(bad: object, prices: PriceRegistry) -> None:
    body = json.dumps({"model": REASONER, "messages": [], "max_tokens": bad}).encode()
    with Job("bad-cap", budget=Budget(usd="0.000001")) as job:
        job.budget._spent_pico = 10**9  # type: ignore[union-attr] # the budget is spent out
        with pytest.raises(BudgetExceededError) as refused:
            reserve_request(job, "OPENAI", REASONER, body)
    assert refused.value.reason == "output_cap" and "nothing sent" in str(refused.value)


@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(), st.none()))
def test_a_cap_is_a_whole_number_from_1_to_the_maximum_or_an_error(value: object) -> None:
    try:
        cap = checked_cap(value)
    except ValueError:
        return
    assert cap is None or (isinstance(cap, int) and 1 <= cap <= MAX_OUTPUT_CAP)


def test_the_model_maximum_comes_from_the_table_then_the_context_window_then_a_stand_in() -> None:
    assert model_max_output("OPENAI", "openai", "o3-mini") == (100_000, True)
    assert model_max_output("OPENAI", "openai", "gpt-4o-2024-08-06") == (16_384, True)
    assert model_max_output("ANTHROPIC", "anthropic", "claude-opus-4-5-20251101") == (64_000, True)
    tokens, known = model_max_output("LLAMA_CPP", "llama_cpp", "my-local-model")
    assert not known and tokens > 0


# ----------------------------------------------------------------------------- fees and scripts
def test_a_per_request_fee_is_charged_once_so_a_small_sonar_call_fits_5_cents() -> None:
    body = json.dumps(
        {"model": "sonar", "messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 200}
    ).encode()
    estimate = estimate_request_body("PERPLEXITY", "sonar", body, pricing_provider="perplexity")
    # $12 per 1,000 requests plus $1 per million tokens in and out: about $0.0122, not $49.
    assert estimate.usd is not None and Decimal("0.012") < estimate.usd < Decimal("0.013")
    with Job("sonar", budget=Budget(usd="0.05")) as job:
        held = reserve_request(job, "PERPLEXITY", "sonar", body, pricing_provider="perplexity")
        assert held is not None
        held.settle(Decimal("0.0121"), 20, 60, 100, 200)
    assert job.usage.budget is not None and job.usage.budget.status().spent_usd == Decimal("0.0121")
    # Uncapped, sonar reserves its context window (about $0.14): cap_output makes it fit $0.05, with
    # the cap it can afford written into the request.
    uncapped = json.dumps(
        {"model": "sonar", "messages": [{"role": "user", "content": "What is 2+2?"}]}
    ).encode()
    with Job("sonar-uncapped", budget=Budget(usd="0.05", cap_output=True)) as job:
        held = reserve_request(job, "PERPLEXITY", "sonar", uncapped, pricing_provider="perplexity")
        assert held is not None and held.output_cap is not None and 30_000 < held.output_cap < 38_000
        assert held.estimate.usd is not None and held.estimate.usd <= Decimal("0.05")
        held.settle(Decimal("0.0121"), 20, 60, 100, 200)


@pytest.mark.parametrize(
    ("text", "at_least_tokens_per_char"),
    [("中文的提示词需要更多的词元" * 20, 1.2), ("Привет, как дела? " * 20, 0.6), ("hello world " * 20, 0.25)],
)
def test_non_latin_prompts_count_about_a_token_per_character(
    text: str, at_least_tokens_per_char: float
) -> None:
    units = text_units(text)
    assert units / CHARS_PER_TOKEN >= at_least_tokens_per_char * len(text) * 0.99
    body = json.dumps({"messages": [{"role": "user", "content": text}]}, ensure_ascii=False).encode()
    escaped = json.dumps({"messages": [{"role": "user", "content": text}]}).encode()
    for raw in (body, escaped):  # raw UTF-8 or \u escapes: never fewer tokens than the text alone
        assert estimate_request_body("OPENAI", "m", raw).input_tokens >= units // CHARS_PER_TOKEN
    assert MESSAGE_OVERHEAD_TOKENS > 0


# ----------------------------------------------------------------------------- cap_output
def test_cap_output_reserves_what_the_budget_allows_and_the_body_carries_it(prices: PriceRegistry) -> None:
    body = json.dumps({"model": REASONER, "messages": [{"role": "user", "content": "think"}]}).encode()
    with Job("capped", budget=Budget(usd="0.10", cap_output=True)) as job:
        held = reserve_request(job, "OPENAI", REASONER, body)
        assert held is not None and held.output_cap is not None
        # $0.10 at $8 per million output tokens: about 12,500 tokens, not the model's 100,000.
        assert 12_000 < held.output_cap < 12_500 and held.estimate.usd is not None
        assert held.estimate.usd <= Decimal("0.10")
        sent = json.loads(cap_body(body, "chat_completions", held.output_cap))
        assert sent["max_completion_tokens"] == held.output_cap
        with pytest.raises(BudgetExceededError):  # the room is held: not one more output token fits
            reserve_request(job, "OPENAI", REASONER, body)
        held.settle(_cost(5, held.output_cap), 5, held.output_cap, 10, 10)
    status = job.budget.status() if job.budget else None
    assert status is not None and status.spent_usd <= Decimal("0.10")


@pytest.mark.parametrize(
    ("wire", "body", "path"),
    [
        ("chat_completions", {"max_tokens": 50_000}, ("max_tokens",)),
        ("chat_completions", {}, ("max_completion_tokens",)),
        ("responses", {}, ("max_output_tokens",)),
        ("anthropic", {"max_tokens": 64_000, "thinking": {"budget_tokens": 60_000}}, ("max_tokens",)),
        ("gemini", {"contents": []}, ("generationConfig", "maxOutputTokens")),
    ],
)
def test_the_cap_goes_where_each_wire_format_reads_it(
    wire: str, body: dict[str, object], path: tuple[str, ...]
) -> None:
    sent = json.loads(cap_body(json.dumps(body).encode(), wire, 1_000))  # type: ignore[arg-type]
    node: object = sent
    for key in path:
        node = node[key]  # type: ignore[index]
    assert node == 1_000
    if wire == "anthropic":
        assert sent["thinking"]["budget_tokens"] < 1_000
    lower = json.loads(cap_body(json.dumps({"max_tokens": 10}).encode(), "chat_completions", 1_000))
    assert lower["max_tokens"] == 10  # a lower cap is kept


# ----------------------------------------------------------------------------- every call counts
def test_a_reservation_dropped_without_settling_counts_at_its_reservation(prices: PriceRegistry) -> None:
    body = json.dumps({"model": REASONER, "messages": [], "max_tokens": 1_000}).encode()
    with Job("dropped", budget=Budget(usd="1")) as job:
        held = reserve_request(job, "OPENAI", REASONER, body)
        assert held is not None
        reserved = held.estimate.usd
        del held
        gc.collect()
        ledger = job.budget
        assert isinstance(ledger, BudgetLedger)
        reserve_request(job, "OPENAI", REASONER, body).settle(Decimal(0), 0, 0, 0, 0)  # type: ignore[union-attr]
        status = ledger.status()
    # Spent as far as the budget knows: never $0, and nothing left held.
    assert status.spent_usd == reserved and status.reserved_calls == 0 and status.spent_calls == 2
