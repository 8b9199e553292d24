"""The OpenAI chat-completions wire format: requests, responses, streaming, retries, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from statek import LLM_API
from statek._http import RetryPolicy
from statek.chat import ChatHistoryItem, ChatStyle, ToolCall
from statek.exceptions import (
    ConfigurationError,
    MalformedToolCallError,
    ProviderServerError,
    ResponseFormatError,
)
from statek.providers.catalog import (
    XAI_API,
    DashScope_API,
    DeepSeek_API,
    Groq_API,
    MistralAI_API,
    OpenAI_API,
    OpenRouter_API,
)
from statek.providers.openai_compat import (
    ChatCompletionsProfile,
    OpenAICompatible_API,
    UsageCounts,
    normalise_usage,
)
from statek.settings import ProviderSettings
from statek.wire.sse import iter_sse_json

KEY = "sk-secret-wire-test-9876543210"
URL = "http://127.0.0.1:9/v1/chat/completions"
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.05, jitter=False)
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def settings(**values: Any) -> ProviderSettings:
    return ProviderSettings(api_url=URL, api_key=KEY, **values)


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather for a city.

    Args:
        city: City name.
        unit: celsius or fahrenheit.
    """
    return "sunny"


def body(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "model": "gpt-test-2026",
        "usage": USAGE,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        **extra,
    }


