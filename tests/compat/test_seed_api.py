"""Code and settings written for the original STATEK 1.0 work unchanged.

One test (or a few) per fact of ``shared/reference/upstream-contract.md``, sections "LLM_API and its
subclasses", "Helpers", "Tools", "Response types" and "Providers with their own wire format". The
pricing facts are in ``test_pricing_compat.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

import statek
from statek import LLM_API, Job, LLM_Response, LLM_Stats, add_provider
from statek.chat import ChatHistoryItem
from statek.llm_api import CallParams
from statek.providers import registry
from statek.providers.catalog import OpenAI_API
from statek.settings import SETTING_SUFFIXES

URL = "http://127.0.0.1:9/v1/chat/completions"
CUSTOM = ("ORIGINAL_STYLE", "LOCAL_OPENAI_COMPAT", "PAYLOAD_PROXY", "BROKEN_STYLE", "NO_HOOKS")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A working directory of its own (no stray .env), no provider settings from the machine."""
    monkeypatch.chdir(tmp_path)
    for variable in ("DEFAULT_LLM_API_PROVIDER", "STATEK_DEFAULT_LLM_API_PROVIDER"):
        monkeypatch.delenv(variable, raising=False)
    for name in [*registry.registered_providers(), *CUSTOM]:
        for suffix in SETTING_SUFFIXES.values():
            monkeypatch.delenv(name + suffix, raising=False)
    yield
    for name in CUSTOM:
        registry._unregister(name)


class Wire:
    """An OpenAI-compatible loopback stand-in: records requests, answers with ``answer``."""

    def __init__(self, answer: dict[str, Any] | None = None, status: int = 200) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or {
            "model": "m-2025",
            "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3},
        }
        self.status = status

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.answer)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    def body(self, n: int = -1) -> dict[str, Any]:
        return json.loads(self.requests[n].content)


def user(text: str) -> list[ChatHistoryItem]:
    return [ChatHistoryItem.user(text)]


# ----------------------------------------------------------------------------- a subclass in the seed's style
class OriginalStyle(LLM_API):
    """Written against STATEK 1.0's extension API: keyword hooks, ``impl(settings=..., **kwargs)``."""

    requires_api_key = False
    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, settings: Any = None, greeting: str = "hi", **kwargs: Any) -> None:
        super().__init__(settings=settings, **kwargs)
        self.greeting = greeting

    def _build_request_payload(
        self,
        system_prompt: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
        tools: list[Callable[..., Any]] | None = None,
        chat_history: list[ChatHistoryItem] | None = None,
        chat_style: Any = None,
        temperature: float | None = None,
        enable_reasoning: bool = False,
    ) -> dict[str, Any]:
        OriginalStyle.seen.append(
            {"metadata": metadata, "tools": tools, "history": chat_history, "reasoning": enable_reasoning}
        )
        return {
            "model": model,
            "greeting": self.greeting,
            "prompt": [item.content for item in chat_history or ()],
            "tools": [tool.__name__ for tool in tools or ()],
            "temperature": temperature,
        }

    async def _process_request(self, **request: Any) -> LLM_Response:
        data, raw = await self._post_json(self._build_request_payload(**request))
        usage = data["usage"]
        stats = LLM_Stats(
            raw.bytes_sent, raw.bytes_received, None, usage["prompt_tokens"], usage["completion_tokens"]
        )
        return LLM_Response(data["choices"][0]["message"]["content"], stats, None)


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


def get_time(city: str) -> str:
    """The time in a city."""
    return "noon"


async def test_a_subclass_in_the_seed_style_gets_keyword_hooks_and_is_metered() -> None:
    wire = Wire()
    OriginalStyle.seen.clear()
    add_provider("ORIGINAL_STYLE", OriginalStyle, api_url=URL, greeting="hello")
    api = LLM_API.get("ORIGINAL_STYLE", http_client=wire.client())
    metadata = {"LLM_TOOLS_SCOPE": "+get_time", "nonce": 1}

    preview = api.preview_request(
        model="m", metadata=metadata, available_tools=[get_weather, get_time], chat_history=user("hi")
    )
    with Job("compat") as job:
        response = await api.process_request(
            model="m",
            metadata=metadata,
            available_tools=[get_weather, get_time],
            chat_history=user("hi"),
            temperature="0.5",
            enable_reasoning=True,
        )

    assert preview == {
        "model": "m",
        "greeting": "hello",
        "prompt": ["hi"],
        "tools": ["get_time"],
        "temperature": None,
    }
    assert wire.body() == {**preview, "temperature": 0.5}
    hooks = OriginalStyle.seen[-1]
    assert hooks["tools"] == [get_time] and hooks["history"] == user("hi") and hooks["reasoning"] is True
    assert hooks["metadata"] == metadata and hooks["metadata"] is not metadata  # a copy, as the original
    assert response.text == "hello" and response.stats.input_tokens == 11
    # Metered like a built-in: the job saw the call, its bytes and tokens.
    assert job.usage.total_input_tokens == 11 and job.usage.total_output_tokens == 3
    assert job.usage.total_bytes_sent == len(wire.requests[0].content) > 0


