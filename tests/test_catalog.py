"""The whole OpenAI-compatible catalogue, row by row: realistic wire bodies in, normalised usage out.

Each row gets a response body shaped like the provider's own (usage samples from
shared/reference/provider-usage.md), served by ``httpx.MockTransport``. The test checks every
normalised number, the exact wire bytes, the URL hit and the auth header, once answered whole and
once streamed (server-sent events, with the final usage chunk where that provider puts it).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, NamedTuple

import httpx
import pytest

import statek.llm_api
from statek import LLM_API
from statek.chat import ChatHistoryItem
from statek.providers import catalog
from statek.providers.catalog import CATALOG, CatalogProvider, CatalogRow
from statek.providers.openai_compat import AuthStyle
from statek.settings import SETTING_SUFFIXES

KEY = "sk-catalog-test-0123456789"
ACCOUNT_URLS = {
    "CLOUDFLARE": "https://api.cloudflare.com/client/v4/accounts/acc123/ai/v1/chat/completions",
    "CLOUDFLARE_AI_GATEWAY": "https://gateway.ai.cloudflare.com/v1/acc123/gw1/compat/chat/completions",
    "BEDROCK": "https://bedrock-runtime.us-east-1.amazonaws.com/openai/v1/chat/completions",
    "MICROSOFT_FOUNDRY": "https://res1.services.ai.azure.com/models/chat/completions",
    "AZURE_OPENAI": "https://res1.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions",
    "GEMINI_ENTERPRISE": (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/endpoints/openapi"
        "/chat/completions"
    ),
}


class Expected(NamedTuple):
    input: int
    cached: int
    cache_write: int
    output: int
    reasoning: int
    cost: Decimal | None


_PLAIN = {"prompt_tokens": 31, "completion_tokens": 120, "total_tokens": 151}
_CACHED = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

# key -> (usage object as the provider sends it, extra top-level response fields, expected normalised usage)
SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any], Expected]] = {
    # GPT-5 sample: reasoning 512 is inside completion 651.
    "OPENAI": (
        {
            "prompt_tokens": 1486,
            "completion_tokens": 651,
            "total_tokens": 2137,
            "prompt_tokens_details": {"cached_tokens": 1408, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 512, "audio_tokens": 0},
        },
        {"service_tier": "default"},
        Expected(1486, 1408, 0, 651, 512, None),
    ),
    # Real OpenRouter log (qwen3-next thinking): cost in usd.
    "OPENROUTER": (
        {
            "prompt_tokens": 4347,
            "completion_tokens": 6471,
            "total_tokens": 10818,
            "cost": 0.01035855,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0},
            "cost_details": {
                "upstream_inference_cost": 0.01035855,
                "upstream_inference_prompt_cost": 0.00065205,
                "upstream_inference_completions_cost": 0.0097065,
            },
            "completion_tokens_details": {"reasoning_tokens": 5869, "image_tokens": 0},
        },
        {"provider": "Alibaba"},
        Expected(4347, 0, 0, 6471, 5869, Decimal("0.01035855")),
    ),
    "GROQ": (
        {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 40},
            "queue_time": 0.02,
            "prompt_time": 0.01,
            "completion_time": 0.1,
            "total_time": 0.11,
        },
        {"x_groq": {"id": "req_01"}},
        Expected(1200, 1024, 0, 80, 40, None),
    ),
    # Mistral's own schema field num_cached_tokens.
    "MISTRAL": (
        {
            "prompt_tokens": 2100,
            "completion_tokens": 120,
            "total_tokens": 2220,
            "num_cached_tokens": 2048,
            "prompt_audio_seconds": None,
        },
        {},
        Expected(2100, 2048, 0, 120, 0, None),
    ),
    # prompt_tokens = hit + miss; reasoning inside completion.
    "DEEPSEEK": (
        {
            "prompt_tokens": 1500,
            "completion_tokens": 400,
            "total_tokens": 1900,
            "prompt_cache_hit_tokens": 1280,
            "prompt_cache_miss_tokens": 220,
            "completion_tokens_details": {"reasoning_tokens": 350},
        },
        {"system_fingerprint": "fp_1"},
        Expected(1500, 1280, 0, 400, 350, None),
    ),
    # 10120 + 1499 + 2809 = 14428: reasoning outside completion; 1 USD = 1e10 ticks.
    "XAI": (
        {
            "prompt_tokens": 10120,
            "completion_tokens": 1499,
            "total_tokens": 14428,
            "prompt_tokens_details": {"text_tokens": 10120, "cached_tokens": 128},
            "completion_tokens_details": {"reasoning_tokens": 2809},
            "cost_in_usd_ticks": 158930000,
        },
        {},
        Expected(10120, 128, 0, 4308, 2809, Decimal("0.015893")),
    ),
    "TOGETHER": (dict(_PLAIN), {}, Expected(31, 0, 0, 120, 0, None)),
    "FIREWORKS": (
        {
            "prompt_tokens": 1500,
            "completion_tokens": 60,
            "total_tokens": 1560,
            "prompt_tokens_details": {"cached_tokens": 1024},
        },
        {},
        Expected(1500, 1024, 0, 60, 0, None),
    ),
    "CEREBRAS": (
        {
            "prompt_tokens": 220,
            "completion_tokens": 18,
            "total_tokens": 238,
            "prompt_tokens_details": {"cached_tokens": 128},
        },
        {"time_info": {"queue_time": 0.0001, "total_time": 0.02}},
        Expected(220, 128, 0, 18, 0, None),
    ),
    # Sonar deep research: reasoning and citation tokens outside completion; provider total cost.
    "PERPLEXITY": (
        {
            "prompt_tokens": 19,
            "completion_tokens": 8345,
            "total_tokens": 8364,
            "citation_tokens": 13295,
            "num_search_queries": 22,
            "reasoning_tokens": 105836,
            "search_context_size": "low",
            "cost": {
                "input_tokens_cost": 0.000038,
                "output_tokens_cost": 0.06676,
                "citation_tokens_cost": 0.02659,
                "reasoning_tokens_cost": 0.317508,
                "search_queries_cost": 0.11,
                "total_cost": 0.520896,
            },
        },
        {"citations": ["https://example.org/a"]},
        Expected(19, 0, 0, 114181, 105836, Decimal("0.520896")),
    ),
    "SAMBANOVA": (dict(_PLAIN), {}, Expected(31, 0, 0, 120, 0, None)),
    "NVIDIA": (dict(_PLAIN), {}, Expected(31, 0, 0, 120, 0, None)),
    "NEBIUS": (dict(_CACHED), {}, Expected(2006, 1920, 0, 300, 0, None)),
    "COHERE": (dict(_PLAIN), {}, Expected(31, 0, 0, 120, 0, None)),
    # Moonshot: cached_tokens at the top level of usage.
    "MOONSHOT": (
        {"prompt_tokens": 19, "completion_tokens": 21, "total_tokens": 40, "cached_tokens": 10},
        {},
        Expected(19, 10, 0, 21, 0, None),
    ),
    # DashScope: cache writes in prompt_tokens_details.cache_creation_input_tokens, inside prompt_tokens.
    "DASHSCOPE": (
        {
            "prompt_tokens": 29719,
            "completion_tokens": 435,
            "total_tokens": 30154,
            "completion_tokens_details": {"reasoning_tokens": 382, "text_tokens": 435},
            "prompt_tokens_details": {
                "text_tokens": 29719,
                "cached_tokens": 0,
                "cache_type": "ephemeral",
                "cache_creation_input_tokens": 29713,
                "cache_creation": {"ephemeral_5m_input_tokens": 29713},
            },
        },
        {},
        Expected(29719, 0, 29713, 435, 382, None),
    ),
    "CLOUDFLARE": (dict(_PLAIN), {}, Expected(31, 0, 0, 120, 0, None)),
    "CLOUDFLARE_AI_GATEWAY": (dict(_CACHED), {}, Expected(2006, 1920, 0, 300, 0, None)),
    "GITHUB": (dict(_CACHED), {}, Expected(2006, 1920, 0, 300, 0, None)),
    "BEDROCK": (dict(_CACHED), {}, Expected(2006, 1920, 0, 300, 0, None)),
    "MICROSOFT_FOUNDRY": (dict(_PLAIN), {}, Expected(31, 0, 0, 120, 0, None)),
    # OpenAI's 2026 cache-write field, plus Azure's content-filter annotations.
    "AZURE_OPENAI": (
        {
            "prompt_tokens": 3000,
            "completion_tokens": 50,
            "total_tokens": 3050,
            "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 1900},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        {"prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        Expected(3000, 1024, 1900, 50, 0, None),
    ),
    # Gemini's OpenAI layer: thoughts only in total_tokens (1725 - 758 - 102 = 865).
    "GEMINI_ENTERPRISE": (
        {"completion_tokens": 102, "prompt_tokens": 758, "total_tokens": 1725},
        {},
        Expected(758, 0, 0, 967, 865, None),
    ),
    "OLLAMA": (
        {"prompt_tokens": 26, "completion_tokens": 12, "total_tokens": 38},
        {},
        Expected(26, 0, 0, 12, 0, None),
    ),
    "LMSTUDIO": (
        {
            "prompt_tokens": 40,
            "completion_tokens": 90,
            "total_tokens": 130,
            "completion_tokens_details": {"reasoning_tokens": 70},
        },
        {},
        Expected(40, 0, 0, 90, 70, None),
    ),
    "VLLM": (
        {
            "prompt_tokens": 512,
            "completion_tokens": 64,
            "total_tokens": 576,
            "prompt_tokens_details": {"cached_tokens": 496},
        },
        {},
        Expected(512, 496, 0, 64, 0, None),
    ),
    # SGLang: reasoning_tokens at the top level of usage.
    "SGLANG": (
        {
            "prompt_tokens": 300,
            "completion_tokens": 700,
            "total_tokens": 1000,
            "reasoning_tokens": 550,
            "prompt_tokens_details": {"cached_tokens": 256},
        },
        {},
        Expected(300, 256, 0, 700, 550, None),
    ),
    "LLAMA_CPP": (
        {
            "prompt_tokens": 14,
            "completion_tokens": 16,
            "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        {"timings": {"cache_n": 0, "prompt_n": 14, "predicted_n": 16}},
        Expected(14, 0, 0, 16, 0, None),
    ),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider settings from the machine running the tests."""
    for entry in CATALOG:
        for name in entry.names:
            for suffix in SETTING_SUFFIXES.values():
                monkeypatch.delenv(name + suffix, raising=False)