class Scripted:
    """MockTransport handler answering with the given responses in order, recording requests."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def json_answer(payload: dict[str, Any], status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(payload).encode(), headers={"content-type": "application/json", **headers}
    )


def sse_answer(*chunks: dict[str, Any]) -> httpx.Response:
    content = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    return httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})


# ----------------------------------------------------------------------------- request
HISTORY = [
    ChatHistoryItem.user("Weather in Paris?"),
    ChatHistoryItem.assistant("", [ToolCall("call_1", "get_weather", [], {"city": "Paris"})]),
    ChatHistoryItem.tool_result(ToolCall("call_1", "get_weather"), {"sky": "sunny"}),
]


def test_payload_renders_history_tools_and_options() -> None:
    api = OpenAICompatible_API(settings())
    payload = api.preview_request(
        system_prompt="Be concise.",
        model="m1",
        chat_history=HISTORY,
        available_tools=[get_weather],
        temperature=0.2,
        metadata={"MAX_TOKENS": 100, "LLM_TOOLS_SCOPE": "+get_weather"},
    )
    assert payload["messages"] == [
        {"role": "system", "content": "Be concise."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
    ]
    [tool] = payload["tools"]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["description"] == "Current weather for a city."
    assert tool["function"]["parameters"]["required"] == ["city"]
    assert tool["function"]["parameters"]["properties"]["city"]["description"] == "City name."
    assert payload["temperature"] == 0.2 and payload["max_tokens"] == 100
    assert "reasoning_effort" not in payload and "stream" not in payload and "response_format" not in payload


def test_plain_style_renders_tool_turns_as_text_and_offers_no_tools() -> None:
    api = OpenAICompatible_API(settings())
    payload = api.preview_request(
        model="m1", chat_history=HISTORY, available_tools=[get_weather], chat_style=ChatStyle.PLAIN
    )
    assert "tools" not in payload
    roles = [m["role"] for m in payload["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert '[called tool get_weather with {"city": "Paris"}]' in payload["messages"][1]["content"]
    assert "[result of tool get_weather]" in payload["messages"][2]["content"]
    assert all("tool_calls" not in m for m in payload["messages"])


def test_openai_sends_max_completion_tokens() -> None:
    payload = OpenAI_API(settings()).preview_request(model="gpt-5-mini", metadata={"MAX_TOKENS": 64})
    assert payload["max_completion_tokens"] == 64 and "max_tokens" not in payload


@pytest.mark.parametrize(
    ("cls", "metadata", "expected"),
    [
        (OpenAI_API, {}, {"reasoning_effort": "medium"}),
        (OpenAI_API, {"REASONING_EFFORT": "HIGH"}, {"reasoning_effort": "high"}),
        (XAI_API, {}, {"reasoning_effort": "high"}),
        (OpenRouter_API, {}, {"reasoning": {"enabled": True}}),
        (OpenRouter_API, {"REASONING_EFFORT": "low"}, {"reasoning": {"effort": "low"}}),
        (OpenRouter_API, {"REASONING_BUDGET_TOKENS": 2048}, {"reasoning": {"max_tokens": 2048}}),
        (DashScope_API, {"REASONING_BUDGET_TOKENS": 500}, {"enable_thinking": True, "thinking_budget": 500}),
        (DeepSeek_API, {}, {}),
    ],
)
def test_reasoning_is_requested_the_way_each_provider_wants(
    cls: type[OpenAICompatible_API], metadata: dict[str, Any], expected: dict[str, Any]
) -> None:
    payload = cls(settings()).preview_request(model="m", metadata=metadata, enable_reasoning=True)
    extra = {k: v for k, v in payload.items() if k not in ("model", "messages")}
    assert extra == expected
    assert "reasoning_effort" not in cls(settings()).preview_request(model="m")


def test_response_format_from_a_bare_schema_file(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    path = tmp_path / "city answer.json"
    path.write_text(json.dumps(schema))
    payload = OpenAICompatible_API(settings(response_format_file=str(path))).preview_request(model="m")
    assert payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city_answer", "schema": schema},
    }


def test_response_format_file_in_openai_shape_is_sent_as_is(tmp_path: Path) -> None:
    document = {"name": "answer", "strict": True, "schema": {"type": "object", "additionalProperties": False}}
    path = tmp_path / "fmt.json"
    path.write_text(json.dumps(document))
    payload = OpenAICompatible_API(settings(response_format_file=str(path))).preview_request(model="m")
    assert payload["response_format"] == {"type": "json_schema", "json_schema": document}


@pytest.mark.parametrize(
    ("content", "reason"), [(None, "cannot be read"), ("{not json", "not valid JSON"), ("[1]", "JSON object")]
)
def test_bad_response_format_file_is_a_configuration_error_naming_it(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "schema.json"
    if content is not None:
        path.write_text(content)
    api = OpenAICompatible_API(settings(response_format_file=str(path)))
    with pytest.raises(ConfigurationError, match=reason) as info:
        api.preview_request(model="m")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_preview_is_exactly_what_is_sent(tmp_path: Path, stream: bool) -> None:
    path = tmp_path / "schema.json"
    path.write_text('{"type": "object"}')
    answer = sse_answer(body({"content": "x"})) if stream else json_answer(body({"content": "x"}))
    script = Scripted(answer)
    api = Groq_API(settings(response_format_file=str(path)), http_client=script.client(), stream=stream)
    arguments: dict[str, Any] = {
        "system_prompt": "Sé breve — ünïcödé.",
        "model": "llama-x",
        "chat_history": HISTORY,
        "available_tools": [get_weather],
        "temperature": "0.5",
        "metadata": {"MAX_TOKENS": 9, "REASONING_EFFORT": "low", "LLM_TOOLS_SCOPE": "ALL"},
    }
    preview = api.preview_request(**arguments)
    response = await api.process_request(**arguments)
    [request] = script.requests
    assert json.loads(request.content) == preview
    assert request.content == json.dumps(preview, separators=(",", ":"), ensure_ascii=False).encode()
    assert response.detail.total_bytes_sent == len(request.content)
    assert preview["stream"] is True if stream else "stream" not in preview


# ----------------------------------------------------------------------------- response
async def test_tool_calls_with_json_string_arguments() -> None:
    message = {
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_b", "type": "function", "function": {"name": "now", "arguments": ""}},
        ],
    }
    script = Scripted(json_answer(body(message, "tool_calls")))
    response = await OpenAICompatible_API(settings(), http_client=script.client()).process_request(model="m")
    assert response.text == ""
    assert response.detail.finish_reason == "tool_calls" and response.detail.response_model == "gpt-test-2026"
    first, second = response.call_requests or []
    assert (first.id, first.name, first.args, first.kwargs) == (
        "call_a",
        "get_weather",
        [],
        {"city": "Paris"},
    )
    assert (second.name, second.kwargs) == ("now", {})
    assert len({first, second, ToolCall("call_a", "other")}) == 2  # hashable by id


async def test_tool_call_arguments_may_be_an_object_and_text_may_be_content_parts() -> None:
    message = {
        "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
            {"type": "text", "text": "Done."},
        ],
        "tool_calls": [{"id": "t1", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
    }
    script = Scripted(json_answer(body(message, "tool_calls")))
    response = await MistralAI_API(settings(), http_client=script.client()).process_request(model="magistral")
    assert response.text == "Done."
    assert response.call_requests and response.call_requests[0].kwargs == {"city": "Oslo"}


@pytest.mark.parametrize(
    "call",
    [
        {"id": "c", "function": {"name": "f", "arguments": '{"city": "Par'}},
        {"id": "c", "function": {"name": "f", "arguments": "[1, 2]"}},
        {"id": "c", "function": {"arguments": "{}"}},
        {"id": "c", "function": "f()"},
    ],
    ids=["truncated-json", "not-an-object", "no-name", "no-function-object"],
)
async def test_malformed_tool_call_raises_a_typed_error(call: dict[str, Any]) -> None:
    script = Scripted(json_answer(body({"content": None, "tool_calls": [call]}, "tool_calls")))
    with pytest.raises(MalformedToolCallError, match="tool call #0") as info:
        await OpenAICompatible_API(settings(), http_client=script.client()).process_request(model="m")
    assert isinstance(info.value, ResponseFormatError) and info.value.bytes_received > 0


async def test_an_error_object_in_a_2xx_answer_is_a_format_error() -> None:
    script = Scripted(json_answer({"error": {"message": "upstream overloaded", "code": 502}}))
    with pytest.raises(ResponseFormatError, match="upstream overloaded"):
        await OpenAICompatible_API(settings(), http_client=script.client()).process_request(model="m")


async def test_a_body_that_is_not_json_is_a_format_error() -> None:
    script = Scripted(httpx.Response(200, content=b"<html>gateway</html>"))
    with pytest.raises(ResponseFormatError, match="not JSON"):
        await OpenAICompatible_API(settings(), http_client=script.client()).process_request(model="m")


# ----------------------------------------------------------------------------- usage
@pytest.mark.parametrize(
    ("usage", "profile", "expected"),
    [
        (
            {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 64}},
            MistralAI_API.profile,
            UsageCounts(100, 5, 64),
        ),
        (
            {"prompt_tokens": 100, "completion_tokens": 5, "prompt_token_details": {"cached_tokens": 32}},
            MistralAI_API.profile,
            UsageCounts(100, 5, 32),
        ),
        (
            {"prompt_tokens": 100, "completion_tokens": 5, "num_cached_tokens": 16},
            MistralAI_API.profile,
            UsageCounts(100, 5, 16),
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 11,
                "prompt_tokens_details": {"cached_tokens": 0},
                "prompt_cache_hit_tokens": 8,
                "prompt_cache_miss_tokens": 2,
            },
            DeepSeek_API.profile,
            UsageCounts(10, 11, 8),
        ),
        (
            {
                "prompt_tokens": 10339,
                "completion_tokens": 60,
                "cost": 0.1,
                "prompt_tokens_details": {"cached_tokens": 10318, "cache_write_tokens": 21},
            },
            OpenRouter_API.profile,
            UsageCounts(10339, 60, 10318, 21, 0, Decimal("0.1")),
        ),
        (
            {"prompt_tokens": 1, "completion_tokens": 1, "cost_in_usd_ticks": 1},
            XAI_API.profile,
            UsageCounts(1, 1, 0, 0, 0, Decimal("1E-10")),
        ),
        (None, ChatCompletionsProfile(), UsageCounts()),
        (
            {"prompt_tokens": 3, "completion_tokens": 4, "cost": 0.5},
            ChatCompletionsProfile(),
            UsageCounts(3, 4, cost=Decimal("0.5")),
        ),
        (
            {"prompt_tokens": 3, "completion_tokens": 4, "cost": {"total_cost": "0.25", "input": 0.1}},
            ChatCompletionsProfile(),
            UsageCounts(3, 4, cost=Decimal("0.25")),
        ),
        (
            {"prompt_tokens": 3, "completion_tokens": 4, "cost": -5},
            ChatCompletionsProfile(),
            UsageCounts(3, 4),
        ),
    ],
    ids=[
        "mistral-details",
        "mistral-misspelt",
        "mistral-num-cached",
        "deepseek-hit-wins",
        "openrouter-cost-and-write",
        "xai-one-tick",
        "no-usage",
        "cost-read-for-every-provider",
        "cost-object-with-a-total",
        "negative-cost-is-no-money",
    ],
)
def test_usage_normalisation(usage: Any, profile: ChatCompletionsProfile, expected: UsageCounts) -> None:
    counts = normalise_usage(usage, profile)
    assert counts == expected
    assert counts.cost is None or (isinstance(counts.cost, Decimal) and counts.cost == expected.cost)


def test_provider_cost_is_exact_decimal_not_binary_float() -> None:
    counts = normalise_usage({"cost": 0.1}, OpenRouter_API.profile)
    # Decimal(0.1) is the binary float's value; the provider meant exactly 0.1.
    assert counts.cost == Decimal("0.1") and counts.cost != Decimal(0.1)  # noqa: RUF032


# ----------------------------------------------------------------------------- streaming
async def test_stream_aggregates_text_tool_call_fragments_and_final_usage() -> None:
    base = {"id": "c", "model": "gpt-s"}
    answer = sse_answer(
        {
            "id": "",
            "choices": [],
            "model": "",
            "prompt_filter_results": [{"prompt_index": 0}],
        },  # Azure's first chunk
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Look"}}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "content": "ing.",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_x",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            },
                            {
                                "index": 1,
                                "id": "call_y",
                                "type": "function",
                                "function": {"name": "now", "arguments": "{"},
                            },
                        ],
                    },
                }
            ],
        },
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}}
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 1, "function": {"arguments": "}"}},
                            {"index": 0, "function": {"arguments": ' "Rome"}'}},
                        ]
                    },
                }
            ],
        },
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": None},
        {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 32},
            },
        },
    )
    script = Scripted(answer)
    api = OpenAI_API(settings(), http_client=script.client(), stream=True)
    response = await api.process_request(model="gpt-s")
    sent = json.loads(script.requests[0].content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert response.text == "Looking."
    assert [(c.id, c.name, c.kwargs) for c in response.call_requests or []] == [
        ("call_x", "get_weather", {"city": "Rome"}),
        ("call_y", "now", {}),
    ]
    stats = response.detail
    assert (stats.input_tokens, stats.output_tokens, stats.cached_tokens) == (50, 20, 32)
    assert stats.finish_reason == "tool_calls" and stats.response_model == "gpt-s"
    assert stats.total_bytes_received == len(answer.content)


async def test_stream_counts_the_exact_sse_bytes() -> None:
    answer = sse_answer(
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {"id": "c", "model": "m", "choices": [], "usage": USAGE},
    )
    raw = answer.content
    script = Scripted(answer)
    response = await OpenAICompatible_API(
        settings(), http_client=script.client(), stream=True
    ).process_request(model="m")
    assert response.text == "hi" and response.detail.total_bytes_received == len(raw)
    assert response.detail.input_tokens == 12 and response.detail.output_tokens == 5


async def test_a_server_that_ignores_stream_true_is_read_as_json() -> None:
    script = Scripted(json_answer(body({"content": "whole"})))
    response = await OpenAICompatible_API(
        settings(), http_client=script.client(), stream=True
    ).process_request(model="m")
    assert response.text == "whole" and response.detail.input_tokens == 12


async def test_a_stream_error_event_is_a_format_error() -> None:
    script = Scripted(sse_answer({"error": {"message": "provider died mid-stream"}}))
    with pytest.raises(ResponseFormatError, match="died mid-stream"):
        await OpenAICompatible_API(settings(), http_client=script.client(), stream=True).process_request(
            model="m"
        )


def test_sse_parser_handles_crlf_comments_and_multiline_data() -> None:
    raw = (
        b': keep-alive\r\n\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b'event: x\ndata: {"b":"\xe2\x80\xa8"}\n\ndata:[DONE]\n\n'
    )
    assert list(iter_sse_json(raw)) == [(None, {"a": 1}), ("x", {"b": "\u2028"})]


# ----------------------------------------------------------------------------- retries and secrets
async def test_429_with_retry_after_then_success(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    limited = json_answer({"error": {"message": "rate limited"}}, 429, **{"retry-after": "0.01"})
    ok = json_answer(body({"content": "fine"}))
    sizes = [len(limited.content), len(ok.content)]
    script = Scripted(limited, ok)
    api = OpenAICompatible_API(settings(), http_client=script.client(), retry=FAST)
    response = await api.process_request(model="m")
    assert response.text == "fine" and len(script.requests) == 2
    assert response.detail.total_bytes_sent == 2 * len(script.requests[0].content)
    assert response.detail.total_bytes_received == sum(sizes)
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in script.requests)
    assert KEY not in caplog.text


async def test_5xx_exhausted_raises_server_error_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    script = Scripted(*[json_answer({"error": "busy"}, 503, **{"retry-after": "0.01"}) for _ in range(3)])
    api = OpenAICompatible_API(settings(), http_client=script.client(), retry=FAST)
    with pytest.raises(ProviderServerError) as info:
        await api.process_request(model="m")
    error = info.value
    assert (error.status_code, error.attempts, error.retry_after) == (503, 3, 0.01)
    assert "busy" in error.body and error.provider == "CUSTOM"
    assert len(script.requests) == 3
    for text in (
        str(error),
        repr(error),
        repr(error.__dict__),
        repr(api),
        repr(api.settings),
        str(api.settings),
    ):
        assert KEY not in text
    assert KEY not in caplog.text


# ----------------------------------------------------------------------------- event loops
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a pooled connection outlives each asyncio.run
    hits = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        type(self).hits += 1
        data = json.dumps(body({"content": f"answer {type(self).hits}"})).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[str]:
    _Handler.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    finally:
        server.shutdown()
        server.server_close()


def test_one_cached_instance_serves_successive_event_loops(loopback: str) -> None:
    api = LLM_API.get("VLLM", api_url=loopback, retry=FAST)
    texts = [asyncio.run(api.process_request(model="m")).text for _ in range(3)]
    assert texts == ["answer 1", "answer 2", "answer 3"]


async def test_url_and_headers_follow_replaced_settings_and_a_subclass_headers_hook() -> None:
    """The URL, query and headers are worked out once per settings and profile: replacing the
    settings takes effect on the next call, and a subclass's own headers are still sent every call."""
    script = Scripted(*(json_answer(body({"content": "hi"})) for _ in range(3)))
    api = OpenAICompatible_API(settings(), http_client=script.client())
    await api.process_request(model="m")
    api.settings = ProviderSettings(api_url="http://127.0.0.1:9/other/chat/completions", api_key="key-two")
    await api.process_request(model="m")

    class Tagged(OpenAICompatible_API):
        calls = 0

        def _request_headers(self) -> dict[str, str]:
            Tagged.calls += 1
            return {**super()._request_headers(), "x-call": str(Tagged.calls)}

    await Tagged(settings(), http_client=script.client()).process_request(model="m")
    first, second, third = script.requests
    assert str(first.url) == URL and first.headers["authorization"] == f"Bearer {KEY}"
    assert str(second.url) == "http://127.0.0.1:9/other/chat/completions"
    assert second.headers["authorization"] == "Bearer key-two"
    assert third.headers["x-call"] == "1" and third.headers["authorization"] == f"Bearer {KEY}"
    assert "x-call" not in api._request_headers()  # the subclass's change stayed in its copy


