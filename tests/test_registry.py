"""The provider registry: names, aliases, default provider, settings from the environment, add_provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

import statek
import statek.llm_api
from statek import LLM_API, LLM_Response, LLM_Stats
from statek.exceptions import ConfigurationError, UnknownProviderError
from statek.providers import registry
from statek.providers.catalog import XAI_API, Groq_API, OpenAI_API, OpenRouter_API
from statek.providers.openai_compat import OpenAICompatible_API
from statek.settings import DEFAULT_PROVIDER_ENV, SETTING_SUFFIXES

KEY = "sk-registry-test-55555"
CLAUDE_NAMES = ["CLAUDE", "CLAUDEAI", "CLAUDE_AI", "ANTHROPIC"]
VERTEX_NAMES = ["VERTEXAI", "VERTEX_AI", "VERTEX", "GOOGLE_VERTEXAI", "GOOGLE", "GEMINI"]
CUSTOM = ["LOCAL_OPENAI_COMPAT", "MY_PROXY", "ECHO_LLM", "KEYED_LLM", "NO_URL_LLM"]


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No settings from the machine, and no custom providers left behind."""
    monkeypatch.delenv(DEFAULT_PROVIDER_ENV, raising=False)
    for name in [*registry.registered_providers(), *CUSTOM]:
        for suffix in SETTING_SUFFIXES.values():
            monkeypatch.delenv(name + suffix, raising=False)
    yield
    for name in CUSTOM:
        registry._unregister(name)


def test_seed_example_openai_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    api = LLM_API.get("OPENAI")
    payload = api.preview_request(model="gpt-5-mini", system_prompt="Be concise.")
    assert isinstance(api, OpenAI_API)
    assert payload == {"model": "gpt-5-mini", "messages": [{"role": "system", "content": "Be concise."}]}


def test_no_name_means_openrouter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    assert type(LLM_API.get()) is OpenRouter_API


def test_no_name_follows_the_default_provider_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEFAULT_PROVIDER_ENV, "grok")
    monkeypatch.setenv("XAI_API_KEY", KEY)
    api = LLM_API.get(model="grok-4")
    assert type(api) is XAI_API and api.model == "grok-4"


@pytest.mark.parametrize("name", ["groq", "Groq", " GROQ "])
def test_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    assert type(LLM_API.get(name)) is Groq_API


def test_alias_settings_win_over_canonical_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROK_API_KEY", "sk-alias")
    monkeypatch.setenv("XAI_API_KEY", "sk-canonical")
    monkeypatch.setenv("XAI_API_URL", "https://xai-proxy.example/v1/chat/completions")
    api = LLM_API.get("GROK")
    assert api.settings.key_value() == "sk-alias"
    assert api.settings.api_url == "https://xai-proxy.example/v1/chat/completions"
    assert LLM_API.get("XAI").settings.key_value() == "sk-canonical"


def test_setting_kwargs_are_settings_and_the_rest_go_to_the_constructor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    api = LLM_API.get(
        "openai",
        "gpt-5",
        api_key=KEY,
        api_url="https://proxy.example/v1/chat/completions",
        use_prompt_caching="yes",
        stream=True,
        timeout=5.0,
    )
    assert isinstance(api, OpenAI_API) and api.stream is True and api.model == "gpt-5"
    assert api.settings.key_value() == KEY and api.settings.use_prompt_caching is True
    assert api.settings.api_url == "https://proxy.example/v1/chat/completions"


def test_unknown_provider_is_a_value_error_with_close_matches() -> None:
    with pytest.raises(UnknownProviderError) as info:
        LLM_API.get("OPENROUTR")
    assert isinstance(info.value, ValueError)
    assert "Did you mean OPENROUTER" in str(info.value)
    assert "add_provider" in str(info.value)


def test_missing_key_names_the_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="set OPENAI_API_KEY,"):
        LLM_API.get("OPENAI")
    with pytest.raises(ValueError, match="set GROK_API_KEY or XAI_API_KEY"):
        LLM_API.get("grok")


def test_missing_url_names_the_variables_and_the_url_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS_AI_API_KEY", KEY)
    with pytest.raises(ConfigurationError) as info:
        LLM_API.get("WORKERS_AI")
    message = str(info.value)
    assert "WORKERS_AI_API_URL or CLOUDFLARE_API_URL" in message
    assert "/accounts/{account_id}/ai/v1/chat/completions" in message
    assert KEY not in message


def test_local_servers_need_no_key() -> None:
    api = LLM_API.get("ollama")
    assert (
        api.settings.api_url == "http://localhost:11434/v1/chat/completions" and api.settings.api_key is None
    )