def test_a_subclass_whose_hooks_fit_neither_form_is_refused_when_the_class_is_created() -> None:
    with pytest.raises(TypeError, match="cannot be called the seed way"):

        class Mismatched(LLM_API):
            def _build_request_payload(self, params: Any) -> dict[str, Any]:
                return {}

            async def _process_request(self, params: Any, payload: Any) -> LLM_Response:
                raise AssertionError


def test_a_subclass_with_no_hooks_is_refused_at_add_provider() -> None:
    class NoHooks(LLM_API):
        pass

    with pytest.raises(TypeError, match="implements no provider hooks"):
        add_provider("NO_HOOKS", NoHooks, api_url=URL)


async def test_a_user_subclass_of_a_builtin_may_override_a_seed_hook_and_call_super() -> None:
    class Tagged(OpenAI_API):
        def _build_request_payload(self, **request: Any) -> dict[str, Any]:
            return {**super()._build_request_payload(**request), "user": "tenant-7"}

    wire = Wire()
    api = Tagged(
        settings=statek.settings.ProviderSettings(api_url=URL, api_key="k"), http_client=wire.client()
    )
    await api.process_request(model="gpt-4o", chat_history=user("hi"))
    assert wire.body() == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "user": "tenant-7",
    }


# ----------------------------------------------------------------------------- extra keyword arguments
async def test_extra_keywords_of_add_provider_and_get_become_payload_fields() -> None:
    wire = Wire()
    add_provider("PAYLOAD_PROXY", api_url=URL, api_key="local", custom_payload={"a": 1})
    api = LLM_API.get("PAYLOAD_PROXY", model="m", max_tokens=100, http_client=wire.client())
    await api.process_request(chat_history=user("hi"))
    body = wire.body()
    assert body["custom_payload"] == {"a": 1} and body["max_tokens"] == 100
    assert "http_client" not in body and "model" in body and body["model"] == "m"


async def test_request_settings_win_over_instance_payload_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_URL", URL)
    wire = Wire()
    api = LLM_API.get("OPENAI", max_tokens=100, temperature=0.9, http_client=wire.client())
    await api.process_request(model="gpt-4o", chat_history=user("hi"), metadata={"MAX_TOKENS": 7})
    body = wire.body()
    assert body["max_completion_tokens"] == 7 and "max_tokens" not in body and body["temperature"] == 0.9


# ----------------------------------------------------------------------------- LLM_API.get is cached
def test_get_returns_the_same_instance_for_the_same_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    first = LLM_API.get("OPENAI", max_tokens=100, extra={"x": [1, 2]})
    assert LLM_API.get("openai", max_tokens=100, extra={"x": [1, 2]}) is first
    assert LLM_API.get("OPENAI", max_tokens=101, extra={"x": [1, 2]}) is not first
    assert LLM_API.get("OPENAI", model="gpt-4o") is not first
    monkeypatch.setenv("OPENAI_API_KEY", "rotated")  # a changed setting builds a new instance
    assert LLM_API.get("OPENAI", max_tokens=100, extra={"x": [1, 2]}) is not first


def test_add_provider_clears_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    first = LLM_API.get("OPENAI")
    add_provider("LOCAL_OPENAI_COMPAT", api_url=URL)
    assert LLM_API.get("OPENAI") is not first


# ----------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("value", ["high", "medium", "low", "auto", "2", "yes", "TRUE", "on", " x "])
def test_every_string_but_the_deny_list_enables_reasoning(value: str) -> None:
    assert LLM_API.parse_enable_reasoning(value) is True


@pytest.mark.parametrize("value", ["", "false", "FALSE", "0", "no", "off", " Disabled ", "none", None])
def test_the_deny_list_disables_reasoning(value: str | None) -> None:
    assert LLM_API.parse_enable_reasoning(value) is False