@pytest.mark.parametrize("system", [None, "", "Be brief."])
@pytest.mark.parametrize("history", [None, [], HISTORY])
@pytest.mark.parametrize("switch", [False, None, "", 0, "off"])
def test_the_common_call_is_prepared_as_the_general_path_prepares_it(
    system: str | None, history: list[ChatHistoryItem] | None, switch: Any
) -> None:
    """No metadata, tools, style or temperature takes :meth:`_prepare`'s short way; passing the
    native style explicitly takes the general one: the same request and payload either way."""
    api = OpenAICompatible_API(settings(), model="m")
    short = api._prepare(system, None, None, None, history, None, None, switch)
    general = api._prepare(system, None, {}, [], history, ChatStyle.NATIVE, None, switch)
    assert short == general
    assert api._payload(short) == api._payload(general)
    with pytest.raises(ValueError):
        api._prepare(system, None, None, None, history, "", None, switch)  # a blank style is refused


def test_the_cached_endpoint_never_shows_the_key() -> None:
    from statek import LLM_API

    api = LLM_API.get(
        "OPENAI", api_key="sk-cached-secret-42", api_url="http://127.0.0.1:1/v1/chat/completions"
    )
    endpoint = api._endpoint()  # type: ignore[attr-defined]
    assert endpoint.headers["authorization"] == "Bearer sk-cached-secret-42"  # it is what is sent
    assert "sk-cached-secret-42" not in repr(endpoint) and "sk-cached-secret-42" not in repr(api)


def test_a_subclass_parser_still_decides_a_plain_call() -> None:
    """``parse_temperature`` and ``parse_enable_reasoning`` are public hooks: a subclass that gives
    a default keeps it on the common call, which otherwise skips them."""

    class Warm(OpenAICompatible_API):
        @staticmethod
        def parse_temperature(value: object) -> float | None:
            return 0.5 if value is None else float(value)  # type: ignore[arg-type]

        @staticmethod
        def parse_enable_reasoning(value: object) -> bool:
            return True

    prepared = Warm(settings(), model="m")._prepare(None, None, None, None, HISTORY, None, None, None)
    assert (prepared.temperature, prepared.enable_reasoning) == (0.5, True)