def completion_body(usage: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1760000000,
        "model": "served-model-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
        ],
        "usage": usage,
        **extra,
    }


def stream_body(entry: CatalogRow, usage: dict[str, Any]) -> bytes:
    """An SSE body as the provider streams it: an Azure-like empty first chunk, text, the usage chunk."""
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1760000000, "model": "served-model-1"}
    chunks: list[dict[str, Any]] = [
        {"id": "", "choices": [], "created": 0, "model": "", "prompt_filter_results": []},
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Par"}}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "is."}, "finish_reason": "stop"}]},
    ]
    where = entry.profile.stream_usage_paths[-1]
    if where == ("x_groq", "usage"):
        chunks.append({**base, "choices": [], "x_groq": {"id": "req_01", "usage": usage}})
    elif where == ("choices", 0, "usage"):
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "usage": usage}]})
    else:
        chunks.append({**base, "choices": [], "usage": usage})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


class Recorder:
    """A MockTransport handler that answers with one fixed body and keeps the requests."""

    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        self.body = body
        self.content_type = content_type
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, content=self.body, headers={"content-type": self.content_type})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def configure(monkeypatch: pytest.MonkeyPatch, entry: CatalogRow) -> None:
    if entry.requires_api_key:
        monkeypatch.setenv(f"{entry.key}_API_KEY", KEY)
    if entry.default_api_url is None:
        monkeypatch.setenv(f"{entry.key}_API_URL", ACCOUNT_URLS[entry.key])


