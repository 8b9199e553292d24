"""The genai-prices layer: every model of every catalogue provider the database knows is priced, and
statek's compiled arithmetic agrees with genai-prices' own ``calc_price`` to the last digit."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.llm_api import CallDetail
from statek.metering import PriceRegistry
from statek.metering.database import default_database
from statek.providers.anthropic import ClaudeAI_API
from statek.providers.catalog import CATALOG
from statek.providers.vertex import VertexAI_API

# (statek pricing provider, database provider) of every provider statek ships
PROVIDERS = [(row.pricing_provider, row.price_provider, row.key) for row in CATALOG] + [
    (ClaudeAI_API.provider_key, "anthropic", "ANTHROPIC"),
    (VertexAI_API.pricing_provider, "google", "VERTEXAI"),
]
LOCAL = {"OLLAMA", "LMSTUDIO", "VLLM", "SGLANG", "LLAMA_CPP"}


@pytest.fixture(scope="module")
def registry() -> PriceRegistry:
    return PriceRegistry(shipped=False, model_info_dir=None)


def _usage(inp: int, cached: int, write: int, write_1h: int, out: int, reasoning: int) -> Usage:
    return Usage(
        input_tokens=inp,
        cache_read_tokens=cached,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        output_tokens=out,
        output_reasoning_tokens=reasoning,
    )


def _ref(match: object, fallback: str) -> str:
    """A model id the database's match clause accepts (what a user sends to the provider)."""
    for attr in ("equals", "starts_with", "contains"):
        if isinstance(getattr(match, attr, None), str):
            return getattr(match, attr)  # type: ignore[no-any-return]
    for attr in ("or_", "and_"):
        clauses = getattr(match, attr, None)
        if clauses:
            return _ref(clauses[0], fallback)
    return fallback


def test_local_servers_have_no_database_provider() -> None:
    by_key = {key: price for _, price, key in PROVIDERS}
    assert all(by_key[key] is None for key in LOCAL)


def owner_of(database: Any, info: Any) -> Any:
    return next(p for p in database.providers if any(m is info for m in p.models))


@pytest.mark.parametrize(("pricing", "price", "key"), PROVIDERS, ids=[key for _, _, key in PROVIDERS])
def test_every_model_the_database_knows_is_priced_exactly_as_genai_prices_prices_it(
    registry: PriceRegistry, pricing: str, price: str | None, key: str
) -> None:
    if price is None:
        assert (
            registry.price_call(
                pricing, "gpt-4o", CallDetail(0, 0, None, 10, 10, 0), database_provider=price
            ).status
            == "unpriced"
        )
        return
    database = default_database()
    provider = database.provider(price)
    assert provider is not None and provider.id == price
    at = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    priced = 0
    for listed in provider.models:
        ref = _ref(listed.match, listed.id)
        info = provider.find_model(ref, all_providers=database.providers)
        assert info is not None, ref
        stats = CallDetail(0, 0, None, 120_000, 3_000, 20_000, 10_000, 4_000, 1_000)
        cost = registry.price_call(pricing, ref, stats, at=at, database_provider=price)
        found = database.find(price, ref)
        if found is None:  # no token price (audio, images, embeddings by characters)
            assert cost.status == "unpriced", ref
            continue
        if not found.rate_at(at).output_listed:  # an embedding model: output it does not price
            assert cost.status == "unpriced", ref
            assert (
                registry.price_call(
                    pricing, ref, CallDetail(0, 0, None, 1000, 0), at=at, database_provider=price
                ).amount
                == info.calc_price(
                    _usage(1000, 0, 0, 0, 0, 0), owner_of(database, info), genai_request_timestamp=at
                ).total_price
            ), ref
            continue
        owner = next(p for p in database.providers if any(m is info for m in p.models))
        usage = _usage(120_000, 20_000, 10_000, 4_000, 3_000, 1_000)
        want = info.calc_price(usage, owner, genai_request_timestamp=at)
        assert cost.status == "calculated" and cost.amount == want.total_price, (key, ref)
        priced += 1
    assert priced > 0


# Hand-checked against the providers' published prices (USD per million tokens, input / output).
@pytest.mark.parametrize(
    ("pricing", "price", "model", "input_price", "output_price"),
    [
        ("openai", "openai", "gpt-4o-mini", "0.15", "0.60"),
        ("anthropic", "anthropic", "claude-haiku-4-5", "1", "5"),
        ("GEMINI", "google", "gemini-2.5-flash", "0.30", "2.50"),
        ("groq", "groq", "llama-3.1-8b-instant", "0.05", "0.08"),
        ("deepseek", "deepseek", "deepseek-v4-flash", "0.15", "0.60"),  # since 2026-09-10, off-peak
        ("mistral", "mistral", "codestral-latest", "0.30", "0.90"),
        ("xai", "x-ai", "grok-4", "3", "15"),
        ("cerebras", "cerebras", "llama3.1-8b", "0.10", "0.10"),
    ],
)
def test_a_sample_matches_the_published_price(
    registry: PriceRegistry, pricing: str, price: str, model: str, input_price: str, output_price: str
) -> None:
    at = datetime(2026, 11, 30, 20, tzinfo=timezone.utc)  # outside DeepSeek's 00:30-16:30 UTC window
    cost = registry.price_call(
        pricing, model, CallDetail(0, 0, None, 100_000, 100_000, 0), at=at, database_provider=price
    )
    assert cost.status == "calculated"
    assert cost.amount == (Decimal(input_price) + Decimal(output_price)) / 10


_MODELS = [(p.id, m) for p in default_database().providers for m in p.models]


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(_MODELS) - 1),
    inp=st.integers(0, 3_000_000),
    cached_part=st.floats(0, 1),
    write_part=st.floats(0, 1),
    hour_part=st.floats(0, 1),
    out=st.integers(0, 200_000),
    reasoning_part=st.floats(0, 1),
    when=st.datetimes(datetime(2023, 1, 1), datetime(2027, 12, 31), timezones=st.just(timezone.utc)),
)
def test_compiled_rates_equal_genai_prices_arithmetic(
    which: int,
    inp: int,
    cached_part: float,
    write_part: float,
    hour_part: float,
    out: int,
    reasoning_part: float,
    when: datetime,
) -> None:
    provider_id, info = _MODELS[which]
    database = default_database()
    provider = database.provider(provider_id)
    from statek.metering.database import build_model

    model = build_model(provider, info)  # type: ignore[arg-type]
    if model is None:
        return
    cached = int(inp * cached_part)
    write = int((inp - cached) * write_part)
    write_1h = int(write * hour_part)
    reasoning = int(out * reasoning_part)
    want = info.calc_price(
        _usage(inp, cached, write, write_1h, out, reasoning), provider, genai_request_timestamp=when
    )  # type: ignore[arg-type]
    assert model.rate_at(when).cost(inp, cached, write, write_1h, out, reasoning) == want.total_price
