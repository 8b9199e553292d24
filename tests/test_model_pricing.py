"""Seed pricing API: ModelPricing, get/set/init_model_pricing, and their effect on price_call."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from statek.exceptions import PricingError
from statek.metering import PriceRegistry, price_call, set_default_registry
from statek.model_pricing import ModelPricing, get_model_pricing, init_model_pricing, set_model_pricing
from statek.types import CallDetail

SEED = "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M\n"


@pytest.fixture(autouse=True)
def empty_default_registry() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    yield registry
    set_default_registry(previous)


def test_model_pricing_is_valid_with_input_and_output_prices() -> None:
    assert ModelPricing(Decimal(1), None, Decimal(2)).is_valid
    assert not ModelPricing(Decimal(1), Decimal("0.5"), None).is_valid
    assert not ModelPricing().is_valid


def test_get_creates_a_remembered_placeholder_unless_no_create() -> None:
    assert get_model_pricing("OpenAI", "gpt-new", no_create=True) is None
    placeholder = get_model_pricing("OpenAI", "gpt-new")
    assert placeholder == ModelPricing(None, None, None) and not placeholder.is_valid
    assert get_model_pricing("OPEN AI", "GPT-NEW") is placeholder
    assert get_model_pricing("openai", "gpt-new", no_create=True) is placeholder


def test_set_returns_the_record_in_effect_and_get_finds_it_by_normalised_names() -> None:
    record = set_model_pricing("Open AI", "gpt-4 turbo", "10", 30, input_price_per_cached_M=Decimal(5))
    assert record == ModelPricing(Decimal(10), Decimal(5), Decimal(30))
    assert get_model_pricing("OPENAI", "GPT-4TURBO") == record
    assert get_model_pricing("openai", "gpt-4turbo-2024-04-09", no_create=True) is None  # exact only


def test_set_replaces_a_placeholder_and_prices_calls() -> None:
    get_model_pricing("X", "m")
    set_model_pricing("X", "m", 0.15, 0.6)  # floats by their decimal spelling
    assert get_model_pricing("X", "m") == ModelPricing(Decimal("0.15"), None, Decimal("0.6"))
    cost = price_call("x", "M", CallDetail(0, 0, None, 1_000_000, 1_000_000, 0))
    assert cost.amount == Decimal("0.75") and cost.status == "calculated"


def test_set_with_family_scopes_the_record() -> None:
    set_model_pricing("X", "m", 1, 2, model_family="fam")
    set_model_pricing("X", "m", 3, 4, model_family="other")
    assert get_model_pricing("X", "m", model_family="FAM") == ModelPricing(Decimal(1), None, Decimal(2))
    assert get_model_pricing("X", "m", "other").input_price_per_M == Decimal(3)  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [None, "abc", -1, float("nan")])
def test_set_rejects_missing_negative_or_non_numeric_prices(bad: object) -> None:
    with pytest.raises(ValueError, match="input_price_per_M"):
        set_model_pricing("X", "m", bad, 1)  # type: ignore[arg-type]


def test_set_replaces_every_dated_version(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(
        "PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M,VALID_FROM\nX,m,1,1,\nX,m,2,2,2020-01-01\n"
    )
    init_model_pricing(tmp_path, strict=True)
    assert get_model_pricing("X", "m").input_price_per_M == Decimal(2)  # type: ignore[union-attr]
    set_model_pricing("X", "m", 9, 9)
    assert get_model_pricing("X", "m").input_price_per_M == Decimal(9)  # type: ignore[union-attr]


def test_init_loads_csv_and_txt_recursively(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(SEED + "OpenAI,,gpt-a,1,0.5,2\n")
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "nested" / "deeper" / "b.txt").write_text(SEED + "Anthropic,claude,claude-b,3,,15\n")
    (tmp_path / "nested" / "ignored.json").write_text("{}")
    report = init_model_pricing(tmp_path)
    assert report.ok and len(report.rows) == 2
    assert get_model_pricing("OPENAI", "gpt-a") == ModelPricing(Decimal(1), Decimal("0.5"), Decimal(2))
    assert get_model_pricing("ANTHROPIC", "claude-b", "Claude") == ModelPricing(Decimal(3), None, Decimal(15))


def test_init_later_files_override_earlier_ones(tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir(), second.mkdir()
    (first / "p.csv").write_text(SEED + "X,,m,1,,1\n")
    (second / "p.csv").write_text(SEED + "X,,m,2,,2\n")
    init_model_pricing(first)
    init_model_pricing(second)
    assert get_model_pricing("X", "m").input_price_per_M == Decimal(2)  # type: ignore[union-attr]


def test_init_reports_problems_leniently_and_raises_in_strict_mode(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(SEED + "X,,good,1,,1\nX,,bad,x,,1\n")
    with pytest.raises(PricingError) as caught:
        init_model_pricing(tmp_path, strict=True)
    assert caught.value.problems == [f"{bad}:3: INPUT_PRICE_PER_M: bad number 'x'"]
    assert get_model_pricing("X", "good", no_create=True) is None
    report = init_model_pricing(tmp_path)
    assert [str(p) for p in report.problems] == caught.value.problems
    assert get_model_pricing("X", "good", no_create=True) is not None


def test_init_of_a_missing_folder_is_a_reported_problem(tmp_path: Path) -> None:
    report = init_model_pricing(tmp_path / "missing")
    assert [str(p) for p in report.problems] == [f"{tmp_path / 'missing'}: no such file or folder"]