def rows() -> list[Any]:
    return [pytest.param(entry, id=entry.key) for entry in CATALOG]


def test_fixture_table_covers_every_row() -> None:
    assert set(SAMPLES) == {entry.key for entry in CATALOG}
    assert len(CATALOG) == 28


@pytest.mark.parametrize("entry", rows())
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_every_provider_normalises_its_real_usage(
    monkeypatch: pytest.MonkeyPatch, entry: CatalogRow, stream: bool
) -> None:
    usage, extra, want = SAMPLES[entry.key]
    configure(monkeypatch, entry)
    if stream:
        recorder = Recorder(stream_body(entry, usage), "text/event-stream")
    else:
        recorder = Recorder(json.dumps(completion_body(usage, extra)).encode())
    api = LLM_API.get(entry.key, model="model-x", http_client=recorder.client(), stream=stream)
    assert type(api).__name__ == entry.class_name

    response = await api.process_request(
        system_prompt="Be concise.", chat_history=[ChatHistoryItem.user("Capital of France?")]
    )

    stats = response.detail
    assert response.text == "Paris."
    assert response.call_requests is None
    assert (stats.input_tokens, stats.cached_tokens) == (want.input, want.cached)
    assert stats.cache_write_tokens == want.cache_write
    assert (stats.output_tokens, stats.reasoning_tokens) == (want.output, want.reasoning)
    assert stats.cost == want.cost
    assert stats.cost is None or isinstance(stats.cost, Decimal)
    assert stats.finish_reason == "stop" and stats.response_model == "served-model-1"

    [request] = recorder.requests
    assert stats.total_bytes_sent == len(request.content)
    assert stats.total_bytes_received == len(recorder.body)
    sent = json.loads(request.content)
    assert sent["model"] == "model-x"
    assert sent["messages"][0] == {"role": "system", "content": "Be concise."}
    assert sent.get("stream", False) is stream
    assert ("stream_options" in sent) is (stream and entry.profile.send_stream_options)

    expected_url = entry.default_api_url or ACCOUNT_URLS[entry.key]
    assert str(request.url).split("?")[0] == expected_url
    if entry.requires_api_key:
        if entry.profile.auth is AuthStyle.API_KEY_HEADER:
            assert request.headers["api-key"] == KEY and "authorization" not in request.headers
        else:
            assert request.headers["authorization"] == f"Bearer {KEY}"
    else:
        assert "authorization" not in request.headers and "api-key" not in request.headers
    for header, value in entry.profile.extra_headers:
        assert request.headers[header] == value
    assert dict(request.url.params) == dict(entry.profile.default_query)


