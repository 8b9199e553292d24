"""The pricing engine over price files only (no database): cost rules, exact name matching and MATCH
patterns, tiers, dates, reported cost and the statuses."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from statek.metering import CallCost, PriceRegistry
from statek.metering.index import PriceTable
from statek.types import CallDetail

HEADER = (
    "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M,"
    "CACHE_WRITE_5M_PRICE_PER_M,CACHE_WRITE_1H_PRICE_PER_M,LONG_CONTEXT_THRESHOLD,LONG_CONTEXT_INPUT_PRICE_PER_M,"
    "LONG_CONTEXT_CACHED_PRICE_PER_M,LONG_CONTEXT_OUTPUT_PRICE_PER_M,VALID_FROM\n"
)
ROWS = """\
OPENAI,,gpt-4o,2.50,1.25,10,,,,,,,
OPENAI,,gpt-4o-mini,0.15,,0.60,,,,,,,
OPENAI,,gpt-4,30,,60,,,,,,,
ANTHROPIC,,claude-sonnet-4-5,3,0.30,15,3.75,6,200000,6,0.60,22.50,
ANTHROPIC,,claude-sonnet,99,,99,,,,,,,
GEMINI,,gemini-2.5-pro,1.25,0.125,10,,,200000,2.50,0.25,15,
DEEPSEEK,,deepseek-chat,0.14,0.028,0.28,,,,,,,
DEEPSEEK,,deepseek-chat,0.14,0.0028,0.28,,,,,,,2026-04-26T12:15:00Z
DEEPSEEK,,deepseek-chat,0.20,0.01,0.40,,,,,,,2027-01-01
MISTRAL,small,mistral-x,1,,2,,,,,,,
MISTRAL,large,mistral-x,10,,20,,,,,,,
"""


@pytest.fixture
def registry(tmp_path: Path) -> PriceRegistry:
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + ROWS)
    reg = PriceRegistry(shipped=False, model_info_dir=None, database=None)
    report = reg.load(path, strict=True)
    assert report.ok
    return reg


def stats(
    inp: int, out: int, cached: int = 0, write: int = 0, write_1h: int = 0, cost: Decimal | None = None
) -> CallDetail:
    return CallDetail(0, 0, cost, inp, out, cached, write, write_1h)


def test_uncached_cached_and_output_are_priced_at_their_own_rates(registry: PriceRegistry) -> None:
    # 800 uncached * 2.50 + 200 cached * 1.25 + 100 out * 10 = 2000 + 250 + 1000 = 3250 micro-USD
    cost = registry.price_call("OPENAI", "gpt-4o", stats(1000, 100, cached=200))
    assert cost == CallCost(Decimal("0.00325"), "calculated", "USD", None, "openai/gpt-4o")


def test_cached_tokens_fall_back_to_the_input_price(registry: PriceRegistry) -> None:
    # gpt-4o-mini has no cached price: all 1000 input tokens at 0.15, 500 out at 0.60
    cost = registry.price_call("OPENAI", "gpt-4o-mini", stats(1000, 500, cached=400))
    assert cost.amount == Decimal("0.00045")


def test_cache_writes_at_5m_and_1h_prices_and_reasoning_inside_output(registry: PriceRegistry) -> None:
    s = CallDetail(0, 0, None, 10_000, 2_000, 1_000, 3_000, 1_000, reasoning_tokens=1_500)
    # uncached 6000*3 + cached 1000*0.30 + 5m 2000*3.75 + 1h 1000*6 + out 2000*15
    expected = (
        6000 * Decimal(3) + 1000 * Decimal("0.30") + 2000 * Decimal("3.75") + 1000 * 6 + 2000 * 15
    ) / 10**6
    assert registry.price_call("ANTHROPIC", "claude-sonnet-4-5", s).amount == expected


def test_cache_writes_without_write_prices_cost_the_input_price(registry: PriceRegistry) -> None:
    cost = registry.price_call("OPENAI", "gpt-4o", stats(1000, 0, write=1000, write_1h=400))
    assert cost.amount == Decimal("0.0025")


def test_money_is_exact_decimal_even_for_awkward_prices(registry: PriceRegistry) -> None:
    cost = registry.price_call("DEEPSEEK", "deepseek-chat", stats(3, 7, cached=1), at=datetime(2026, 1, 1))
    assert cost.amount == (2 * Decimal("0.14") + Decimal("0.028") + 7 * Decimal("0.28")) / 10**6
    assert isinstance(cost.amount, Decimal)


def test_long_context_tier_switches_every_rate_above_the_threshold(registry: PriceRegistry) -> None:
    at_threshold = registry.price_call("GEMINI", "gemini-2.5-pro", stats(200_000, 1000, cached=100_000))
    above = registry.price_call("GEMINI", "gemini-2.5-pro", stats(200_001, 1000, cached=100_000))
    assert at_threshold.amount == (100_000 * Decimal("1.25") + 100_000 * Decimal("0.125") + 1000 * 10) / 10**6
    assert above.amount == (100_001 * Decimal("2.50") + 100_000 * Decimal("0.25") + 1000 * 15) / 10**6


def test_long_context_counts_the_whole_prompt_including_cache(registry: PriceRegistry) -> None:
    # only 50k uncached, but the prompt is 250k: the tier applies
    s = stats(250_000, 0, cached=150_000, write=50_000)
    expected = (50_000 * 6 + 150_000 * Decimal("0.60") + 50_000 * 6) / Decimal(10**6)
    assert registry.price_call("ANTHROPIC", "claude-sonnet-4-5", s).amount == expected


@pytest.mark.parametrize(
    ("when", "cached_price"),
    [
        (datetime(2026, 4, 26, 12, 14, tzinfo=timezone.utc), "0.028"),
        (datetime(2026, 4, 26, 12, 15, tzinfo=timezone.utc), "0.0028"),
        (datetime(2026, 12, 31, 23, 59), "0.0028"),  # naive means UTC
    ],
)
def test_valid_from_picks_the_row_in_force_when_the_call_was_made(
    registry: PriceRegistry, when: datetime, cached_price: str
) -> None:
    cost = registry.price_call("DEEPSEEK", "deepseek-chat", stats(1_000_000, 0, cached=1_000_000), at=when)
    assert cost.amount == Decimal(cached_price)


def test_a_future_price_is_not_used_now_but_is_used_after_its_date(registry: PriceRegistry) -> None:
    s = stats(1_000_000, 0)
    assert registry.price_call("DEEPSEEK", "deepseek-chat", s).amount == Decimal("0.14")  # now: 2026
    assert registry.price_call("DEEPSEEK", "deepseek-chat", s, at=datetime(2027, 1, 2)).amount == Decimal(
        "0.20"
    )


def test_before_the_first_dated_row_there_is_no_price(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "OPENAI,,gpt-x,1,,2,,,,,,,2026-06-01\n")
    reg = PriceRegistry(shipped=False, model_info_dir=None)
    reg.load(path, strict=True)
    early = reg.price_call("OPENAI", "gpt-x", stats(10, 10), at=datetime(2026, 5, 31))
    assert early == CallCost(None, "unpriced")
    assert reg.price_call("OPENAI", "gpt-x", stats(10, 10), at=datetime(2026, 6, 1)).status == "calculated"


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("Open AI", "GPT-4O", "gpt-4o"),
        ("CLAUDE", "claude-sonnet-4-5", "claude-sonnet-4-5"),  # provider alias
        ("anthropic", " Claude-Sonnet-4-5 ", "claude-sonnet-4-5"),  # whitespace and case ignored
        ("Vertex", "gemini-2.5-pro", "gemini-2.5-pro"),  # no vertex row: Vertex takes the google rows
    ],
)
def test_model_matching_is_exact_on_normalised_names(
    registry: PriceRegistry, provider: str, model: str, expected: str
) -> None:
    row = registry.find(provider, model)
    assert row is not None and row.model == expected


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-2024-05-13"),  # a dated snapshot is not its alias's price ($5/$15, not $2.50/$10)
        ("openai", "gpt-4o-realtime-preview"),  # nor is a variant
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("ANTHROPIC", "claude-sonnet-4-5-20250929"),
        ("OPENAI", "gpt-4o1"),
        ("OPENAI", "gpt-5"),
        ("ANTHROPIC", "gpt-4o"),  # scoped to the provider
        ("NOBODY", "gpt-4o"),
    ],
)
def test_nothing_is_priced_by_a_guessed_prefix(registry: PriceRegistry, provider: str, model: str) -> None:
    assert registry.find(provider, model) is None
    assert registry.price_call(provider, model, stats(100, 100)).status == "unpriced"


def test_match_patterns_price_named_variants_only(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M,MATCH\n"
        "anthropic,claude-sonnet-4-5,3,15,claude-sonnet-4-5-20250929|claude-sonnet-4-5@*\n"
        "anthropic,claude-any,1,1,claude-*\n"
        "openai,gpt-4o,2.5,10,\n"
    )
    reg = PriceRegistry(shipped=False, model_info_dir=None, database=None)
    assert reg.load(path, strict=True).ok
    assert reg.find("anthropic", "claude-sonnet-4-5-20250929").model == "claude-sonnet-4-5"  # type: ignore[union-attr]
    assert reg.find("anthropic", "claude-sonnet-4-5@20250929").model == "claude-sonnet-4-5"  # type: ignore[union-attr]
    assert reg.find("anthropic", "claude-opus-9").model == "claude-any"  # type: ignore[union-attr]
    assert reg.find("openai", "gpt-4o-2024-05-13") is None


@pytest.mark.parametrize(
    ("cell", "reason"),
    [("a||b", "empty pattern"), ("*", "every model"), ("a*b*", "more than one *")],
)
def test_bad_match_patterns_are_reported(tmp_path: Path, cell: str, reason: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(f"PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M,MATCH\nx,m,1,1,{cell}\n")
    (problem,) = PriceRegistry(shipped=False, model_info_dir=None, database=None).load(path).problems
    assert problem.line == 2 and problem.column == "MATCH" and reason in problem.reason


def test_family_scopes_the_match(registry: PriceRegistry) -> None:
    small = registry.price_call("MISTRAL", "mistral-x", stats(1_000_000, 0), model_family="small")
    large = registry.price_call("MISTRAL", "mistral-x", stats(1_000_000, 0), model_family="LARGE")
    assert (small.amount, large.amount) == (Decimal(1), Decimal(10))
    assert registry.find("MISTRAL", "mistral-x", "medium") is None


def test_a_reported_cost_wins_and_the_tables_price_is_kept_as_drift(registry: PriceRegistry) -> None:
    unknown = registry.price_call("OPENROUTER", "some/model", stats(10, 10, cost=Decimal("0.0042")))
    assert unknown == CallCost(Decimal("0.0042"), "reported")
    assert unknown.drift is None
    known = registry.price_call("OPENAI", "gpt-4o", stats(1_000_000, 0, cost=Decimal(3)))
    assert known == CallCost(Decimal(3), "reported", "USD", Decimal("2.5"), "openai/gpt-4o")
    assert known.drift == Decimal("0.5")


def test_drift_above_one_percent_is_flagged() -> None:
    from statek.metering.types import drifted

    assert drifted(CallCost(Decimal("1.02"), "reported", "USD", Decimal(1)))
    assert not drifted(CallCost(Decimal("1.005"), "reported", "USD", Decimal(1)))
    assert drifted(CallCost(Decimal("0.01"), "reported", "USD", Decimal(0)))
    assert not drifted(CallCost(Decimal(1), "calculated"))


def test_unpriced_is_none_never_zero(registry: PriceRegistry) -> None:
    cost = registry.price_call("NOBODY", "x", stats(1000, 1000))
    assert cost.amount is None and cost.status == "unpriced"


@pytest.mark.parametrize(("provider", "model"), [("OPENAI", "gpt-4o"), ("NOBODY", "x")])
def test_an_answer_without_usage_is_no_usage_never_a_calculated_zero(
    registry: PriceRegistry, provider: str, model: str
) -> None:
    cost = registry.price_call(provider, model, stats(0, 0))
    assert cost == CallCost(None, "no_usage")


def test_later_layers_override_earlier_rows(registry: PriceRegistry, tmp_path: Path) -> None:
    override = tmp_path / "override.csv"
    override.write_text(
        "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M\n"
        "openai,,GPT-4O,5,,20\n"
    )
    registry.load(override, strict=True)
    assert registry.price_call("OPENAI", "gpt-4o", stats(1_000_000, 0)).amount == Decimal(5)
    assert registry.price_call("OPENAI", "gpt-4o-mini", stats(1_000_000, 0)).amount == Decimal("0.15")


def test_a_table_built_from_rows_prices_like_a_loaded_one(registry: PriceRegistry) -> None:
    table = PriceTable.from_rows(registry.table.rows())
    assert len(table) == len(registry.table) == 11
    s = stats(5000, 700, cached=1000)
    assert table.price_call("OPENAI", "gpt-4o", s) == registry.price_call("OPENAI", "gpt-4o", s)
    assert len(PriceRegistry(shipped=False, model_info_dir=None).table) == 0


def test_price_call_unpacks_the_call_detail_fields_it_means() -> None:
    from statek.metering.index import _UNPACKED

    assert _UNPACKED == (
        "cost",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
    )


def test_the_seeds_six_field_stats_are_priced_too(registry: PriceRegistry) -> None:
    from statek.types import LLM_Stats

    assert registry.price_call("OPENAI", "gpt-4o", LLM_Stats(0, 0, None, 1_000_000, 0, 0)).amount == Decimal(
        "2.5"
    )
    assert registry.price_call("OPENAI", "gpt-4o", LLM_Stats(0, 0, None)).status == "no_usage"
