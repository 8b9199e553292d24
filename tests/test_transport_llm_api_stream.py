"""``LLM_API.stream_request``: text as it is generated, then the same response and metering as
``process_request``, for the three wire formats, against the loopback simulator."""

from __future__ import annotations

import pytest
from test_sdk_support import TEXT, Env, cost, sdk_fixture  # noqa: F401 - fixture

from statek import LLM_API, ChatHistoryItem, Job, OpenAI_API
from statek._http import RetryPolicy
from statek.exceptions import RateLimitError
from statek.settings import ProviderSettings
from statek.testing import Failure, ModelBehavior

HISTORY = [ChatHistoryItem.user("What is the weather in Paris?")]


def api_for(sdk: Env, provider: str) -> LLM_API:
    urls = {
        "OPENAI": sdk.sim.base_url + "/v1/chat/completions",
        "ANTHROPIC": sdk.sim.base_url + "/v1/messages",
        "VERTEXAI": sdk.sim.base_url + "/v1beta/models/{model}:generateContent",
    }
    return LLM_API.get(provider, api_key="test-key", api_url=urls[provider])


@pytest.mark.parametrize(
    ("provider", "model", "genai"),
    [
        ("OPENAI", "gpt-4o-mini", "openai"),
        ("ANTHROPIC", "claude-sim", "anthropic"),
        ("VERTEXAI", "gemini-2.5-flash", "gcp.gemini"),
    ],
)
async def test_stream_request_yields_text_then_the_same_response_as_process_request(
    sdk: Env, provider: str, model: str, genai: str
) -> None:
    api = api_for(sdk, provider)
    whole = await api.process_request(model=model, chat_history=HISTORY)
    sdk.captured.spans.clear()
    with Job("streamed") as job:
        stream = api.stream_request(model=model, chat_history=HISTORY)
        pieces = [piece async for piece in stream]
    assert len(pieces) > 1 and "".join(pieces) == TEXT == whole.text
    response = stream.response
    assert response.stats[3:] == whole.stats[3:]  # tokens (bytes differ: a stream is longer)
    assert response.detail.priced_cost == whole.detail.priced_cost == cost(1200, 30, 1024)
    assert sdk.sim.requests[-1].stream
    operation = "generate_content" if genai == "gcp.gemini" else "chat"  # the GenAI convention's names
    span = sdk.span(f"{operation} {model}")
    assert span.attributes["gen_ai.provider.name"] == genai
    assert span.attributes["statek.time_to_first_chunk_s"] > 0
    assert [e.name for e in span.events] == ["statek.first_chunk"]
    first_chunk = sdk.captured.values("gen_ai.client.operation.time_to_first_chunk")
    assert [count for count, _ in first_chunk.values()] == [1]
    assert job.usage.total_cost == cost(1200, 30, 1024)


async def test_stream_request_with_tool_calls(sdk: Env) -> None:
    api = api_for(sdk, "ANTHROPIC")
    stream = api.stream_request(model="claude-sim-tools", chat_history=HISTORY)
    assert [piece async for piece in stream] == []
    calls = stream.response.call_requests
    assert calls is not None and [(c.name, c.kwargs) for c in calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"})
    ]


async def test_a_retryable_status_before_the_stream_starts_is_retried(sdk: Env) -> None:
    sdk.sim.engine.set_behavior(
        "flaky", ModelBehavior(text=TEXT, failures=[Failure.rate_limit(first=1, retry_after=0)])
    )
    api = api_for(sdk, "OPENAI")
    stream = api.stream_request(model="flaky", chat_history=HISTORY)
    assert "".join([p async for p in stream]) == TEXT
    assert [r.status for r in sdk.sim.requests] == [429, 200]
    assert sdk.span("chat flaky").attributes["statek.retry.count"] == 1


async def test_a_final_error_is_raised_from_the_iteration_and_recorded(sdk: Env) -> None:
    sdk.sim.engine.set_behavior("limited", ModelBehavior(failures=[Failure.rate_limit(retry_after=0)]))
    settings = ProviderSettings(api_key="k", api_url=sdk.sim.base_url + "/v1/chat/completions")
    api = OpenAI_API(settings, retry=RetryPolicy(max_attempts=1))
    stream = api.stream_request(model="limited", chat_history=HISTORY)
    with pytest.raises(RateLimitError):
        async for _ in stream:
            pass
    assert sdk.span("chat limited").attributes["error.type"] == "429"
    with pytest.raises(RuntimeError, match="not ended"):
        _ = stream.response
