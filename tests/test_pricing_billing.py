"""Calls billed by more than their model id and token counts (issue 21): service tiers, audio and image
tokens, BYOK, fees an answer itemises, the endpoint that served the call.

Each case reads a real-shaped answer with the wire codec statek uses, prices it with the default
registry (the genai-prices database below the shipped files) and compares with the amount derived, in
a comment, from the provider's published price (USD per million tokens unless said otherwise).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.metering import PriceRegistry
from statek.metering.cost import Prices, compile_rate
from statek.metering.index import STANDARD_TIERS
from statek.types import CallDetail
from statek.wire import gemini, openai_chat
from statek.wire.billing import tier_label
from statek.wire.openai_chat import OPENAI_PROFILE

RECORDINGS = Path(__file__).parent / "recordings"
M = Decimal(1_000_000)


@pytest.fixture(scope="module")
def registry() -> PriceRegistry:
    return PriceRegistry(model_info_dir=None)


def openai_answer(model: str, usage: dict[str, Any], **top: Any) -> CallDetail:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": usage,
        **top,
    }
    return openai_chat.read_whole(body, OPENAI_PROFILE, 100, 200).detail


def gemini_answer(model: str, usage: dict[str, Any]) -> CallDetail:
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
        "usageMetadata": usage,
        "modelVersion": model,
    }
    return gemini.read_response(body, 100, 200)[2]


# ----------------------------------------------------------------------------- service tiers
GPT5_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 500,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 300, "audio_tokens": 0},
}


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        # gpt-5 standard $1.25 in / $0.125 cached / $10 out: 800*1.25 + 200*0.125 + 500*10
        ("default", (800 * Decimal("1.25") + 200 * Decimal("0.125") + 500 * 10) / M),
        # flex halves every rate: $0.625 / $0.0625 / $5
        ("flex", (800 * Decimal("0.625") + 200 * Decimal("0.0625") + 500 * 5) / M),
        # priority: $2.50 / $0.25 / $20
        ("priority", (800 * Decimal("2.5") + 200 * Decimal("0.25") + 500 * 20) / M),
    ],
)
def test_openai_service_tier_is_priced_at_that_tiers_rates(
    registry: PriceRegistry, tier: str, expected: Decimal
) -> None:
    detail = openai_answer("gpt-5-2025-08-07", GPT5_USAGE, service_tier=tier)
    assert detail.service_tier == tier
    cost = registry.price_call("OPENAI", "gpt-5", detail)
    assert (cost.status, cost.amount) == ("calculated", expected)
    assert cost.price_model == ("openai/gpt-5" if tier == "default" else f"openai:{tier}/gpt-5")


def test_a_tier_without_a_price_is_unpriced_never_the_standard_rate(registry: PriceRegistry) -> None:
    for tier in ("scale", "batch", "flex"):  # gpt-4o has no flex price; no row prices scale or batch
        detail = openai_answer("gpt-4o", GPT5_USAGE, service_tier=tier)
        assert registry.price_call("OPENAI", "gpt-4o", detail).status == "unpriced", tier


def test_a_streamed_answer_keeps_its_tier(registry: PriceRegistry) -> None:
    chunks = [
        {
            "id": "c",
            "model": "gpt-5",
            "service_tier": "flex",
            "choices": [{"index": 0, "delta": {"content": "h"}}],
        },
        {"id": "c", "model": "gpt-5", "service_tier": "flex", "choices": [], "usage": GPT5_USAGE},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    for keep_content in (True, False):
        reader = openai_chat.ChatStreamReader(OPENAI_PROFILE, keep_content=keep_content)
        reader.feed(body.encode())
        detail = reader.finish(1, 1).detail
        assert detail.service_tier == "flex"
        assert registry.price_call("OPENAI", "gpt-5", detail).amount == Decimal("0.0030125")


def test_vertex_flex_traffic_is_priced_at_vertex_flex_rates(registry: PriceRegistry) -> None:
    # Vertex gemini-2.5-flash Flex PayGo: $0.15 in / $0.03 cached / $1.25 out (standard $0.30 / $2.50)
    usage = {
        "promptTokenCount": 1000,
        "cachedContentTokenCount": 400,
        "candidatesTokenCount": 100,
        "thoughtsTokenCount": 50,
        "totalTokenCount": 1150,
        "trafficType": "ON_DEMAND_FLEX",
    }
    detail = gemini_answer("gemini-2.5-flash", usage)
    assert detail.service_tier == "flex"
    cost = registry.price_call("VERTEX", "gemini-2.5-flash", detail)
    assert cost.amount == (600 * Decimal("0.15") + 400 * Decimal("0.03") + 150 * Decimal("1.25")) / M


def test_the_recorded_vertex_flex_stream_is_priced_at_the_flex_rate(registry: PriceRegistry) -> None:
    # gemini-3-flash-preview Flex: $0.25 in / $1.50 out, half the standard $0.50 / $3.00;
    # the recording: 5 prompt tokens, 1 candidate + 100 thoughts
    reader = gemini.ContentStreamReader()
    reader.feed((RECORDINGS / "vertex_flex_stream.sse").read_bytes())
    detail = reader.finish(1, 1).detail
    assert detail.service_tier == "flex"
    cost = registry.price_call("VERTEX", detail.response_model or "", detail)
    assert cost.amount == (5 * Decimal("0.25") + 101 * Decimal("1.5")) / M


def test_openai_tier_prices_come_from_the_database_from_the_day_it_has_them(registry: PriceRegistry) -> None:
    detail = openai_answer("gpt-5", GPT5_USAGE, service_tier="flex")
    before = registry.price_call("OPENAI", "gpt-5", detail, at=datetime(2026, 10, 1, tzinfo=timezone.utc))
    assert before.status == "unpriced"  # genai-prices has gpt-5's flex rates from 2026-10-12 only
    after = registry.price_call("OPENAI", "gpt-5", detail, at=datetime(2026, 10, 12, tzinfo=timezone.utc))
    assert after.price_model == "openai:flex/gpt-5" and after.amount == Decimal("0.0030125")


def test_anthropic_standard_tier_is_standard_and_groq_flex_is_on_demand(registry: PriceRegistry) -> None:
    from statek.wire import anthropic_messages

    usage = {"input_tokens": 1000, "output_tokens": 100, "service_tier": "standard"}
    detail = anthropic_messages.usage_detail(usage, 0, 0, "claude-sonnet-4-5")
    assert detail.service_tier == "standard"
    # claude-sonnet-4-5: $3 in / $15 out
    assert registry.price_call("ANTHROPIC", "claude-sonnet-4-5", detail).amount == (1000 * 3 + 100 * 15) / M
    priority = anthropic_messages.usage_detail({**usage, "service_tier": "priority"}, 0, 0)
    assert registry.price_call("ANTHROPIC", "claude-sonnet-4-5", priority).status == "unpriced"
    flex = openai_answer(
        "llama-3.3-70b-versatile", {"prompt_tokens": 1000, "completion_tokens": 100}, service_tier="flex"
    )
    standard = openai_answer("llama-3.3-70b-versatile", {"prompt_tokens": 1000, "completion_tokens": 100})
    groq_flex = registry.price_call("GROQ", "llama-3.3-70b-versatile", flex)
    assert groq_flex.status == "calculated"
    assert groq_flex.amount == registry.price_call("GROQ", "llama-3.3-70b-versatile", standard).amount


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("flex", "flex"),
        ("ON_DEMAND", "default"),
        ("ON_DEMAND_PRIORITY", "priority"),
        ("x" * 41, None),
        ("", None),
        (7, None),
        ("fl ex", None),
        ("PROVISIONED_THROUGHPUT", "provisioned_throughput"),
    ],
)
def test_tier_labels(value: Any, label: str | None) -> None:
    assert tier_label(value) == label
    assert "default" in STANDARD_TIERS


# ----------------------------------------------------------------------------- audio and images
def test_gpt_audio_tokens_are_priced_at_audio_rates(registry: PriceRegistry) -> None:
    # gpt-audio: text $2.50 in / $10 out; audio $32 in / $64 out
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 400},
    }
    detail = openai_answer("gpt-audio-2025-08-28", usage)
    assert (detail.input_audio_tokens, detail.output_audio_tokens) == (800, 400)
    cost = registry.price_call("OPENAI", "gpt-audio", detail)
    assert cost.amount == (200 * Decimal("2.5") + 800 * 32 + 100 * 10 + 400 * 64) / M


def test_gemini_image_output_is_priced_at_the_image_rate(registry: PriceRegistry) -> None:
    # gemini-2.5-flash-image: $0.30 in, $30 per million image output tokens (a 1024px image is 1290):
    # 20 * 0.30 + 1290 * 30 = 0.038706 USD (as text it would be 0.003231)
    usage = {
        "promptTokenCount": 20,
        "candidatesTokenCount": 1290,
        "totalTokenCount": 1310,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 20}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
    }
    detail = gemini_answer("gemini-2.5-flash-image", usage)
    assert detail.output_image_tokens == 1290
    assert registry.price_call("GEMINI", "gemini-2.5-flash-image", detail).amount == Decimal("0.038706")


def test_gemini_audio_input_and_cached_audio_are_priced_at_audio_rates(registry: PriceRegistry) -> None:
    # gemini-2.5-flash: text $0.30 in / $0.03 cached; audio $1.00 in / $0.10 cached; $2.50 out
    usage = {
        "promptTokenCount": 3000,
        "cachedContentTokenCount": 1000,
        "candidatesTokenCount": 100,
        "totalTokenCount": 3100,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 1000},
            {"modality": "AUDIO", "tokenCount": 2000},
        ],
        "cacheTokensDetails": [
            {"modality": "TEXT", "tokenCount": 400},
            {"modality": "AUDIO", "tokenCount": 600},
        ],
    }
    detail = gemini_answer("gemini-2.5-flash", usage)
    assert (detail.input_audio_tokens, detail.cached_audio_tokens) == (2000, 600)
    expected = (
        600 * Decimal("0.3") + 400 * Decimal("0.03") + 1400 * 1 + 600 * Decimal("0.1") + 100 * Decimal("2.5")
    ) / M
    assert registry.price_call("GEMINI", "gemini-2.5-flash", detail).amount == expected


_MODAL_PRICES = st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=3))


@settings(max_examples=300, deadline=None)
@given(
    prices=st.tuples(*[_MODAL_PRICES] * 5),
    text=st.tuples(*[st.integers(0, 10**6)] * 3),
    parts=st.tuples(*[st.integers(0, 10**6)] * 5),
)
def test_modality_carve_out_matches_the_unit_hierarchy(
    prices: tuple[Decimal | None, ...], text: tuple[int, int, int], parts: tuple[int, ...]
) -> None:
    """Each token is priced once: at its modality's price when listed, else at its parent's."""
    uncached_text, cached_text, out_text = text
    audio_uncached, audio_cached, out_audio, image, out_image = parts
    p = Prices(Decimal("1.5"), Decimal(6), Decimal("0.25"), None, None, None, *prices)
    inp = uncached_text + cached_text + audio_uncached + audio_cached + image
    cached = cached_text + audio_cached
    out = out_text + out_audio + out_image
    got = compile_rate(p).cost(
        inp, cached, 0, 0, out, 0, (audio_uncached + audio_cached, audio_cached, out_audio, image, out_image)
    )

    def at(price: Decimal | None, parent: Decimal) -> Decimal:
        return price if price is not None else parent

    ia, ca, oa, ii, oi = prices
    expected = (
        uncached_text * p.input
        + cached_text * p.cached
        + audio_uncached * at(ia, p.input)
        + audio_cached * at(ca, p.cached)  # type: ignore[arg-type]
        + image * at(ii, p.input)
        + out_text * p.output
        + out_audio * at(oa, p.output)
        + out_image * at(oi, p.output)
    ) / M
    assert got == expected


# ----------------------------------------------------------------------------- reported costs
def test_openrouter_byok_costs_fee_plus_upstream_and_shows_no_drift(registry: PriceRegistry) -> None:
    body = json.loads((RECORDINGS / "openrouter_byok_tool_call.json").read_text())
    detail = openai_chat.read_whole(body, OPENAI_PROFILE, 0, 0).detail
    # cost 0 (OpenRouter's fee) + upstream_inference_cost 0.0003253 (what Google billed the user's key)
    assert detail.cost == Decimal("0.0003253")
    cost = registry.price_call("OPENROUTER", body["model"], detail)
    assert cost.status == "reported" and cost.amount == Decimal("0.0003253")
    assert cost.drift == 0


def test_a_web_search_fee_is_explained_not_drift(registry: PriceRegistry) -> None:
    from statek.metering.types import drifted

    body = json.loads((RECORDINGS / "openrouter_web_search_cost.json").read_text())
    detail = openai_chat.read_whole(body, OPENAI_PROFILE, 0, 0).detail
    # gpt-4.1-mini $0.40 / $1.60: 8174 * 0.40 + 30 * 1.60 = 0.0033176 of tokens; the rest of the reported
    # 0.0133176 is one web search ($10 per 1000), itemised as upstream cost beyond prompt and completion
    assert detail.explained_cost == Decimal("0.01")
    cost = registry.price_call("OPENROUTER", body["model"], detail)
    assert cost.amount == Decimal("0.0133176") and cost.drift == 0 and not drifted(cost)
    unexplained = registry.price_call("OPENROUTER", body["model"], detail._replace(explained_cost=None))
    assert drifted(unexplained)  # without the itemised fee it would look like a stale table


@pytest.mark.parametrize(("size", "fee"), [("low", 5), ("medium", 8), ("high", 12)])
def test_perplexity_request_fee_follows_the_answers_search_context_size(
    registry: PriceRegistry, size: str, fee: int
) -> None:
    # sonar: $1 in / $1 out per million tokens, plus $5 / $8 / $12 per 1000 requests by context size
    usage = {"prompt_tokens": 10, "completion_tokens": 392, "total_tokens": 402, "search_context_size": size}
    detail = openai_answer("sonar", usage)
    assert detail.service_tier == size
    cost = registry.price_call("PERPLEXITY", "sonar", detail)
    assert (cost.status, cost.amount) == ("calculated", Decimal(402) / M + Decimal(fee) / 1000)
    assert cost.price_model == f"perplexity:{size}/sonar"


def test_perplexity_request_fee_and_searches_are_explained() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 100,
        "total_tokens": 110,
        "search_context_size": "low",
        "cost": {
            "input_tokens_cost": 0.00001,
            "output_tokens_cost": 0.0001,
            "request_cost": 0.005,
            "total_cost": 0.00511,
        },
    }
    detail = openai_answer("sonar", usage)
    assert (detail.cost, detail.explained_cost) == (Decimal("0.00511"), Decimal("0.005"))


def test_gemini_openai_layer_counts_thinking_as_output() -> None:
    body = json.loads((RECORDINGS / "gemini_openai_layer_text.json").read_text())
    detail = openai_chat.read_whole(body, OPENAI_PROFILE, 0, 0).detail
    # completion_tokens 6, total 100 - prompt 66: 28 thinking tokens billed as output
    assert (detail.output_tokens, detail.reasoning_tokens) == (34, 28)


# ----------------------------------------------------------------------------- the endpoint that served it
def test_vertex_is_priced_at_vertex_prices(registry: PriceRegistry) -> None:
    detail = CallDetail(0, 0, None, 1_000_000, 1_000_000)
    # gemini-2.0-flash: Gemini API $0.10 / $0.40, Vertex AI $0.15 / $0.60
    assert registry.price_call("GEMINI", "gemini-2.0-flash", detail).amount == Decimal("0.5")
    assert registry.price_call("VERTEX", "gemini-2.0-flash", detail).amount == Decimal("0.75")
    # a model with no Vertex row: the Gemini API's price (the same on both)
    assert registry.price_call("VERTEX", "gemini-2.5-flash", detail).amount == Decimal("2.8")


def test_azure_foundry_models_are_priced_at_azure_prices_without_deepseeks_hours(
    registry: PriceRegistry,
) -> None:
    detail = CallDetail(0, 0, None, 1_000_000, 1_000_000)
    # DeepSeek-R1 on Azure AI Foundry: $1.35 in / $5.40 out, at any hour
    for hour in (1, 17):
        at = datetime(2026, 11, 2, hour, tzinfo=timezone.utc)
        cost = registry.price_call("azure", "deepseek-r1", detail, at=at)
        assert cost.amount == Decimal("6.75"), hour


def test_bedrock_region_prefixes_are_priced_by_region(registry: PriceRegistry) -> None:
    detail = CallDetail(0, 0, None, 1_000_000, 1_000_000)
    # Amazon Nova Pro: $0.80 / $3.20 in us-east-1; $1.05 / $4.20 through the eu. profile
    assert registry.price_call("BEDROCK", "amazon.nova-pro-v1:0", detail).amount == Decimal("4.0")
    assert registry.price_call("BEDROCK", "eu.amazon.nova-pro-v1:0", detail).amount == Decimal("5.25")


def test_an_azure_deployment_is_priced_by_the_model_the_answer_names(registry: PriceRegistry) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    detail = openai_answer("gpt-4o-2024-11-20", usage)
    # gpt-4o-2024-11-20: $2.50 / $10 (Azure global deployment = OpenAI's price)
    cost = registry.price_call("AZURE_OPENAI", "prod-chat-deployment", detail, database_provider="azure")
    assert cost.status == "calculated" and cost.amount == (1000 * Decimal("2.5") + 100 * 10) / M
    assert cost.price_model == "openai/gpt-4o"  # the database's row for the dated id (Azure -> OpenAI)
    unnamed = detail._replace(response_model=None)
    assert (
        registry.price_call("AZURE_OPENAI", "prod-chat-deployment", unnamed, database_provider="azure").status
        == "unpriced"
    )


# ----------------------------------------------------------------------------- embeddings
@pytest.mark.parametrize(
    ("provider", "model", "price"),
    [
        ("OPENAI", "text-embedding-3-small", "0.02"),  # $0.02 per million input tokens
        ("OPENAI", "text-embedding-3-large", "0.13"),
        ("GEMINI", "gemini-embedding-001", "0.15"),
    ],
)
def test_embeddings_are_priced_by_their_input(
    registry: PriceRegistry, provider: str, model: str, price: str
) -> None:
    from statek.wire import embeddings

    body = {
        "object": "list",
        "data": [{"embedding": [0.1]}],
        "model": model,
        "usage": {"prompt_tokens": 5000, "total_tokens": 5000},
    }
    detail = (
        embeddings.read_openai(body, 10, 20).detail
        if provider == "OPENAI"
        else CallDetail(0, 0, None, 5000, 0)
    )
    cost = registry.price_call(provider, model, detail)
    assert (cost.status, cost.amount) == ("calculated", 5000 * Decimal(price) / M)
    # an embedding model has no output price: a call that reports output is not priced as if it were free
    assert registry.price_call(provider, model, CallDetail(0, 0, None, 5000, 10)).status == "unpriced"


def test_every_database_tier_variant_is_priced_as_genai_prices_prices_it() -> None:
    from genai_prices import Usage, calc_price

    from statek.metering.database import default_database

    database = default_database()
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    checked = 0
    for provider in database.providers:
        for model in provider.models:
            tiers = {
                v.when["service_tier"] for v in model.price_variants or () if set(v.when) == {"service_tier"}
            }
            for tier in tiers - {"default"}:
                found = database.find_tier(provider.id, model.id, tier)
                if found is None:
                    continue  # no input token price (audio-only models)
                at = datetime(2027, 2, 1, 12, tzinfo=timezone.utc)
                detail = CallDetail(0, 0, None, 100_000, 5_000, 30_000, service_tier=tier)
                want = calc_price(
                    Usage(input_tokens=100_000, output_tokens=5_000, cache_read_tokens=30_000),
                    model.id,
                    provider_id=provider.id,
                    genai_request_timestamp=at,
                    price_context={"service_tier": tier},
                ).total_price
                got = registry.price_call(provider.id, model.id, detail, at=at)
                if not found.rate_at(at).output_listed:
                    continue
                assert got.amount == want, (provider.id, model.id, tier)
                checked += 1
    assert checked > 50


# ----------------------------------------------------------------------------- hostile usage objects
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "audio_tokens",
        "image_tokens",
        "cached_tokens",
        "cached_tokens_details",
        "modality",
        "tokenCount",
        "AUDIO",
        "IMAGE",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    usage=st.dictionaries(
        st.sampled_from(
            ["prompt_tokens_details", "completion_tokens_details", "cost_details", "is_byok", "cost"]
        ),
        st.dictionaries(_KEYS, _JSON, max_size=4) | _JSON,
        max_size=5,
    ),
    gemini_usage=st.dictionaries(
        st.sampled_from(
            ["promptTokensDetails", "cacheTokensDetails", "candidatesTokensDetails", "trafficType"]
        ),
        st.lists(st.dictionaries(_KEYS, _JSON, max_size=3), max_size=3) | _JSON,
        max_size=4,
    ),
    prompt=st.integers(0, 10**6),
    completion=st.integers(0, 10**6),
)
def test_billing_fields_of_any_usage_are_bounded_or_refused(
    usage: dict[str, Any], gemini_usage: dict[str, Any], prompt: int, completion: int
) -> None:
    """Whatever an answer puts in its detail objects, the modality counts stay within their parent
    counts and the tier is a short label or None; a count out of bounds is a WireFormatError."""
    from statek.wire.billing import gemini_modalities, openai_modalities, reported_billing
    from statek.wire.errors import WireFormatError

    try:
        audio, cached_audio, out_audio, image, out_image = openai_modalities(usage, prompt, completion)
        assert 0 <= cached_audio <= audio <= prompt and 0 <= image <= prompt
        assert 0 <= out_audio <= completion and 0 <= out_image <= completion
        cost, explained = reported_billing(usage, Decimal("0.5"))
        assert cost is not None and cost >= Decimal("0.5") and (explained is None or 0 <= explained <= cost)
    except WireFormatError:
        pass
    try:
        parts = gemini_modalities(gemini_usage, prompt, prompt // 2, completion)
        assert parts[1] <= parts[0] <= prompt and parts[3] <= prompt and max(parts[2], parts[4]) <= completion
    except WireFormatError:
        pass
    label = tier_label(gemini_usage.get("trafficType"))
    assert label is None or (0 < len(label) <= 40 and label == label.lower())


def test_anthropic_web_searches_are_billed_per_search(registry: PriceRegistry, tmp_path: Path) -> None:
    from statek.wire import anthropic_messages

    usage = {"input_tokens": 1000, "output_tokens": 100, "server_tool_use": {"web_search_requests": 2}}
    detail = anthropic_messages.usage_detail(usage, 0, 0, "claude-sonnet-4-5")
    assert detail.web_search_requests == 2
    # claude-sonnet-4-5: $3 in / $15 out, web search $10 per 1000 searches
    cost = registry.price_call("ANTHROPIC", "claude-sonnet-4-5", detail)
    assert cost.amount == (1000 * 3 + 100 * 15) / M + 2 * Decimal("0.01")
    # a price row that lists no search price cannot price the searches: unpriced, not tokens only
    own = tmp_path / "prices.csv"
    own.write_text("PROVIDER,MODEL,INPUT_PRICE_PER_M,OUTPUT_PRICE_PER_M\nanthropic,claude-sonnet-4-5,3,15\n")
    files_only = PriceRegistry(shipped=False, model_info_dir=own, database=None)
    assert files_only.price_call("ANTHROPIC", "claude-sonnet-4-5", detail).status == "unpriced"
    assert files_only.price_call(
        "ANTHROPIC", "claude-sonnet-4-5", detail._replace(web_search_requests=0)
    ).status == ("calculated")


def test_openai_responses_web_search_calls_are_billed_per_call(registry: PriceRegistry) -> None:
    from statek.wire.openai_responses import read_response

    body = {
        "id": "resp_1",
        "model": "gpt-5-2025-08-07",
        "status": "completed",
        "service_tier": "default",
        "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "web_search_call", "id": "ws_2", "status": "completed"},
            {"type": "message", "content": [{"type": "output_text", "text": "hi"}]},
        ],
        "usage": {"input_tokens": 1000, "output_tokens": 100},
    }
    detail = read_response(body, 0, 0).detail
    assert (detail.web_search_requests, detail.service_tier) == (2, "default")
    # gpt-5: $1.25 in / $10 out; the web search tool $10 per 1000 calls
    cost = registry.price_call("OPENAI", "gpt-5", detail)
    assert cost.amount == (1000 * Decimal("1.25") + 100 * 10) / M + 2 * Decimal("0.01")


def test_a_vertex_call_names_the_vertex_price_provider_by_either_door() -> None:
    from statek.instrumentation.endpoints import route_for
    from statek.providers.vertex import VertexAI_API
    from statek.settings import ProviderSettings

    assert VertexAI_API(ProviderSettings(api_key="k"), project="p").pricing_provider == "VERTEX"
    assert VertexAI_API(ProviderSettings(api_key="k"), vertexai=False).pricing_provider == "GEMINI"
    route = route_for("VERTEXAI")
    assert route.endpoint("us-central1-aiplatform.googleapis.com", 443).pricing_provider == "VERTEX"
    assert route.endpoint("generativelanguage.googleapis.com", 443).pricing_provider == "GEMINI"