def test_reasoning_metadata_high_turns_reasoning_on_with_that_effort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    payload = LLM_API.get("OPENAI").preview_request(model="o4-mini", metadata={"REASONING": "high"})
    assert payload["reasoning_effort"] == "high"
    off = LLM_API.get("OPENAI").preview_request(model="o4-mini", metadata={"REASONING": "off"})
    assert "reasoning_effort" not in off


@pytest.mark.parametrize("value", [-0.01, 1.5, float("nan"), float("inf"), "-inf"])
def test_parse_temperature_uses_the_original_message(value: object) -> None:
    with pytest.raises(ValueError, match=r"^TEMPERATURE must be between 0.0 and 1.0, got "):
        LLM_API.parse_temperature(value)


def test_parse_temperature_and_require_model_as_the_original() -> None:
    assert LLM_API.parse_temperature(None) is None and LLM_API.parse_temperature("0.3") == 0.3
    with pytest.raises(ValueError, match=r"^model must be provided to process_request"):
        LLM_API.require_model("")
    assert LLM_API.require_model("m") == "m"


# ----------------------------------------------------------------------------- tools
async def test_no_tools_scope_sends_no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    payload = LLM_API.get("OPENAI").preview_request(
        model="gpt-4o", available_tools=[get_weather, get_time], chat_history=user("hi")
    )
    assert "tools" not in payload


@pytest.mark.parametrize(
    ("scope", "sent"),
    [
        ("ALL", ["get_weather", "get_time"]),
        ("all-get_time", ["get_weather"]),
        ("+get_time", ["get_time"]),
        ("APPLICATION -get_weather +get_weather", ["get_time", "get_weather"]),
    ],
)
def test_tools_scope_grammar(monkeypatch: pytest.MonkeyPatch, scope: str, sent: list[str]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    payload = LLM_API.get("OPENAI").preview_request(
        model="gpt-4o", available_tools=[get_weather, get_time], metadata={"LLM_TOOLS_SCOPE": scope}
    )
    assert [t["function"]["name"] for t in payload["tools"]] == sent


def test_removing_a_tool_that_was_not_selected_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with pytest.raises(ValueError, match="not selected"):
        LLM_API.get("OPENAI").preview_request(
            model="gpt-4o",
            available_tools=[get_weather, get_time],
            metadata={"LLM_TOOLS_SCOPE": "+get_weather-get_time"},
        )


# ----------------------------------------------------------------------------- response types
async def test_stats_unpack_six_ways_and_the_detail_stays_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_URL", URL)
    wire = Wire(
        {
            "model": "gpt-4o-2024-08-06",
            "choices": [{"message": {"content": None}, "finish_reason": "length"}],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 40,
                "prompt_tokens_details": {"cached_tokens": 60},
                "completion_tokens_details": {"reasoning_tokens": 30},
            },
        }
    )
    response = await LLM_API.get("OPENAI", http_client=wire.client()).process_request(
        model="gpt-4o", chat_history=user("hi")
    )
    text, stats, calls = response
    sent, received, cost, input_tokens, output_tokens, cached = stats
    assert text == "" and calls is None and cost is None
    assert (input_tokens, output_tokens, cached) == (100, 40, 60) and sent > 0 and received > 0
    assert LLM_Stats(1, 2, None) == (1, 2, None, 0, 0, 0)
    detail = response.detail
    assert detail.reasoning_tokens == 30 and detail.finish_reason == "length"
    assert detail.response_model == "gpt-4o-2024-08-06" and detail.cost_status == "calculated"


def test_call_requests_are_the_originals_call_params() -> None:
    call = CallParams("call_1", "get_weather", [], {"city": "Paris"})
    call_id, name, args, kwargs = call
    assert (call_id, name, args, kwargs) == ("call_1", "get_weather", [], {"city": "Paris"})
    assert statek.ToolCall is CallParams


async def test_tool_calls_come_back_as_call_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_URL", URL)
    wire = Wire(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                            }
                        ],
                    }
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
    )
    response = await LLM_API.get("OPENAI", http_client=wire.client()).process_request(
        model="gpt-4o", chat_history=user("hi")
    )
    assert response.call_requests == [CallParams("c1", "get_weather", [], {"city": "Rome"})]
    assert isinstance(response.call_requests[0], CallParams) and response.call_requests[0].kwargs == {
        "city": "Rome"
    }


