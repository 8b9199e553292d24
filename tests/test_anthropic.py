"""ClaudeAI_API against Anthropic Messages bodies (shapes and numbers from the provider's own docs)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from statek.chat import ChatHistoryItem, ChatStyle, ToolCall
from statek.exceptions import (
    AuthenticationError,
    ConfigurationError,
    MalformedToolCallError,
    ProviderError,
    ResponseFormatError,
)
from statek.providers.anthropic import Claude_API, ClaudeAI_API, ClaudeToolCall
from statek.settings import ProviderSettings

KEY = "sk-ant-api03-DO-NOT-LEAK-1234"
URL = "http://127.0.0.1:9/custom/v1/messages"
MODEL = "claude-sonnet-4-5"


class Recorder:
    """An httpx handler answering with canned bodies and keeping every request."""

    def __init__(self, *bodies: bytes, status: int = 200, content_type: str = "application/json") -> None:
        self.bodies = list(bodies)
        self.status = status
        self.content_type = content_type
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(
            self.status, content=self.bodies.pop(0), headers={"content-type": self.content_type}
        )

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))

    @property
    def sent(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


def make_api(recorder: Recorder, **kwargs: Any) -> ClaudeAI_API:
    settings = {"api_url": URL, "api_key": KEY, **kwargs.pop("settings", {})}
    return ClaudeAI_API(ProviderSettings(**settings), http_client=recorder.client(), **kwargs)


def message(content: list[dict[str, Any]], usage: dict[str, Any], stop_reason: str = "end_turn") -> bytes:
    body = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    return json.dumps(body).encode()


def get_weather(location: str, unit: str = "celsius") -> str:
    """Current weather.

    Args:
        location: City and country.
        unit: celsius or fahrenheit.
    """
    return "sunny"


def get_time() -> str:
    """Current time."""
    return "noon"


# (usage on the wire, expected (input, output, cached, cache_write, cache_write_1h, reasoning))
USAGE_CASES = {
    "cache write with TTL split": (
        {
            "input_tokens": 21,
            "cache_creation_input_tokens": 556,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 456, "ephemeral_1h_input_tokens": 100},
            "output_tokens": 393,
            "service_tier": "standard",
        },
        (577, 393, 0, 556, 100, 0),
    ),
    "cache write without TTL split (all 5m)": (
        {
            "cache_creation_input_tokens": 188086,
            "cache_read_input_tokens": 0,
            "input_tokens": 21,
            "output_tokens": 393,
        },
        (188107, 393, 0, 188086, 0, 0),
    ),
    "cache read": (
        {
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 188086,
            "input_tokens": 21,
            "output_tokens": 393,
        },
        (188107, 393, 188086, 0, 0, 0),
    ),
    "thinking inside output": (
        {"input_tokens": 25, "output_tokens": 348, "output_tokens_details": {"thinking_tokens": 312}},
        (25, 348, 0, 0, 0, 312),
    ),
}


@pytest.mark.parametrize("usage, expected", USAGE_CASES.values(), ids=USAGE_CASES.keys())
async def test_usage_is_normalised_to_one_meaning(usage: dict[str, Any], expected: tuple[int, ...]) -> None:
    body = message([{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}], usage)
    recorder = Recorder(body)
    response = await make_api(recorder).process_request(
        model=MODEL, chat_history=[ChatHistoryItem.user("Hi")]
    )

    stats = response.detail
    assert (
        stats.input_tokens,
        stats.output_tokens,
        stats.cached_tokens,
        stats.cache_write_tokens,
        stats.cache_write_1h_tokens,
        stats.reasoning_tokens,
    ) == expected
    assert stats.cost is None
    assert stats.total_bytes_sent == len(recorder.requests[0].content)
    assert stats.total_bytes_received == len(body)
    assert stats.response_model == "claude-sonnet-4-5-20250929"
    assert stats.finish_reason == "end_turn"
    assert response.text == "Hello, world"
    assert response.call_requests is None


async def test_configured_url_and_anthropic_headers() -> None:
    recorder = Recorder(message([{"type": "text", "text": "ok"}], {"input_tokens": 1, "output_tokens": 1}))
    await make_api(recorder).process_request(model=MODEL, chat_history=[ChatHistoryItem.user("Hi")])

    request = recorder.requests[0]
    assert str(request.url) == URL
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert ClaudeAI_API.default_api_url == "https://api.anthropic.com/v1/messages"
    assert (ClaudeAI_API.provider_key, ClaudeAI_API.genai_provider_name) == ("ANTHROPIC", "anthropic")
    assert Claude_API is ClaudeAI_API


async def test_preview_is_exactly_what_is_sent() -> None:
    recorder = Recorder(message([{"type": "text", "text": "ok"}], {"input_tokens": 1, "output_tokens": 1}))
    api = make_api(recorder)
    arguments: dict[str, Any] = {
        "system_prompt": "Be concise.",
        "model": MODEL,
        "metadata": {"MAX_TOKENS": 300, "LLM_TOOLS_SCOPE": "ALL"},
        "available_tools": [get_weather],
        "chat_history": [ChatHistoryItem.user("Weather in Paris?")],
        "temperature": 0.2,
    }
    preview = api.preview_request(**arguments)
    await api.process_request(**arguments)

    assert recorder.sent == preview
    assert preview["system"] == "Be concise."
    assert preview["max_tokens"] == 300
    assert preview["temperature"] == 0.2
    assert preview["tools"][0]["name"] == "get_weather"
    assert preview["tools"][0]["input_schema"]["required"] == ["location"]
    assert preview["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}
    ]


async def test_tool_calls_round_trip_through_history() -> None:
    thinking = {"type": "thinking", "thinking": "Two cities.", "signature": "EqQBCgIYAhIM"}
    body = message(
        [
            thinking,
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"location": "Oslo"}},
        ],
        {"input_tokens": 25, "output_tokens": 348, "output_tokens_details": {"thinking_tokens": 312}},
        stop_reason="tool_use",
    )
    recorder = Recorder(body)
    api = make_api(recorder)
    first = [ChatHistoryItem.user("Weather in Paris and Oslo?")]
    response = await api.process_request(model=MODEL, chat_history=first, available_tools=[get_weather])

    assert response.detail.finish_reason == "tool_use"
    assert response.text == "Checking both."
    calls = response.call_requests
    assert calls is not None and [(c.id, c.name, c.args, c.kwargs) for c in calls] == [
        ("toolu_01A", "get_weather", [], {"location": "Paris"}),
        ("toolu_01B", "get_weather", [], {"location": "Oslo"}),
    ]
    assert calls[0] == ToolCall("toolu_01A", "other") and hash(calls[0]) == hash("toolu_01A")

    history = [
        *first,
        ChatHistoryItem.assistant(response.text, calls),
        ChatHistoryItem.tool_result(calls[0], {"temp": 21}),
        ChatHistoryItem.tool_result(calls[1], "cold"),
        ChatHistoryItem.user("Thanks. Which is warmer?"),
    ]
    with_thinking = api.preview_request(model=MODEL, chat_history=history, enable_reasoning=True)
    assert with_thinking["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}]},
        {
            "role": "assistant",
            "content": [
                thinking,
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"location": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": '{"temp": 21}'},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "cold"},
                {"type": "text", "text": "Thanks. Which is warmer?"},
            ],
        },
    ]
    without_thinking = api.preview_request(model=MODEL, chat_history=history)
    assert without_thinking["messages"][1]["content"][0] == {"type": "text", "text": "Checking both."}


def test_plain_style_renders_tools_as_text_and_offers_none() -> None:
    api = ClaudeAI_API(ProviderSettings(api_url=URL, api_key=KEY))
    call = ToolCall("toolu_9", "get_weather", kwargs={"location": "Rome"})
    history = [
        ChatHistoryItem.user("Weather?"),
        ChatHistoryItem.assistant("", [call]),
        ChatHistoryItem.tool_result(call, "hot"),
    ]
    payload = api.preview_request(
        model=MODEL, chat_history=history, chat_style=ChatStyle.PLAIN, available_tools=[get_weather]
    )
    assert "tools" not in payload
    assert payload["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": '\n[called tool get_weather with {"location": "Rome"}]'}],
        },
        {"role": "user", "content": [{"type": "text", "text": "[result of tool get_weather]\nhot"}]},
    ]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": '{"location": "Paris"}'},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": ["Paris"]},
        {"type": "tool_use", "id": "toolu_1", "input": {"location": "Paris"}},
        {"type": "tool_use", "name": "get_weather", "input": {"location": "Paris"}},
    ],
    ids=["input is a string", "input is a list", "no name", "no id"],
)
async def test_malformed_tool_calls_raise_a_typed_error(block: dict[str, Any]) -> None:
    body = message([block], {"input_tokens": 5, "output_tokens": 7}, stop_reason="tool_use")
    recorder = Recorder(body)
    with pytest.raises(MalformedToolCallError) as caught:
        await make_api(recorder).process_request(model=MODEL, chat_history=[ChatHistoryItem.user("Hi")])
    assert caught.value.provider == "ANTHROPIC"
    assert caught.value.bytes_received == len(body)


@pytest.mark.parametrize(
    "usage", [{}, {"usage": None}, {"usage": "n/a"}], ids=["missing", "null", "a string"]
)
async def test_an_answer_without_usage_keeps_its_text_and_is_no_usage(usage: dict[str, Any]) -> None:
    body = {"type": "message", "content": [{"type": "text", "text": "Hello"}], **usage}
    response = await make_api(Recorder(json.dumps(body).encode())).process_request(
        model=MODEL, chat_history=[ChatHistoryItem.user("Hi")]
    )
    assert response.text == "Hello"
    assert not response.detail.has_usage and response.detail.cost_status == "no_usage"
    assert response.detail.priced_cost is None


async def test_an_answer_that_is_not_a_message_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="not a message"):
        await make_api(Recorder(b"[1, 2]")).process_request(
            model=MODEL, chat_history=[ChatHistoryItem.user("Hi")]
        )


def sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


STREAM_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "usage": {
            "input_tokens": 25,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 100,
            "output_tokens": 1,
        },
    },
}


async def test_streaming_folds_events_and_replaces_cumulative_usage() -> None:
    body = sse(
        STREAM_START,
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_S", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"locat'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'ion": "Paris"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 10}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 100,
                "output_tokens": 15,
            },
        },
        {"type": "message_stop"},
    )
    recorder = Recorder(body, content_type="text/event-stream")
    api = make_api(recorder, stream=True)
    history = [ChatHistoryItem.user("Weather in Paris?")]
    response = await api.process_request(model=MODEL, chat_history=history, available_tools=[get_weather])

    assert recorder.sent == api.preview_request(
        model=MODEL, chat_history=history, available_tools=[get_weather]
    )
    assert recorder.sent["stream"] is True
    assert recorder.requests[0].headers["accept"] == "text/event-stream"
    assert response.text == "Let me check."
    assert response.call_requests is not None
    assert [(c.id, c.name, c.kwargs) for c in response.call_requests] == [
        ("toolu_S", "get_weather", {"location": "Paris"})
    ]
    stats = response.detail
    # Summing would give 250 input / 26 output: message_delta usage is cumulative and replaces.
    assert (stats.input_tokens, stats.cached_tokens, stats.output_tokens) == (125, 100, 15)
    assert stats.finish_reason == "tool_use"
    assert stats.response_model == "claude-sonnet-4-5-20250929"
    assert stats.total_bytes_received == len(body)
    assert stats.total_bytes_sent == len(recorder.requests[0].content)


async def test_streamed_tool_input_that_is_not_json_is_malformed() -> None:
    body = sse(
        STREAM_START,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_S", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"loc'},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
    )
    with pytest.raises(MalformedToolCallError):
        await make_api(Recorder(body), stream=True).process_request(
            model=MODEL, chat_history=[ChatHistoryItem.user("Hi")]
        )


async def test_an_error_event_inside_a_stream_is_a_provider_error() -> None:
    body = sse(
        STREAM_START, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    with pytest.raises(ProviderError, match="overloaded_error") as caught:
        await make_api(Recorder(body), stream=True).process_request(
            model=MODEL, chat_history=[ChatHistoryItem.user("Hi")]
        )
    assert caught.value.bytes_received == len(body)


def caching_payload(use_prompt_caching: bool) -> dict[str, Any]:
    api = ClaudeAI_API(ProviderSettings(api_url=URL, api_key=KEY, use_prompt_caching=use_prompt_caching))
    call = ToolCall("toolu_1", "get_weather", kwargs={"location": "Paris"})
    history = [
        ChatHistoryItem.user("Weather?"),
        ChatHistoryItem.assistant("", [call]),
        ChatHistoryItem.tool_result(call, "sunny"),
        ChatHistoryItem.assistant("Sunny."),
        ChatHistoryItem.user("And the time?"),
    ]
    return api.preview_request(
        system_prompt="A long, stable system prompt.",
        model=MODEL,
        chat_history=history,
        available_tools=[get_weather, get_time],
        metadata={"LLM_TOOLS_SCOPE": "ALL"},
    )


def test_prompt_caching_marks_system_last_tool_and_last_user_turn() -> None:
    payload = caching_payload(True)
    ephemeral = {"type": "ephemeral"}
    assert payload["system"] == [
        {"type": "text", "text": "A long, stable system prompt.", "cache_control": ephemeral}
    ]
    assert "cache_control" not in payload["tools"][0]
    assert payload["tools"][1]["cache_control"] == ephemeral
    assert payload["messages"][-1]["content"][-1] == {
        "type": "text",
        "text": "And the time?",
        "cache_control": ephemeral,
    }
    assert json.dumps(payload).count("cache_control") == 3  # Anthropic allows at most 4 breakpoints


def test_no_cache_markers_without_prompt_caching() -> None:
    payload = caching_payload(False)
    assert "cache_control" not in json.dumps(payload)
    assert payload["system"] == "A long, stable system prompt."


def thinking_payload(metadata: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    api = ClaudeAI_API(ProviderSettings(api_url=URL, api_key=KEY), **kwargs)
    return api.preview_request(
        model=MODEL, metadata=metadata, chat_history=[ChatHistoryItem.user("Think.")], temperature=0.7
    )


@pytest.mark.parametrize(
    "metadata, budget, max_tokens",
    [
        ({"ENABLE_REASONING": "yes"}, 2048, 4096),
        ({"REASONING_BUDGET_TOKENS": 3000}, 3000, 4096),
        ({"REASONING_EFFORT": "high"}, 16384, 16384 + 4096),
        ({"REASONING_BUDGET_TOKENS": 3000, "MAX_TOKENS": 8000}, 3000, 8000),
    ],
)
def test_thinking_budget_max_tokens_and_no_temperature(
    metadata: dict[str, Any], budget: int, max_tokens: int
) -> None:
    payload = thinking_payload(metadata)
    assert payload["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert payload["max_tokens"] == max_tokens
    assert "temperature" not in payload  # Anthropic rejects temperature with thinking


def test_no_thinking_keeps_temperature_and_default_max_tokens() -> None:
    payload = thinking_payload({}, default_max_tokens=1000)
    assert "thinking" not in payload
    assert payload["temperature"] == 0.7
    assert payload["max_tokens"] == 1000


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"REASONING_BUDGET_TOKENS": 500}, "at least 1024"),
        ({"REASONING_BUDGET_TOKENS": 3000, "MAX_TOKENS": 3000}, "must exceed the thinking budget"),
    ],
)
def test_impossible_thinking_settings_are_configuration_errors(
    metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        thinking_payload(metadata)


def test_response_format_file_becomes_native_json_output(tmp_path: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"name": "answer", "schema": schema, "strict": True}))
    api = ClaudeAI_API(ProviderSettings(api_url=URL, api_key=KEY, response_format_file=str(path)))
    payload = api.preview_request(model=MODEL, chat_history=[ChatHistoryItem.user("Where?")])
    assert payload["output_config"] == {"format": {"type": "json_schema", "schema": schema}}

    with pytest.raises(ConfigurationError, match="ANTHROPIC_RESPONSE_FORMAT_FILE"):
        ClaudeAI_API(ProviderSettings(api_key=KEY, response_format_file=str(tmp_path / "missing.json")))


async def test_the_key_never_appears_in_reprs_or_errors() -> None:
    recorder = Recorder(
        b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}', status=401
    )
    api = make_api(recorder)
    with pytest.raises(AuthenticationError) as caught:
        await api.process_request(model=MODEL, chat_history=[ChatHistoryItem.user("Hi")])
    error = caught.value
    assert error.status_code == 401
    assert error.headers is not None
    for text in (repr(api), repr(api.settings), str(error), repr(error), repr(error.headers), error.body):
        assert KEY not in text

    keyless = ClaudeAI_API(ProviderSettings(api_url=URL), http_client=Recorder().client())
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        await keyless.process_request(model=MODEL, chat_history=[ChatHistoryItem.user("Hi")])


def test_parsed_calls_carry_their_thinking_but_stay_plain_tool_calls() -> None:
    call = ClaudeToolCall(
        "toolu_1", "f", kwargs={"a": 1}, thinking_blocks=({"type": "redacted_thinking", "data": "x"},)
    )
    assert isinstance(call, ToolCall)
    assert call == ToolCall("toolu_1", "f") and {call} == {ToolCall("toolu_1", "g")}
