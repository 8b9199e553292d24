"""VertexAI_API against Gemini generateContent bodies (usage samples from the reference document)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from statek.chat import ChatHistoryItem, ChatStyle, ToolCall, tool_spec
from statek.exceptions import (
    AuthenticationError,
    ConfigurationError,
    MalformedToolCallError,
    ProviderError,
    ResponseFormatError,
)
from statek.providers.vertex import GEMINI_API_URL, GeminiToolCall, VertexAI_API, gemini_schema
from statek.settings import VERTEXAI_LOCATION_ENV, VERTEXAI_PROJECT_ENV, ProviderSettings

KEY = "AIzaSy-DO-NOT-LEAK-5678"
LOCAL_URL = "http://127.0.0.1:9/v1beta/models/{model}:generateContent"
MODEL = "gemini-2.5-flash"


@pytest.fixture(autouse=True)
def no_vertex_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VERTEXAI_PROJECT_ENV, raising=False)
    monkeypatch.delenv(VERTEXAI_LOCATION_ENV, raising=False)


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


def make_api(recorder: Recorder, api_url: str | None = LOCAL_URL, **kwargs: Any) -> VertexAI_API:
    settings = {"api_url": api_url, "api_key": KEY, **kwargs.pop("settings", {})}
    return VertexAI_API(ProviderSettings(**settings), http_client=recorder.client(), **kwargs)


def response(
    parts: list[dict[str, Any]], usage: dict[str, Any] | None, finish: str = "STOP"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "abc",
    }
    if usage is not None:
        body["usageMetadata"] = usage
    return body


def encoded(body: dict[str, Any]) -> bytes:
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


HELLO = [ChatHistoryItem.user("Hi")]

# (usageMetadata on the wire, expected (input, output, cached, reasoning))
USAGE_CASES = {
    "thoughts and tool-use prompt outside the headline counts": (
        {
            "promptTokenCount": 12,
            "cachedContentTokenCount": 4,
            "candidatesTokenCount": 71,
            "toolUsePromptTokenCount": 65,
            "thoughtsTokenCount": 89,
            "totalTokenCount": 237,
        },
        (77, 160, 4, 89),
    ),
    "long prompt with thinking": (
        {
            "promptTokenCount": 55021,
            "candidatesTokenCount": 923,
            "totalTokenCount": 56729,
            "thoughtsTokenCount": 785,
        },
        (55021, 1708, 0, 785),
    ),
    "no thinking": (
        {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
        (8, 3, 0, 0),
    ),
}


@pytest.mark.parametrize("usage, expected", USAGE_CASES.values(), ids=USAGE_CASES.keys())
async def test_usage_is_normalised_to_one_meaning(usage: dict[str, Any], expected: tuple[int, ...]) -> None:
    parts = [{"text": "**Planning** the answer", "thought": True}, {"text": "Hello"}, {"text": ", world"}]
    body = encoded(response(parts, usage))
    recorder = Recorder(body)
    result = await make_api(recorder).process_request(model=MODEL, chat_history=HELLO)

    stats = result.detail
    assert (stats.input_tokens, stats.output_tokens, stats.cached_tokens, stats.reasoning_tokens) == expected
    assert stats.input_tokens + stats.output_tokens == usage["totalTokenCount"]
    assert (stats.cache_write_tokens, stats.cache_write_1h_tokens, stats.cost) == (0, 0, None)
    assert stats.total_bytes_sent == len(recorder.requests[0].content)
    assert stats.total_bytes_received == len(body)
    assert (stats.response_model, stats.finish_reason) == ("gemini-2.5-flash-001", "STOP")
    assert result.text == "Hello, world"  # thought summaries are not answer text
    assert result.call_requests is None


async def test_gemini_api_key_path() -> None:
    recorder = Recorder(
        encoded(response([{"text": "ok"}], {"promptTokenCount": 1, "candidatesTokenCount": 1}))
    )
    api = VertexAI_API(ProviderSettings(api_url=GEMINI_API_URL, api_key=KEY), http_client=recorder.client())
    await api.process_request(model=MODEL, chat_history=HELLO)

    request = recorder.requests[0]
    assert str(request.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert "authorization" not in request.headers
    assert (api.vertexai, api.genai_provider_name) == (False, "gcp.gemini")
    assert api.server_address() == ("generativelanguage.googleapis.com", 443)
    assert VertexAI_API.default_api_url == GEMINI_API_URL
    assert VertexAI_API.provider_key == "VERTEXAI"


VERTEX_PATH = (
    "/v1/projects/my-proj/locations/{location}/publishers/google/models/gemini-2.5-flash:generateContent"
)


@pytest.mark.parametrize(
    "location, expected_url",
    [
        (
            "us-central1",
            "https://us-central1-aiplatform.googleapis.com" + VERTEX_PATH.format(location="us-central1"),
        ),
        ("global", "https://aiplatform.googleapis.com" + VERTEX_PATH.format(location="global")),
    ],
)
async def test_vertex_project_and_location(location: str, expected_url: str) -> None:
    recorder = Recorder(
        encoded(response([{"text": "ok"}], {"promptTokenCount": 1, "candidatesTokenCount": 1}))
    )
    # The registry fills in the Gemini default URL; a project still selects Vertex.
    api = make_api(recorder, api_url=GEMINI_API_URL, project="my-proj", location=location)
    await api.process_request(model=MODEL, chat_history=HELLO)

    request = recorder.requests[0]
    assert str(request.url) == expected_url
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in request.headers
    assert (api.vertexai, api.genai_provider_name) == (True, "gcp.vertex_ai")
    assert api.server_address() == (httpx.URL(expected_url).host, 443)


async def test_vertex_project_and_location_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VERTEXAI_PROJECT_ENV, "env-proj")
    monkeypatch.setenv(VERTEXAI_LOCATION_ENV, "europe-west4")
    api = VertexAI_API(ProviderSettings(api_key=KEY))
    assert api.api_url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/env-proj/locations/europe-west4"
        "/publishers/google/models/{model}:generateContent"
    )
    assert api.genai_provider_name == "gcp.vertex_ai"
    assert VertexAI_API(ProviderSettings(api_key=KEY), project="arg-proj").project == "arg-proj"


async def test_configured_url_is_honoured_with_model_substituted() -> None:
    recorder = Recorder(
        encoded(response([{"text": "ok"}], {"promptTokenCount": 1, "candidatesTokenCount": 1}))
    )
    api = make_api(
        recorder,
        api_url="http://127.0.0.1:8123/p/{project}/l/{location}/m/{model}:generateContent",
        project="x",
    )
    await api.process_request(model="models/gemini-2.0-flash", chat_history=HELLO)

    assert (
        str(recorder.requests[0].url)
        == "http://127.0.0.1:8123/p/x/l/global/m/gemini-2.0-flash:generateContent"
    )
    assert api.server_address() == ("127.0.0.1", 8123)
    assert "127.0.0.1:8123" in repr(api)


async def test_preview_is_exactly_what_is_sent() -> None:
    recorder = Recorder(
        encoded(response([{"text": "ok"}], {"promptTokenCount": 1, "candidatesTokenCount": 1}))
    )
    api = make_api(recorder)
    arguments: dict[str, Any] = {
        "system_prompt": "Be concise.",
        "model": MODEL,
        "metadata": {"MAX_TOKENS": 300, "REASONING_BUDGET_TOKENS": 512, "LLM_TOOLS_SCOPE": "ALL"},
        "available_tools": [get_weather, get_time],
        "chat_history": [ChatHistoryItem.user("Weather in Paris?")],
        "temperature": 0.2,
    }
    preview = api.preview_request(**arguments)
    await api.process_request(**arguments)

    assert recorder.sent == preview
    assert preview["systemInstruction"] == {"parts": [{"text": "Be concise."}]}
    assert preview["contents"] == [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]
    assert preview["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 300,
        "thinkingConfig": {"thinkingBudget": 512, "includeThoughts": False},
    }
    declarations = preview["tools"][0]["functionDeclarations"]
    assert declarations[0] == {
        "name": "get_weather",
        "description": "Current weather.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City and country."},
                "unit": {"type": "string", "description": "celsius or fahrenheit."},
            },
            "required": ["location"],
        },
    }
    assert declarations[1] == {"name": "get_time", "description": "Current time."}  # no empty OBJECT schema


def test_reasoning_defaults_to_a_dynamic_budget_and_is_absent_when_off() -> None:
    api = VertexAI_API(ProviderSettings(api_key=KEY))
    on = api.preview_request(model=MODEL, chat_history=HELLO, enable_reasoning=True)
    assert on["generationConfig"]["thinkingConfig"] == {"thinkingBudget": -1, "includeThoughts": False}
    effort = api.preview_request(model=MODEL, chat_history=HELLO, metadata={"REASONING_EFFORT": "low"})
    assert effort["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 1024
    assert "generationConfig" not in api.preview_request(model=MODEL, chat_history=HELLO)


TOOL_ANSWER = response(
    [
        {"text": "Checking.", "thoughtSignature": "c2lnLXRleHQ="},
        {
            "functionCall": {"id": "fc-1", "name": "get_weather", "args": {"location": "Paris"}},
            "thoughtSignature": "c2lnLTE=",
        },
        {"functionCall": {"name": "get_time"}},
    ],
    {"promptTokenCount": 30, "candidatesTokenCount": 20, "thoughtsTokenCount": 10},
)


async def test_tool_calls_round_trip_through_history() -> None:
    recorder = Recorder(encoded(TOOL_ANSWER))
    api = make_api(recorder)
    first = [ChatHistoryItem.user("Weather and time in Paris?")]
    result = await api.process_request(
        model=MODEL, chat_history=first, available_tools=[get_weather, get_time]
    )

    calls = result.call_requests
    assert calls is not None and [(c.id, c.name, c.args, c.kwargs) for c in calls] == [
        ("fc-1", "get_weather", [], {"location": "Paris"}),
        ("call_1", "get_time", [], {}),
    ]
    assert result.text == "Checking."
    assert calls[0] == ToolCall("fc-1", "x")

    history = [
        *first,
        ChatHistoryItem.assistant(result.text, calls),
        ChatHistoryItem.tool_result(calls[0], {"temp": 21}),
        ChatHistoryItem(role="tool", content="noon", tool_call_id="call_1"),  # name found from the call
        ChatHistoryItem.user("Thanks!"),
    ]
    contents = api.preview_request(model=MODEL, chat_history=history)["contents"]
    assert contents == [
        {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {
                    "functionCall": {"name": "get_weather", "args": {"location": "Paris"}, "id": "fc-1"},
                    "thoughtSignature": "c2lnLTE=",
                },
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"output": {"temp": 21}},
                        "id": "fc-1",
                    }
                },
                {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}},
                {"text": "Thanks!"},
            ],
        },
    ]

    # Vertex does not take call ids; the signature still goes back.
    vertex = VertexAI_API(ProviderSettings(api_key=KEY), project="p")
    vertex_contents = vertex.preview_request(model=MODEL, chat_history=history)["contents"]
    assert vertex_contents[1]["parts"][1] == {
        "functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
        "thoughtSignature": "c2lnLTE=",
    }
    assert "id" not in vertex_contents[2]["parts"][0]["functionResponse"]


def test_a_tool_result_without_a_known_name_is_a_configuration_error() -> None:
    api = VertexAI_API(ProviderSettings(api_key=KEY))
    history = [ChatHistoryItem.user("Hi"), ChatHistoryItem(role="tool", content="1", tool_call_id="unknown")]
    with pytest.raises(ConfigurationError, match="tool name"):
        api.preview_request(model=MODEL, chat_history=history)


def test_plain_style_renders_tools_as_text() -> None:
    api = VertexAI_API(ProviderSettings(api_key=KEY))
    call = ToolCall("c1", "get_weather", kwargs={"location": "Rome"})
    history = [
        ChatHistoryItem.user("Weather?"),
        ChatHistoryItem.assistant("", [call]),
        ChatHistoryItem.tool_result(call, "hot"),
    ]
    payload = api.preview_request(
        model=MODEL, chat_history=history, chat_style=ChatStyle.PLAIN, available_tools=[get_weather]
    )
    assert "tools" not in payload
    assert payload["contents"] == [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [{"text": '\n[called tool get_weather with {"location": "Rome"}]'}]},
        {"role": "user", "parts": [{"text": "[result of tool get_weather]\nhot"}]},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"functionCall": {"name": "get_weather", "args": '{"location": "Paris"}'}},
        {"functionCall": {"name": "get_weather", "args": ["Paris"]}},
        {"functionCall": {"args": {"location": "Paris"}}},
        {"functionCall": "get_weather"},
    ],
    ids=["args is a string", "args is a list", "no name", "not an object"],
)
async def test_malformed_tool_calls_raise_a_typed_error(part: dict[str, Any]) -> None:
    body = encoded(response([part], {"promptTokenCount": 5, "candidatesTokenCount": 7}))
    with pytest.raises(MalformedToolCallError) as caught:
        await make_api(Recorder(body)).process_request(model=MODEL, chat_history=HELLO)
    assert caught.value.provider == "VERTEXAI"
    assert caught.value.bytes_received == len(body)


@pytest.mark.parametrize("usage", [None, "n/a"], ids=["missing", "a string"])
async def test_an_answer_without_usage_keeps_its_text_and_is_no_usage(usage: Any) -> None:
    body = response([{"text": "hi"}], None)
    if usage is not None:
        body["usageMetadata"] = usage
    answer = await make_api(Recorder(encoded(body))).process_request(model=MODEL, chat_history=HELLO)
    assert answer.text == "hi"
    assert not answer.detail.has_usage and answer.detail.cost_status == "no_usage"
    assert answer.detail.priced_cost is None


async def test_an_answer_that_is_not_a_response_object_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="not a response object"):
        await make_api(Recorder(b'"hi"')).process_request(model=MODEL, chat_history=HELLO)


def sse(*chunks: dict[str, Any]) -> bytes:
    return "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode()


async def test_streaming_takes_the_last_cumulative_usage() -> None:
    def chunk(
        parts: list[dict[str, Any]], usage: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash-001"}

    final_usage = USAGE_CASES["thoughts and tool-use prompt outside the headline counts"][0]
    body = sse(
        chunk(
            [{"text": "Thinking about it", "thought": True}],
            {"promptTokenCount": 12, "thoughtsTokenCount": 89},
        ),
        chunk(
            [{"text": "It is "}],
            {"promptTokenCount": 12, "candidatesTokenCount": 5, "thoughtsTokenCount": 89},
        ),
        chunk(
            [{"text": "sunny."}, {"functionCall": {"name": "get_time", "args": {}}}],
            final_usage,
            finish="STOP",
        ),
    )
    recorder = Recorder(body, content_type="text/event-stream")
    api = make_api(recorder, stream=True)
    result = await api.process_request(model=MODEL, chat_history=HELLO, available_tools=[get_time])

    request = recorder.requests[0]
    assert (
        str(request.url) == "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert recorder.sent == api.preview_request(model=MODEL, chat_history=HELLO, available_tools=[get_time])
    assert result.text == "It is sunny."
    assert result.call_requests is not None and [c.name for c in result.call_requests] == ["get_time"]
    stats = result.detail
    # Summing chunks would give input 101 / output 354: usageMetadata is cumulative, the last one counts.
    assert (stats.input_tokens, stats.output_tokens, stats.cached_tokens, stats.reasoning_tokens) == (
        77,
        160,
        4,
        89,
    )
    assert (stats.finish_reason, stats.response_model) == ("STOP", "gemini-2.5-flash-001")
    assert stats.total_bytes_received == len(body)
    assert stats.total_bytes_sent == len(request.content)


async def test_an_error_chunk_inside_a_stream_is_a_provider_error() -> None:
    body = sse({"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}})
    with pytest.raises(ProviderError, match="UNAVAILABLE"):
        await make_api(Recorder(body), stream=True).process_request(model=MODEL, chat_history=HELLO)


class Address(BaseModel):
    street: str
    city: str | None = None


def ship(address: Address, express: bool | None = None, note: str = "none") -> str:
    """Ship a parcel."""
    return "ok"


def test_schemas_are_cut_down_to_gemini_subset() -> None:
    schema = gemini_schema(tool_spec(ship).parameters)
    assert schema == {
        "type": "object",
        "properties": {
            "address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"nullable": True, "type": "string"}},
                "required": ["street"],
            },
            "express": {"nullable": True, "type": "boolean"},
            "note": {"type": "string"},
        },
        "required": ["address"],
    }
    assert gemini_schema({"type": ["string", "null"], "const": "x", "additionalProperties": False}) == {
        "nullable": True,
        "type": "string",
        "enum": ["x"],
    }
    recursive = {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    with pytest.raises(ConfigurationError, match="recursive"):
        gemini_schema(recursive)


def test_response_format_file_becomes_response_schema(tmp_path: Any) -> None:
    schema = {
        "type": "object",
        "title": "Answer",
        "properties": {"city": {"type": "string", "title": "City"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    path = tmp_path / "answer.json"
    path.write_text(json.dumps({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}))
    api = VertexAI_API(ProviderSettings(api_key=KEY, response_format_file=str(path)))
    config = api.preview_request(model=MODEL, chat_history=HELLO)["generationConfig"]
    assert config == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }


async def test_the_key_never_appears_in_reprs_or_errors() -> None:
    recorder = Recorder(
        b'{"error":{"code":403,"message":"API key not valid.","status":"PERMISSION_DENIED"}}', status=403
    )
    api = make_api(recorder)
    with pytest.raises(AuthenticationError) as caught:
        await api.process_request(model=MODEL, chat_history=HELLO)
    error = caught.value
    for text in (repr(api), repr(api.settings), str(error), repr(error), repr(error.headers), error.body):
        assert KEY not in text

    keyless = VertexAI_API(ProviderSettings(api_url=LOCAL_URL), http_client=Recorder().client())
    with pytest.raises(ConfigurationError, match="VERTEXAI_API_KEY"):
        await keyless.process_request(model=MODEL, chat_history=HELLO)


async def test_vertex_without_a_project_constructs_and_names_the_variable_before_sending() -> None:
    for settings, kwargs in (
        (ProviderSettings(api_key=KEY), {"vertexai": True}),
        (ProviderSettings(api_key=KEY, api_url="https://europe-west4-aiplatform.googleapis.com/v1"), {}),
    ):
        recorder = Recorder()
        api = VertexAI_API(settings, http_client=recorder.client(), **kwargs)  # as the original: no error yet
        with pytest.raises(ConfigurationError, match=VERTEXAI_PROJECT_ENV):
            await api.process_request(model=MODEL, chat_history=HELLO)
        assert recorder.requests == []


def test_parsed_calls_stay_plain_tool_calls() -> None:
    call = GeminiToolCall("call_0", "f", thought_signature="c2ln")
    assert isinstance(call, ToolCall) and call == ToolCall("call_0", "g") and hash(call) == hash("call_0")
