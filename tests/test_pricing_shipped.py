"""The shipped default price table: valid, sourced, and pricing the models it lists."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from statek.metering import PriceRegistry, read_price_files, shipped_prices_path
from statek.types import CallDetail


@pytest.fixture(scope="module")
def shipped() -> PriceRegistry:
    return PriceRegistry(model_info_dir=None)


def test_the_shipped_table_loads_without_a_single_problem() -> None:
    report = read_price_files([shipped_prices_path()])
    assert report.problems == ()
    assert len(report.rows) >= 40


def test_every_row_names_its_source_and_the_day_it_was_checked() -> None:
    for row in read_price_files([shipped_prices_path()]).rows:
        assert row.source.startswith(("https://", "http://")), row.location
        assert row.checked is not None, row.location


@pytest.mark.parametrize("provider", ["OPENAI", "ANTHROPIC", "GEMINI", "DEEPSEEK", "XAI", "MISTRAL", "GROQ"])
def test_major_providers_are_covered(shipped: PriceRegistry, provider: str) -> None:
    assert any(r.provider == provider for r in shipped.table.rows())


def test_anthropic_rows_carry_both_cache_write_prices(shipped: PriceRegistry) -> None:
    anthropic = [r for r in shipped.table.rows() if r.provider == "ANTHROPIC"]
    assert anthropic and all(r.cache_write_5m is not None and r.cache_write_1h is not None for r in anthropic)


def test_gemini_pro_models_have_a_200k_tier(shipped: PriceRegistry) -> None:
    for model in ("gemini-2.5-pro", "gemini-3-pro-preview", "gemini-3.1-pro-preview"):
        row = shipped.find("GEMINI", model)
        assert row is not None and row.long_context_threshold == 200_000, model


def test_a_dated_provider_model_id_is_priced_out_of_the_box(shipped: PriceRegistry) -> None:
    s = CallDetail(0, 0, None, 100_000, 100_000, 0)
    cost = shipped.price_call("ANTHROPIC", "claude-sonnet-4-5-20250929", s)
    assert cost.status == "calculated" and cost.amount == Decimal("1.8")  # 0.1M * $3 + 0.1M * $15


def test_deepseek_cache_hit_price_follows_its_effective_date(shipped: PriceRegistry) -> None:
    s = CallDetail(0, 0, None, 1_000_000, 0, 1_000_000)
    before = shipped.price_call("DEEPSEEK", "deepseek-chat", s, at=datetime(2026, 4, 1))
    after = shipped.price_call("DEEPSEEK", "deepseek-chat", s, at=datetime(2026, 5, 1))
    assert (before.amount, after.amount) == (Decimal("0.028"), Decimal("0.0028"))
