"""Shipped corrections of stale database rows (statek/data/overrides.csv, issue 21).

Each override must (1) be what statek prices the model at, and (2) still disagree with the installed
genai-prices: when the database catches up, the second test fails, and the row is to be removed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from statek.metering import PriceRegistry, read_price_files
from statek.metering.database import default_database
from statek.metering.index import database_row
from statek.metering.records import provider_key
from statek.metering.registry import shipped_price_paths
from statek.types import CallDetail

OVERRIDES = next(p for p in shipped_price_paths() if p.name == "overrides.csv")
ROWS = read_price_files([OVERRIDES]).rows


def test_the_overrides_load_cleanly_with_sources() -> None:
    report = read_price_files([OVERRIDES])
    assert report.problems == () and len(report.rows) >= 7
    assert all(row.source.startswith("https://") and row.checked is not None for row in report.rows)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.model)
def test_the_database_still_disagrees_else_remove_the_override(row: object) -> None:
    from statek.metering.records import PriceRow

    assert isinstance(row, PriceRow)
    found = default_database().find(provider_key(row.provider), row.model)
    assert found is not None, f"the database no longer lists {row.model}: check the override"
    theirs = database_row(found, datetime.now(timezone.utc))
    assert (theirs.input, theirs.cached, theirs.output) != (row.input, row.cached, row.output), (
        f"genai-prices now prices {row.model} as overrides.csv does: remove the override"
    )


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        # DeepSeek's unified prices: $0.28 cache miss, $0.028 cache hit, $0.42 output, at every hour
        ("DEEPSEEK", "deepseek-chat", 800 * Decimal("0.28") + 200 * Decimal("0.028") + 100 * Decimal("0.42")),
        (
            "DEEPSEEK",
            "deepseek-reasoner",
            800 * Decimal("0.28") + 200 * Decimal("0.028") + 100 * Decimal("0.42"),
        ),
        # mistral-large-latest is Mistral Large 3: $0.50 / $0.05 cached / $1.50
        (
            "MISTRAL",
            "mistral-large-latest",
            800 * Decimal("0.5") + 200 * Decimal("0.05") + 100 * Decimal("1.5"),
        ),
        # a fine-tuned gpt-4o: $3.75 / $1.875 cached / $15
        (
            "OPENAI",
            "ft:gpt-4o-2024-08-06:acme::abc123",
            800 * Decimal("3.75") + 200 * Decimal("1.875") + 1500,
        ),
    ],
)
def test_overridden_models_are_priced_at_the_current_price(
    provider: str, model: str, expected: Decimal
) -> None:
    registry = PriceRegistry(model_info_dir=None)
    for hour in (3, 18):  # DeepSeek's old off-peak window was 16:30-00:30 UTC
        at = datetime(2026, 12, 1, hour, tzinfo=timezone.utc)
        cost = registry.price_call(provider, model, CallDetail(0, 0, None, 1000, 100, 200), at=at)
        assert cost.amount == expected / 1_000_000, hour


def test_newer_price_data_can_be_used_without_a_release() -> None:
    from genai_prices.data import providers as bundled

    from statek.metering import default_registry, set_default_registry, use_price_data
    from statek.metering.database import PriceDatabase

    previous = set_default_registry(PriceRegistry(shipped=False, model_info_dir=None))
    try:
        detail = CallDetail(0, 0, None, 1_000_000, 0)
        before = default_registry().price_call("OPENAI", "gpt-4o", detail)
        # "newer data": the bundled providers with gpt-4o's input price changed, as a fetched snapshot would be
        import copy

        newer = copy.deepcopy([p for p in bundled if p.id == "openai"])
        model = next(m for m in newer[0].models if m.id == "gpt-4o")
        prices = model.prices if not isinstance(model.prices, list) else model.prices[-1].prices
        prices.input_mtok = Decimal("1.23")
        use_price_data(newer)
        after = default_registry().price_call("OPENAI", "gpt-4o", detail)
        assert (before.amount, after.amount) == (Decimal("2.5"), Decimal("1.23"))
        assert isinstance(default_registry().database, PriceDatabase)
    finally:
        set_default_registry(previous)


GAPS = next(p for p in shipped_price_paths() if p.name == "gaps.csv")


def test_gap_rows_are_only_for_ids_the_database_does_not_price() -> None:
    """gaps.csv holds LiteLLM's prices for ids the database lacks; once the database prices one, its
    row would hide the database's (maintained) price: regenerate the file (statek/data/PRICES.md)."""
    report = read_price_files([GAPS])
    assert report.problems == () and len(report.rows) > 500
    database = default_database()
    now_priced = [
        (r.provider, r.model)
        for r in report.rows
        if database.provider(provider_key(r.provider)) is not None
        and database.find(provider_key(r.provider), r.model) is not None
    ]
    assert now_priced == []


def test_openrouter_free_variants_cost_nothing() -> None:
    registry = PriceRegistry(model_info_dir=None)
    cost = registry.price_call(
        "OPENROUTER", "meta-llama/llama-3.3-70b-instruct:free", CallDetail(0, 0, None, 1000, 100)
    )
    assert (cost.status, cost.amount, cost.price_model) == ("calculated", 0, "openrouter/:free")
