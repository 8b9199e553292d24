"""The default prices: the genai-prices database below the small shipped table, as a user gets them."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from statek.metering import PriceRegistry, read_price_files, shipped_prices_path
from statek.metering.database import default_database
from statek.types import CallDetail


@pytest.fixture(scope="module")
def default() -> PriceRegistry:
    return PriceRegistry(model_info_dir=None)


def stats(
    inp: int, out: int, cached: int = 0, write: int = 0, write_1h: int = 0, reasoning: int = 0
) -> CallDetail:
    return CallDetail(0, 0, None, inp, out, cached, write, write_1h, reasoning)


def test_the_shipped_table_loads_without_a_single_problem_and_names_its_sources() -> None:
    report = read_price_files([shipped_prices_path()])
    assert report.problems == ()
    for row in report.rows:
        assert row.source.startswith(("https://", "http://")), row.location
        assert row.checked is not None, row.location


def test_the_shipped_table_holds_only_models_the_database_lacks() -> None:
    from statek.metering.records import provider_key

    database = default_database()
    for row in read_price_files([shipped_prices_path()]).rows:
        assert database.find("google", row.model) is None, row.location
        if database.provider(provider_key(row.provider)) is not None:  # DashScope etc.: no such provider
            assert database.find(provider_key(row.provider), row.model) is None, row.location


# Each example of the issue, against the provider's published price (USD per million tokens).
@pytest.mark.parametrize(
    ("provider", "model", "input_price", "output_price"),
    [
        ("XAI", "grok-4-fast-reasoning", "0.20", "0.50"),  # was priced as grok-4's $3/$15
        ("OPENAI", "gpt-4o-realtime-preview", "5", "20"),  # was gpt-4o's $2.50/$10
        ("OPENAI", "gpt-4o-2024-05-13", "5", "15"),  # a dated snapshot is not its alias's price
        ("OPENAI", "gpt-4o", "2.50", "10"),
        ("GEMINI", "gemini-2.5-flash-preview-tts", "0.50", "10"),  # TTS is not the text price
        ("ANTHROPIC", "claude-sonnet-4-5", "3", "15"),
        ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "3.30", "16.50"),
    ],
)
def test_the_mispricing_examples_are_priced_as_the_provider_bills(
    default: PriceRegistry, provider: str, model: str, input_price: str, output_price: str
) -> None:
    cost = default.price_call(provider, model, stats(100_000, 100_000))  # below every long-context tier
    assert cost.status == "calculated"
    assert cost.amount == (Decimal(input_price) + Decimal(output_price)) / 10


def test_cached_prices_are_now_known_for_gemini_mistral_and_xai(default: PriceRegistry) -> None:
    for provider, model in (
        ("GEMINI", "gemini-2.5-flash"),
        ("MISTRAL", "mistral-small-latest"),
        ("XAI", "grok-4"),
    ):
        row = default.find(provider, model)
        assert row is not None and row.cached is not None and row.cached < row.input, (provider, model)


def test_anthropic_cache_writes_are_billed_at_their_5m_and_1h_prices(default: PriceRegistry) -> None:
    # claude-sonnet-4-5: input $3, 5-minute write $3.75, 1-hour write $6, cache read $0.30
    cost = default.price_call("ANTHROPIC", "claude-sonnet-4-5", stats(150_000, 0, 0, 100_000, 50_000))
    assert cost.amount == (50_000 * Decimal(3) + 50_000 * Decimal("3.75") + 50_000 * Decimal(6)) / 1_000_000


def test_gemini_long_context_tier_applies_above_200k_prompt_tokens(default: PriceRegistry) -> None:
    small = default.price_call("GEMINI", "gemini-2.5-pro", stats(200_000, 0))
    large = default.price_call("GEMINI", "gemini-2.5-pro", stats(200_001, 0))
    assert small.amount == Decimal("1.25") * Decimal("0.2")
    assert large.amount == Decimal("2.5") * Decimal("0.200001")


def test_perplexity_per_request_fee_is_added_to_every_call(default: PriceRegistry) -> None:
    model = default_database().find("perplexity", "sonar")
    assert model is not None
    row = default.find("PERPLEXITY", "sonar")
    assert row is not None and row.request_fee_per_k is not None and row.request_fee_per_k > 0
    cost = default.price_call("PERPLEXITY", "sonar", stats(1_000_000, 0))
    assert cost.amount == row.input + row.request_fee_per_k / 1000


def test_deepseek_off_peak_prices_follow_the_time_of_day() -> None:
    model = default_database().find("deepseek", "deepseek-chat")
    assert model is not None and any(c is not None and c.start_time is not None for c, _ in model.rates)
    # deepseek-chat in genai-prices: $0.27 input from 00:30 to 16:30 UTC, $0.135 off-peak
    peak = model.rate_at(datetime(2025, 3, 1, 1, 0, tzinfo=timezone.utc)).cost(1_000_000, 0, 0, 0, 0)
    off_peak = model.rate_at(datetime(2025, 3, 1, 17, 0, tzinfo=timezone.utc)).cost(1_000_000, 0, 0, 0, 0)
    assert (peak, off_peak) == (Decimal("0.27"), Decimal("0.135"))


def test_local_servers_stay_unpriced_unless_the_user_gives_a_price(default: PriceRegistry) -> None:
    for provider in ("ollama", "lmstudio", "vllm", "sglang", "llama_cpp"):
        assert default.price_call(provider, "llama3.1:8b", stats(100, 100)).status == "unpriced"
        assert default.price_call(provider, "gpt-4o", stats(100, 100)).status == "unpriced"


def test_import_statek_does_not_load_the_database() -> None:
    import subprocess
    import sys

    code = "import sys, statek; print('genai_prices.data' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