async def test_azure_sends_api_key_header_and_api_version(monkeypatch: pytest.MonkeyPatch) -> None:
    usage, extra, _ = SAMPLES["AZURE_OPENAI"]
    recorder = Recorder(json.dumps(completion_body(usage, extra)).encode())
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("AZURE_OPENAI_API_URL", ACCOUNT_URLS["AZURE_OPENAI"])
    api = LLM_API.get("azure_open_ai", http_client=recorder.client())
    await api.process_request(model="gpt-4o-mini", metadata={"MAX_TOKENS": 64})
    [request] = recorder.requests
    assert request.url.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert request.url.params["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == KEY
    assert json.loads(request.content)["max_completion_tokens"] == 64


async def test_azure_keeps_an_api_version_given_in_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(json.dumps(completion_body(dict(_PLAIN), {})).encode())
    url = ACCOUNT_URLS["AZURE_OPENAI"] + "?api-version=2025-04-01-preview"
    api = LLM_API.get("AZURE_OPENAI", api_url=url, api_key=KEY, http_client=recorder.client())
    await api.process_request(model="m")
    assert recorder.requests[0].url.params.get_list("api-version") == ["2025-04-01-preview"]


@pytest.mark.parametrize(
    ("name", "entry"), [pytest.param(name, entry, id=name) for entry in CATALOG for name in entry.names]
)
def test_every_alias_resolves_and_finds_settings_under_its_own_name(
    monkeypatch: pytest.MonkeyPatch, name: str, entry: CatalogRow
) -> None:
    monkeypatch.setenv(f"{name}_API_KEY", KEY)
    monkeypatch.setenv(f"{name}_API_URL", "https://own-name.example/v1/chat/completions")
    api = LLM_API.get(name.lower(), model="m")
    assert type(api) is getattr(catalog, entry.class_name)
    assert api.provider_key == entry.key
    assert api.settings.key_value() == KEY
    assert api.settings.api_url == "https://own-name.example/v1/chat/completions"


@pytest.mark.parametrize("entry", rows())
def test_alias_falls_back_to_canonical_settings(monkeypatch: pytest.MonkeyPatch, entry: CatalogRow) -> None:
    configure(monkeypatch, entry)
    monkeypatch.setenv(f"{entry.key}_API_KEY", KEY)
    for name in entry.aliases:
        api = LLM_API.get(name, model="m")
        assert api.settings.key_value() == KEY
        assert api.settings.api_url == (entry.default_api_url or ACCOUNT_URLS[entry.key])


@pytest.mark.parametrize("entry", rows())
def test_row_is_bound_to_a_real_class(entry: CatalogRow) -> None:
    cls = getattr(catalog, entry.class_name)
    assert issubclass(cls, CatalogProvider) and cls.row is entry
    assert cls.provider_key == entry.key
    assert cls.genai_provider_name == entry.genai_provider_name
    assert cls.pricing_provider == entry.pricing_provider
    assert cls.default_api_url == entry.default_api_url and cls.profile is entry.profile
    assert getattr(statek.llm_api, entry.class_name) is cls  # the documented import path
    if entry.default_api_url is None:
        assert entry.url_hint and entry.requires_api_key
    else:
        assert entry.default_api_url.endswith("/chat/completions")


def test_names_are_unique_and_upper_case() -> None:
    names = [name for entry in CATALOG for name in entry.names]
    assert len(names) == len(set(names))
    assert all(name == name.upper() for name in names)


def test_local_servers_need_no_key_and_have_localhost_urls() -> None:
    local = {entry.key: entry.default_api_url for entry in CATALOG if not entry.requires_api_key}
    assert local == {
        "OLLAMA": "http://localhost:11434/v1/chat/completions",
        "LMSTUDIO": "http://localhost:1234/v1/chat/completions",
        "VLLM": "http://localhost:8000/v1/chat/completions",
        "SGLANG": "http://localhost:30000/v1/chat/completions",
        "LLAMA_CPP": "http://localhost:8080/v1/chat/completions",
    }


def test_otel_well_known_provider_names() -> None:
    by_key = {entry.key: entry.genai_provider_name for entry in CATALOG}
    assert by_key["OPENAI"] == "openai" and by_key["AZURE_OPENAI"] == "azure.ai.openai"
    assert by_key["BEDROCK"] == "aws.bedrock" and by_key["XAI"] == "x_ai"
    assert by_key["MISTRAL"] == "mistral_ai" and by_key["DEEPSEEK"] == "deepseek"
    assert by_key["GROQ"] == "groq" and by_key["PERPLEXITY"] == "perplexity"
    assert by_key["GEMINI_ENTERPRISE"] == "gcp.vertex_ai" and by_key["COHERE"] == "cohere"
    assert all(name == name.lower() for name in by_key.values())


def test_a_row_bound_to_the_wrong_class_name_is_refused() -> None:
    with pytest.raises(TypeError, match="names class OpenAI_API"):

        class NotOpenAI(CatalogProvider, row=catalog.catalog_row("OPENAI")):
            pass
