"""The original STATEK's pricing API, as its users rely on it (upstream-contract.md, "Pricing" and
"LLM_Usage"): context bytes, pricing records never None, placeholders filled in place, last row wins,
file loads over set_model_pricing, trailing empty fields."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from statek.executors.job import Job
from statek.executors.llm_usage import LLM_Usage
from statek.metering import PriceRegistry, price_call, set_default_registry
from statek.model_pricing import ModelPricing, get_model_pricing, init_model_pricing, set_model_pricing
from statek.types import CallDetail
from tests.test_telemetry_support import call, scripted_api

SEED = "PROVIDER,MODEL_FAMILY,MODEL,INPUT_PRICE_PER_M,INPUT_PRICE_PER_CACHED_M,OUTPUT_PRICE_PER_M\n"
MILLION = CallDetail(0, 0, None, 1_000_000, 0, 0)


@pytest.fixture(autouse=True)
def fresh_prices() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None, database=None)
    previous = set_default_registry(registry)
    yield registry
    set_default_registry(previous)


async def test_context_bytes_is_bytes_sent_plus_received_after_every_call() -> None:
    api = scripted_api()
    async with Job("j") as job:
        for n in range(3):
            response = await call(api, f"in={10 + n} out=2", nonce=n)
            usage = job.usage
            assert usage.context_bytes == usage.total_bytes_sent + usage.total_bytes_received > 0
            assert response.stats.total_bytes_sent > 0
    by_hand = LLM_Usage()
    by_hand.record("X", "m", CallDetail(100, 250, None, 1, 1, 0))
    by_hand.record_failure("X", "m", 7, 3)
    assert by_hand.context_bytes == 360


def test_for_model_and_a_jobs_usage_always_carry_a_pricing_record() -> None:
    unknown = LLM_Usage.for_model("OpenAI", "never-heard-of-it")
    assert isinstance(unknown.pricing, ModelPricing) and not unknown.pricing.is_valid
    assert isinstance(Job("j").usage.pricing, ModelPricing)
    set_model_pricing("OpenAI", "known", 1, 2)
    assert LLM_Usage.for_model("OPENAI", "known").pricing == ModelPricing(Decimal(1), None, Decimal(2))


def test_set_model_pricing_fills_the_placeholder_in_place_and_prices_every_later_call() -> None:
    usage = LLM_Usage.for_model("OpenAI", "gpt-new")
    placeholder = get_model_pricing("OPENAI", "GPT-NEW")
    assert usage.pricing is placeholder and not placeholder.is_valid
    assert price_call("OpenAI", "gpt-new", MILLION).status == "unpriced"
    returned = set_model_pricing("OpenAI", "gpt-new", "3", "4")
    assert returned is placeholder  # the record callers already hold is filled, as in the original
    assert usage.pricing == ModelPricing(Decimal(3), None, Decimal(4)) and usage.pricing.is_valid
    for _ in range(3):
        assert price_call("openai", "gpt-new", MILLION).amount == Decimal(3)


def test_set_model_pricing_with_unchanged_prices_returns_the_same_record() -> None:
    first = set_model_pricing("OpenAI", "steady", "1.5", "6")
    again = set_model_pricing("OPENAI", " steady ", Decimal("1.50"), 6)
    assert again is first and first == ModelPricing(Decimal("1.5"), None, Decimal(6))


def test_a_row_with_a_trailing_extra_field_loads_as_with_csv_dictreader(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(f"{SEED}OpenAI,,m,1.5,,2,a note\n")
    report = init_model_pricing(tmp_path)
    assert len(report.rows) == 1 and all(p.warning for p in report.problems)
    assert price_call("OpenAI", "m", MILLION).amount == Decimal("1.5")


def test_in_price_files_the_last_row_for_a_key_wins_and_the_duplicate_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "p.csv").write_text(f"{SEED}OpenAI,,m,1,,1\nOpenAI,,m,5,,5\n")
    with caplog.at_level(logging.WARNING, logger="statek.metering"):
        report = init_model_pricing(tmp_path, strict=True)  # a warning does not stop a strict load
    assert [p.warning for p in report.problems] == [True]
    assert "duplicate" in caplog.text
    assert price_call("OpenAI", "m", MILLION).amount == Decimal(5)


def test_a_later_init_model_pricing_overrides_an_earlier_set_model_pricing(tmp_path: Path) -> None:
    set_model_pricing("OpenAI", "m", 1, 1)
    (tmp_path / "p.csv").write_text(f"{SEED}OpenAI,,m,7,,7\n")
    init_model_pricing(tmp_path)
    assert price_call("OpenAI", "m", MILLION).amount == Decimal(7)
    set_model_pricing("OpenAI", "m", 2, 2)  # and a later set overrides the file again
    assert price_call("OpenAI", "m", MILLION).amount == Decimal(2)


def test_a_row_with_a_trailing_extra_empty_field_loads(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text(f"{SEED}OpenAI,,m,1.5,,2,\nOpenAI,,n,1,,2,,\n")
    report = init_model_pricing(tmp_path, strict=True)
    assert report.problems == () and len(report.rows) == 2
    assert price_call("OpenAI", "m", MILLION).amount == Decimal("1.5")


def test_exact_model_match_only_as_in_the_original(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(f"{SEED}OpenAI,,gpt-4o,2.5,,10\n")
    init_model_pricing(tmp_path)
    assert get_model_pricing("OpenAI", "gpt-4o-mini", no_create=True) is None
    assert get_model_pricing(" open ai ", "GPT-4O") == ModelPricing(Decimal("2.5"), None, Decimal(10))