async def test_a_custom_providers_reported_cost_is_kept() -> None:
    wire = Wire(
        {
            "choices": [{"message": {"content": "ok"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "cost": 0.0042},
        }
    )
    add_provider("LOCAL_OPENAI_COMPAT", api_url=URL)
    response = await LLM_API.get("LOCAL_OPENAI_COMPAT", http_client=wire.client()).process_request(
        model="in-house", chat_history=user("hi")
    )
    assert response.stats.cost == Decimal("0.0042")
    assert response.detail.cost_status == "reported" and response.detail.priced_cost == Decimal("0.0042")


# ----------------------------------------------------------------------------- settings
def test_default_provider_variable_of_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_LLM_API_PROVIDER", "groq")
    monkeypatch.setenv("GROQ_API_KEY", "k")
    assert LLM_API.get().provider_key == "GROQ"
    monkeypatch.delenv("DEFAULT_LLM_API_PROVIDER")
    monkeypatch.setenv("STATEK_DEFAULT_LLM_API_PROVIDER", "GROQ")
    assert LLM_API.get().provider_key == "GROQ"


def test_settings_and_default_provider_come_from_a_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "DEFAULT_LLM_API_PROVIDER=mistral\nMISTRAL_API_KEY=from-dotenv\nMISTRAL_USE_PROMPT_CACHING=yes\n"
    )
    api = LLM_API.get()
    assert api.provider_key == "MISTRAL" and api.settings.key_value() == "from-dotenv"
    assert api.settings.use_prompt_caching is True
    monkeypatch.setenv("MISTRAL_API_KEY", "from-environment")  # the environment wins over the file
    assert LLM_API.get().settings.key_value() == "from-environment"


def test_missing_settings_and_unknown_names_use_the_originals_messages() -> None:
    with pytest.raises(ValueError, match=r"^No settings found for OPENAI provider\."):
        LLM_API.get("OPENAI")
    with pytest.raises(ValueError, match=r"^Unsupported LLM API provider: NOPE"):
        LLM_API.get("nope")
    add_provider("LOCAL_OPENAI_COMPAT", api_url=URL)
    for name in ("LOCAL_OPENAI_COMPAT", "vertex_ai", "CLAUDE", "anthropic", "google"):
        with pytest.raises(ValueError, match=r"^LLM API provider already registered: "):
            add_provider(name, api_url=URL)


async def test_a_whole_response_format_object_is_sent_as_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    whole = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    bare = {"type": "object", "properties": {"a": {"type": "string"}}}
    (tmp_path / "whole.json").write_text(json.dumps(whole))
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_RESPONSE_FORMAT_FILE", str(tmp_path / "whole.json"))
    assert LLM_API.get("OPENAI").preview_request(model="m")["response_format"] == whole
    monkeypatch.setenv("OPENAI_RESPONSE_FORMAT_FILE", str(tmp_path / "bare.json"))
    wrapped = LLM_API.get("OPENAI").preview_request(model="m")["response_format"]
    assert wrapped == {"type": "json_schema", "json_schema": {"name": "bare", "schema": bare}}


# ----------------------------------------------------------------------------- Vertex and Claude
def test_vertex_takes_the_originals_keywords_and_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEXAI_API_KEY", "k")
    monkeypatch.setenv("VERTEXAI_API_URL", "https://europe-west4-aiplatform.googleapis.com/v1/")
    api = LLM_API.get(
        "VERTEXAI",
        project="p1",
        location="europe-west4",
        publisher="google",
        auth="api_key",
        generation_config={"topK": 5, "temperature": 0.1},
    )
    assert api.api_url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4"
        "/publishers/google/models/{model}:generateContent"
    )
    assert api._request_headers()["x-goog-api-key"] == "k" and "authorization" not in api._request_headers()
    payload = api.preview_request(model="gemini-2.5-flash", chat_history=user("hi"), temperature=0.7)
    assert payload["generationConfig"] == {"topK": 5, "temperature": 0.7}