@pytest.mark.parametrize("name", CLAUDE_NAMES)
def test_claude_names(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from statek.providers.anthropic import ClaudeAI_API

    monkeypatch.setenv(f"{name}_API_KEY", KEY)
    api = LLM_API.get(name.lower())
    assert type(api) is ClaudeAI_API and api.settings.key_value() == KEY
    assert statek.llm_api.Claude_API is ClaudeAI_API


@pytest.mark.parametrize("name", VERTEX_NAMES)
def test_vertex_names(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from statek.providers.vertex import VertexAI_API

    monkeypatch.setenv(f"{name}_API_KEY", KEY)
    api = LLM_API.get(name.lower())
    assert type(api) is VertexAI_API and api.settings.key_value() == KEY


# The seed document's provider table, verbatim: provider keys -> class.
SEED_TABLE = """
OPENAI | OpenAI_API
OPENROUTER | OpenRouter_API
GROQ | Groq_API
MISTRAL, MISTRALAI, MISTRAL_AI | MistralAI_API
DEEPSEEK, DEEP_SEEK | DeepSeek_API
XAI, X_AI, GROK | XAI_API
TOGETHER, TOGETHERAI, TOGETHER_AI | TogetherAI_API
FIREWORKS, FIREWORKSAI, FIREWORKS_AI | FireworksAI_API
CEREBRAS | Cerebras_API
PERPLEXITY | Perplexity_API
SAMBANOVA, SAMBA_NOVA | SambaNova_API
NVIDIA, NVIDIA_NIM, NIM | NvidiaNIM_API
NEBIUS | Nebius_API
COHERE | Cohere_API
MOONSHOT, MOONSHOTAI, MOONSHOT_AI, KIMI | MoonshotAI_API
DASHSCOPE, DASH_SCOPE, ALIBABA, ALIBABA_CLOUD, QWEN | DashScope_API
CLOUDFLARE, CLOUDFLARE_WORKERS_AI, WORKERS_AI | CloudflareWorkersAI_API
CLOUDFLARE_AI_GATEWAY, AI_GATEWAY | CloudflareAIGateway_API
GITHUB, GITHUB_MODELS | GitHubModels_API
BEDROCK, AMAZON_BEDROCK, AWS_BEDROCK | Bedrock_API
MICROSOFT_FOUNDRY, MS_FOUNDRY, AZURE_FOUNDRY | MicrosoftFoundry_API
AZURE_OPENAI, AZURE_OPEN_AI | AzureOpenAI_API
GEMINI_ENTERPRISE, GOOGLE_GEMINI_ENTERPRISE, GOOGLE_OPENAI | GeminiEnterprise_API
OLLAMA | Ollama_API
LMSTUDIO, LM_STUDIO | LMStudio_API
VLLM | VLLM_API
SGLANG | SGLang_API
LLAMA_CPP, LLAMACPP, LLAMA_CPP_PYTHON | LlamaCpp_API
VERTEXAI, VERTEX_AI, VERTEX, GOOGLE_VERTEXAI, GOOGLE, GEMINI | VertexAI_API
CLAUDE, CLAUDEAI, CLAUDE_AI, ANTHROPIC | ClaudeAI_API
"""
SEED_NAMES = {
    name.strip(): cls.strip()
    for line in SEED_TABLE.strip().splitlines()
    for names, cls in [line.split("|")]
    for name in names.split(",")
}


def test_registry_knows_exactly_the_seed_names() -> None:
    names = registry.registered_providers()
    assert set(names) == set(SEED_NAMES)
    assert list(names) == sorted(names)
    assert names["KIMI"] == "MOONSHOT" and names["CLAUDE"] == "ANTHROPIC" and names["GEMINI"] == "VERTEXAI"
    by_class: dict[str, set[str]] = {}
    for name, cls in SEED_NAMES.items():
        by_class.setdefault(cls, set()).add(names[name])
    assert all(len(keys) == 1 for keys in by_class.values())  # one canonical key per class


@pytest.mark.parametrize("name", sorted(SEED_NAMES))
def test_every_seed_name_builds_its_class(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"{name}_API_KEY", KEY)
    monkeypatch.setenv(f"{name}_API_URL", "https://account.example/v1/chat/completions")
    monkeypatch.setenv("VERTEXAI_PROJECT", "a-project")  # a Vertex base URL needs one (as in the original)
    assert type(LLM_API.get(name)).__name__ == SEED_NAMES[name]


# ----------------------------------------------------------------------------- add_provider
def test_seed_add_provider_example() -> None:
    statek.add_provider(
        "LOCAL_OPENAI_COMPAT", api_url="http://localhost:8000/v1/chat/completions", api_key="local"
    )
    api = LLM_API.get("local_openai_compat", model="qwen")
    assert type(api) is OpenAICompatible_API and api.provider_key == "LOCAL_OPENAI_COMPAT"
    assert api.settings.api_url == "http://localhost:8000/v1/chat/completions"
    assert api.settings.key_value() == "local"
    assert registry.registered_providers()["LOCAL_OPENAI_COMPAT"] == "LOCAL_OPENAI_COMPAT"


@pytest.mark.parametrize("name", ["openai", "Grok", "claude", "GEMINI", "llama_cpp_python"])
def test_builtin_names_and_aliases_are_reserved(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        statek.add_provider(name, api_url="http://127.0.0.1:1/v1/chat/completions")


def test_a_name_registers_once_case_insensitively() -> None:
    statek.add_provider("my_proxy", api_url="http://127.0.0.1:1/v1/chat/completions")
    with pytest.raises(ValueError, match="already registered"):
        statek.add_provider("MY_PROXY", api_url="http://127.0.0.1:2/v1/chat/completions")


@pytest.mark.parametrize("name", ["my-proxy", "", "1ST", "has space"])
def test_names_must_work_as_environment_prefixes(name: str) -> None:
    with pytest.raises(ValueError, match="letters, digits and _"):
        statek.add_provider(name, api_url="http://127.0.0.1:1/v1/chat/completions")


def test_invalid_settings_fail_at_registration_without_echoing_the_value() -> None:
    with pytest.raises(ConfigurationError, match="api_key") as info:
        statek.add_provider("KEYED_LLM", api_key=["sk-do-not-echo"])
    assert "sk-do-not-echo" not in str(info.value)
    assert "KEYED_LLM" not in registry.registered_providers()


def test_stored_kwargs_reach_the_constructor_and_get_kwargs_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statek.add_provider(
        "MY_PROXY", api_url="http://127.0.0.1:1/v1/chat/completions", stream=True, timeout=3.0
    )
    assert LLM_API.get("MY_PROXY").stream is True
    overridden = LLM_API.get("MY_PROXY", stream=False, api_url="http://127.0.0.1:2/v1/chat/completions")
    assert overridden.stream is False
    assert overridden.settings.api_url == "http://127.0.0.1:2/v1/chat/completions"


def test_custom_default_impl_needs_a_url_but_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    statek.add_provider("NO_URL_LLM")
    with pytest.raises(ConfigurationError, match="set NO_URL_LLM_API_URL"):
        LLM_API.get("NO_URL_LLM")
    monkeypatch.setenv("NO_URL_LLM_API_URL", "http://127.0.0.1:3/v1/chat/completions")
    api = LLM_API.get("no_url_llm")
    assert api.settings.api_url == "http://127.0.0.1:3/v1/chat/completions" and api.settings.api_key is None


class EchoLLM(LLM_API):
    """A user's own wire format: echoes the prompt back and reports fixed usage."""

    genai_provider_name: ClassVar[str] = "echo"
    requires_api_key: ClassVar[bool] = True

    def __init__(self, *args: Any, greeting: str = "hi", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.greeting = greeting

    def _build_request_payload(self, *, system_prompt: str | None, **request: Any) -> dict[str, Any]:
        return {"prompt": system_prompt, "greeting": self.greeting}

    async def _process_request(self, **request: Any) -> LLM_Response:
        data, raw = await self._post_json(self._build_request_payload(**request))
        return LLM_Response(data["echo"], LLM_Stats(raw.bytes_sent, raw.bytes_received, None, 3, 2, 0), None)


async def test_custom_impl_gets_its_settings_kwargs_and_is_called_like_a_builtin() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"echo": json.loads(request.content)["prompt"]})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    statek.add_provider("ECHO_LLM", EchoLLM, api_url="http://127.0.0.1:4/echo", greeting="hello")
    with pytest.raises(ConfigurationError, match="ECHO_LLM_API_KEY"):
        LLM_API.get("ECHO_LLM")  # EchoLLM.requires_api_key
    api = LLM_API.get("echo_llm", model="e1", api_key=KEY, http_client=client)
    assert isinstance(api, EchoLLM) and api.greeting == "hello" and api.provider_key == "ECHO_LLM"
    response = await api.process_request(system_prompt="ping")
    assert response.text == "ping" and response.stats.input_tokens == 3
    assert response.stats.total_bytes_sent == len(seen[0].content)
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_impl_must_be_an_llm_api_subclass() -> None:
    with pytest.raises(ValueError, match="subclass of LLM_API"):
        statek.add_provider("MY_PROXY", dict)  # type: ignore[arg-type]
