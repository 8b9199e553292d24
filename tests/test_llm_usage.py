"""LLM_Usage: the seed total_cost rule for hand-filled usage, and per-call costs for recorded calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from statek.executors.llm_usage import LLM_Usage, ModelUsage
from statek.metering import PriceRegistry, price_call, set_default_registry
from statek.model_pricing import ModelPricing, init_model_pricing, set_model_pricing
from statek.types import CallDetail


@pytest.fixture(autouse=True)
def empty_default_registry() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    yield registry
    set_default_registry(previous)


def priced(provider: str, model: str, stats: CallDetail, at: datetime | None = None) -> CallDetail:
    """What the telemetry wrapper does before recording: price the call when it happens."""
    cost = price_call(provider, model, stats, at=at)
    return stats._replace(priced_cost=cost.amount, cost_status=cost.status)


# ----------------------------------------------------------------------------- hand-filled (seed rule)


def test_hand_filled_usage_prices_uncached_cached_and_output() -> None:
    usage = LLM_Usage(pricing=ModelPricing(Decimal("2.5"), Decimal("1.25"), Decimal(10)))
    usage.total_input_tokens, usage.total_cached_tokens, usage.total_output_tokens = 1000, 200, 100
    assert usage.total_cost == Decimal("0.00325")  # 800*2.5 + 200*1.25 + 100*10 = 3250 / 1e6


def test_hand_filled_cached_tokens_use_the_input_price_when_no_cached_price() -> None:
    usage = LLM_Usage(
        pricing=ModelPricing(Decimal(2), None, Decimal(10)),
        total_input_tokens=1000,
        total_cached_tokens=600,
        total_output_tokens=0,
    )
    assert usage.total_cost == Decimal("0.002")


def test_hand_filled_falls_back_to_reported_cost_then_none() -> None:
    reported = Decimal("0.0123")
    no_pricing = LLM_Usage(total_input_tokens=10, total_output_tokens=10, total_reported_cost=reported)
    invalid_pricing = LLM_Usage(
        pricing=ModelPricing(Decimal(1), None, None), total_input_tokens=10, total_reported_cost=reported
    )
    no_tokens = LLM_Usage(pricing=ModelPricing(Decimal(1), None, Decimal(1)), total_reported_cost=reported)
    assert no_pricing.total_cost == invalid_pricing.total_cost == no_tokens.total_cost == reported
    assert LLM_Usage(total_input_tokens=10).total_cost is None
    assert LLM_Usage(pricing=ModelPricing(Decimal(1), None, Decimal(1))).total_cost is None


def test_for_model_takes_the_tables_pricing() -> None:
    set_model_pricing("OpenAI", "gpt-4o", "2.5", "10", "1.25")
    usage = LLM_Usage.for_model("OPEN AI", "GPT-4O")
    assert usage.pricing == ModelPricing(Decimal("2.5"), Decimal("1.25"), Decimal(10))
    unknown = LLM_Usage.for_model("X", "unknown").pricing
    assert unknown == ModelPricing() and not unknown.is_valid  # a placeholder, never None


# ----------------------------------------------------------------------------- recorded calls


def test_recorded_calls_sum_their_own_costs_and_counts() -> None:
    set_model_pricing("OPENAI", "gpt-4o", "2.5", "10", "1.25")
    usage = LLM_Usage()
    usage.record("OPENAI", "gpt-4o", priced("OPENAI", "gpt-4o", CallDetail(100, 400, None, 1000, 100, 200)))
    usage.record("OPENAI", "gpt-4o", priced("OPENAI", "gpt-4o", CallDetail(50, 60, None, 2000, 0, 0)))
    assert usage.total_cost == Decimal("0.00325") + Decimal("0.005")
    assert (usage.calls, usage.unpriced_calls) == (2, 0)
    assert (usage.total_input_tokens, usage.total_cached_tokens, usage.total_output_tokens) == (
        3000,
        200,
        100,
    )
    assert (usage.total_bytes_sent, usage.total_bytes_received) == (150, 460)


def test_each_call_keeps_its_own_tier_never_repriced_from_summed_tokens(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(
        "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M,LONG_CONTEXT_THRESHOLD,"
        "LONG_CONTEXT_INPUT_PRICE_PER_M,LONG_CONTEXT_OUTPUT_PRICE_PER_M\nGEMINI,gemini-2.5-pro,1,10,200000,2,20\n"
    )
    init_model_pricing(tmp_path, strict=True)
    usage = LLM_Usage()
    for _ in range(2):  # two 150k-token prompts: each below the threshold, their sum above it
        usage.record(
            "GEMINI",
            "gemini-2.5-pro",
            priced("GEMINI", "gemini-2.5-pro", CallDetail(0, 0, None, 150_000, 0, 0)),
        )
    assert usage.total_cost == Decimal("0.3")  # 2 * 150k * $1, not 300k * $2


def test_multi_model_job_keeps_a_per_model_breakdown() -> None:
    set_model_pricing("OPENAI", "gpt-4o", 2, 8)
    set_model_pricing("ANTHROPIC", "claude-opus-5", 5, 25)
    usage = LLM_Usage()
    usage.record("OPENAI", "gpt-4o", priced("OPENAI", "gpt-4o", CallDetail(1, 2, None, 1000, 100, 0)))
    usage.record(
        "ANTHROPIC",
        "claude-opus-5",
        priced("ANTHROPIC", "claude-opus-5", CallDetail(3, 4, None, 2000, 200, 0, reasoning_tokens=50)),
    )
    usage.record("OPENAI", "gpt-4o", priced("OPENAI", "gpt-4o", CallDetail(1, 2, None, 1000, 100, 0)))
    breakdown = usage.by_model()
    assert list(breakdown) == [("OPENAI", "gpt-4o"), ("ANTHROPIC", "claude-opus-5")]
    gpt, claude = breakdown.values()
    assert gpt == ModelUsage(
        "OPENAI",
        "gpt-4o",
        calls=2,
        input_tokens=2000,
        output_tokens=200,
        bytes_sent=2,
        bytes_received=4,
        cost=Decimal("0.0056"),
        calculated_calls=2,
    )
    assert (claude.calls, claude.cost, claude.reasoning_tokens) == (1, Decimal("0.015"), 50)
    assert usage.total_cost == gpt.cost + claude.cost  # type: ignore[operator]


def test_unpriced_calls_add_nothing_are_counted_and_never_read_as_zero() -> None:
    set_model_pricing("OPENAI", "gpt-4o", 2, 8)
    only_unpriced = LLM_Usage()
    only_unpriced.record("LOCAL", "llama", priced("LOCAL", "llama", CallDetail(1, 1, None, 100, 100, 0)))
    assert only_unpriced.total_cost is None and only_unpriced.unpriced_calls == 1

    mixed = LLM_Usage()
    mixed.record("LOCAL", "llama", priced("LOCAL", "llama", CallDetail(1, 1, None, 100, 100, 0)))
    mixed.record("OPENAI", "gpt-4o", priced("OPENAI", "gpt-4o", CallDetail(1, 1, None, 1_000_000, 0, 0)))
    assert (mixed.total_cost, mixed.calls, mixed.unpriced_calls) == (Decimal(2), 2, 1)
    assert mixed.by_model()[("LOCAL", "llama")].cost is None


def test_provider_reported_costs_are_summed_and_used_when_unpriced() -> None:
    usage = LLM_Usage()
    for cost in ("0.001", "0.002"):
        stats = CallDetail(0, 0, Decimal(cost), 10, 10, 0)
        usage.record("OPENROUTER", "x/y", priced("OPENROUTER", "x/y", stats))
    assert usage.total_reported_cost == Decimal("0.003") == usage.total_cost
    assert usage.by_model()[("OPENROUTER", "x/y")].reported_calls == 2


def test_record_is_thread_safe() -> None:
    usage = LLM_Usage()
    stats = CallDetail(1, 1, None, 10, 1, 0, priced_cost=Decimal("0.001"), cost_status="calculated")

    def work() -> None:
        for _ in range(2000):
            usage.record("P", "m", stats)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert usage.calls == 16_000 and usage.total_input_tokens == 160_000
    assert usage.total_cost == Decimal("16.000")