@pytest.mark.parametrize(
    "configured",
    [
        "https://api.anthropic.com",
        "https://api.anthropic.com/",
        "https://api.anthropic.com/v1",
        "https://api.anthropic.com/v1/messages",
    ],
)
def test_claude_reaches_the_messages_endpoint_from_a_base_url(
    monkeypatch: pytest.MonkeyPatch, configured: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("ANTHROPIC_API_URL", configured)
    assert LLM_API.get("ANTHROPIC").api_url == "https://api.anthropic.com/v1/messages"


def test_claude_takes_use_prompt_caching_and_max_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_API_KEY", "k")
    api = statek.ClaudeAI_API(
        settings=statek.settings.ProviderSettings(api_key="k"), use_prompt_caching=True, max_tokens=123
    )
    payload = api.preview_request(model="claude-sonnet-4-5", system_prompt="s", chat_history=user("hi"))
    assert payload["max_tokens"] == 123 and payload["system"][0]["cache_control"] == {"type": "ephemeral"}


# ----------------------------------------------------------------------------- errors
async def test_http_failures_are_httpx_errors_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-compat-canary-1234567890")
    monkeypatch.setenv("OPENAI_API_URL", URL + "?key=sk-compat-canary-1234567890")
    wire = Wire({"error": {"message": "bad request"}}, status=400)
    api = LLM_API.get("OPENAI", http_client=wire.client())
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await api.process_request(model="gpt-4o", chat_history=user("hi"))
    error = raised.value
    assert isinstance(error, httpx.HTTPError) and isinstance(error, statek.exceptions.ProviderHTTPError)
    assert error.response.status_code == 400 and error.request.url.path == "/v1/chat/completions"
    shown = f"{error} {error!r} {error.request.url} {error.request.headers} {error.response.headers}"
    assert "sk-compat-canary" not in shown


async def test_connection_failures_are_httpx_transport_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    add_provider("LOCAL_OPENAI_COMPAT", api_url=URL, retry=statek._http.RetryPolicy(max_attempts=1))
    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    with pytest.raises(httpx.TransportError) as raised:
        await LLM_API.get("LOCAL_OPENAI_COMPAT", http_client=client).process_request(
            model="m", chat_history=user("hi")
        )
    assert isinstance(raised.value, statek.exceptions.ProviderConnectionError)
    assert raised.value.request.url == httpx.URL(URL)


# ----------------------------------------------------------------------------- issue 26: upgrades without surprises
GEMINI_BASE = "https://generativelanguage.googleapis.com/v1beta/models"
GEMINI_ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
}


@pytest.mark.parametrize(
    ("name", "kwargs"), [("GEMINI", {}), ("VERTEXAI", {"auth": "api_key"}), ("VERTEXAI", {})]
)
async def test_a_gemini_api_base_url_sends_model_generate_content(
    monkeypatch: pytest.MonkeyPatch, name: str, kwargs: dict[str, Any]
) -> None:
    monkeypatch.setenv(f"{name}_API_KEY", "k")
    monkeypatch.setenv(f"{name}_API_URL", GEMINI_BASE + "/")
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=GEMINI_ANSWER)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    api = LLM_API.get(name, http_client=client, **kwargs)
    response = await api.process_request(model="gemini-2.5-flash", chat_history=user("hi"))
    assert str(sent[0].url) == f"{GEMINI_BASE}/gemini-2.5-flash:generateContent"
    assert sent[0].headers["x-goog-api-key"] == "k" and "authorization" not in sent[0].headers
    assert response.text == "hi" and response.stats.input_tokens == 3


def test_vertex_with_a_base_url_and_no_project_constructs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEXAI_API_KEY", "k")
    monkeypatch.setenv("VERTEXAI_API_URL", "https://europe-west4-aiplatform.googleapis.com/v1")
    monkeypatch.delenv("VERTEXAI_PROJECT", raising=False)
    api = LLM_API.get("VERTEXAI")
    assert api.preview_request(model="gemini-2.5-flash", chat_history=user("hi"))["contents"]


class KeywordForwarding(LLM_API):
    """A 1.0-style subclass whose constructor keeps every keyword it is given (e.g. as payload fields)."""

    requires_api_key = False
    given: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, settings: Any = None, **kwargs: Any) -> None:
        KeywordForwarding.given.append(dict(kwargs))
        super().__init__(settings=settings)
        self.extra = kwargs

    def _build_request_payload(self, **request: Any) -> dict[str, Any]:
        return {"model": request["model"], **self.extra}

    async def _process_request(self, **request: Any) -> LLM_Response:
        raise NotImplementedError


def test_a_custom_implementation_gets_only_the_keywords_it_was_registered_with() -> None:
    KeywordForwarding.given.clear()
    add_provider("PAYLOAD_PROXY", KeywordForwarding, api_url=URL, route="eu")
    api = LLM_API.get("PAYLOAD_PROXY")
    assert KeywordForwarding.given == [{"route": "eu"}]  # no provider_key: the original never passed one
    assert api.preview_request(model="m") == {"model": "m", "route": "eu"}
    assert api.provider_key == "PAYLOAD_PROXY"  # still known by its registered name
