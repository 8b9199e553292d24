"""The official ``openai`` SDK, metered through ``statek.http_client()``: chat completions, the
Responses API and embeddings, sync and async, streamed and not, against the loopback simulator.

Each test checks the span, the counters, the exact cost and the job's usage, and that the SDK returns
exactly what it returns without metering (the simulator is reset in between, so ids repeat).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI, OpenAI
from test_sdk_support import CALL, TEXT, Env, cost, sdk_fixture  # noqa: F401 - fixture

import statek
from statek import Job

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def clients(sdk: Env, is_async: bool) -> tuple[Any, Any]:
    """(plain, metered) clients of the same kind against the simulator."""
    base = sdk.sim.base_url + "/v1"
    if is_async:
        plain = AsyncOpenAI(base_url=base, api_key="test-key", http_client=httpx2.AsyncClient())
        metered = AsyncOpenAI(
            base_url=base, api_key="test-key", http_client=statek.async_http_client(provider="OPENAI")
        )
    else:
        plain = OpenAI(base_url=base, api_key="test-key", http_client=httpx2.Client())
        metered = OpenAI(base_url=base, api_key="test-key", http_client=statek.http_client(provider="OPENAI"))
    return plain, metered


def run(is_async: bool, call: Callable[[Any], Any], client: Any) -> Any:
    """Make the call (and read a stream to its end); return the comparable result."""

    def dump(value: Any) -> Any:
        return value.model_dump() if hasattr(value, "model_dump") else value

    if not is_async:
        result = call(client)
        return (
            [dump(c) for c in result]
            if hasattr(result, "__iter__") and not hasattr(result, "model_dump")
            else dump(result)
        )

    async def go() -> Any:
        result = await call(client)
        if hasattr(result, "__aiter__"):
            return [dump(c) async for c in result]
        return dump(result)

    return asyncio.run(go())


def same_answer_metered(sdk: Env, is_async: bool, call: Callable[[Any], Any]) -> tuple[Any, Job]:
    """Call unmetered, then metered inside a job; assert the SDK's results are identical."""
    plain, metered = clients(sdk, is_async)
    expected = run(is_async, call, plain)
    assert sdk.captured.finished() == []  # the plain client is not metered
    sdk.sim.engine.reset()
    with Job("sdk-test") as job:
        got = run(is_async, call, metered)
    assert got == expected
    return got, job


def check_chat(sdk: Env, job: Job, model: str, *, stream: bool, finish: str, output_tokens: int = 30) -> None:
    span = sdk.span(f"chat {model}")
    attributes = dict(span.attributes)
    expected_cost = cost(1200, output_tokens, 1024)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == model
    assert attributes["gen_ai.response.model"] == model
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == output_tokens
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attributes["gen_ai.response.finish_reasons"] == (finish,)
    assert attributes["statek.cost.status"] == "calculated"
    assert attributes["statek.cost.usd"] == float(expected_cost)
    assert attributes["statek.job.id"] == "sdk-test"
    record = sdk.sim.requests[-1]
    assert attributes["statek.bytes.sent"] == record.body_bytes
    assert attributes["statek.bytes.received"] == record.response_bytes
    assert ("statek.time_to_first_chunk_s" in attributes) is stream
    assert sdk.counter("statek.tokens", statek__token__type="input") == 1200
    assert sdk.counter("statek.tokens", statek__token__type="output") == output_tokens
    assert sdk.counter("statek.tokens", statek__token__type="cache_read") == 1024
    assert sdk.counter("statek.cost.usd", statek__cost__status="calculated") == pytest.approx(
        float(expected_cost)
    )
    assert sdk.counter("statek.requests", statek__outcome="success") == 1
    first_chunk = sdk.captured.values("gen_ai.client.operation.time_to_first_chunk")
    assert [count for count, _ in first_chunk.values()] == ([1] if stream else [])
    usage = job.usage
    assert (usage.calls, usage.total_input_tokens, usage.total_output_tokens) == (1, 1200, output_tokens)
    assert usage.total_cached_tokens == 1024
    assert usage.total_cost == expected_cost
    assert usage.by_model()[("OPENAI", model)].calls == 1


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_completion(sdk: Env, is_async: bool) -> None:
    result, job = same_answer_metered(
        sdk, is_async, lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    )
    assert result["choices"][0]["message"]["content"] == TEXT
    check_chat(sdk, job, "gpt-4o-mini", stream=False, finish="stop")


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_streamed_chat_completion_with_usage(sdk: Env, is_async: bool) -> None:
    chunks, job = same_answer_metered(
        sdk,
        is_async,
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ),
    )
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == TEXT
    check_chat(sdk, job, "gpt-4o-mini", stream=True, finish="stop")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_completion_with_a_tool_call(sdk: Env, is_async: bool, stream: bool) -> None:
    extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    result, job = same_answer_metered(
        sdk,
        is_async,
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini-tools", messages=MESSAGES, tools=TOOLS, **extra
        ),
    )
    assert result  # the SDK's own parse of the call is compared above
    check_chat(sdk, job, "gpt-4o-mini-tools", stream=stream, finish="tool_calls")


def test_a_stream_without_include_usage_is_recorded_as_not_metered_never_as_zero(sdk: Env) -> None:
    _, metered = clients(sdk, False)
    with Job("sdk-test") as job:
        chunks = list(metered.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert all(chunk.choices for chunk in chunks)  # the caller's stream is untouched: no usage chunk added
    attributes = dict(sdk.span("chat gpt-4o-mini").attributes)
    assert attributes["statek.cost.status"] == "no_usage"
    assert "statek.cost.usd" not in attributes
    assert attributes["statek.bytes.received"] == sdk.sim.requests[-1].response_bytes > 0
    assert sdk.counter("statek.requests", statek__cost__status="no_usage") == 1
    assert sdk.captured.values("statek.cost.usd") == {}
    assert (job.usage.calls, job.usage.no_usage_calls, job.usage.total_cost) == (1, 1, None)


def test_an_abandoned_stream_is_recorded_with_what_was_seen(sdk: Env) -> None:
    _, metered = clients(sdk, False)
    stream = metered.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    first = next(iter(stream))
    stream.close()
    assert first.choices[0].delta.role == "assistant"
    attributes = dict(sdk.span("chat gpt-4o-mini").attributes)
    assert attributes["statek.cost.status"] == "no_usage"
    assert 0 < attributes["statek.bytes.received"] <= sdk.sim.requests[-1].response_bytes


def check_responses(sdk: Env, job: Job, model: str, finish: str = "completed") -> None:
    attributes = dict(sdk.span(f"chat {model}").attributes)
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == 30
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 12
    assert attributes["gen_ai.response.finish_reasons"] == (finish,)
    assert attributes["statek.cost.usd"] == float(cost(1200, 30, 1024))
    assert job.usage.total_cost == cost(1200, 30, 1024)
    assert job.usage.total_reasoning_tokens == 12


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_responses_api(sdk: Env, is_async: bool, stream: bool) -> None:
    result, job = same_answer_metered(
        sdk,
        is_async,
        lambda c: c.responses.create(model="gpt-4o-mini", input="Weather in Paris?", stream=stream),
    )
    if not stream:
        assert result["output"][0]["content"][0]["text"] == TEXT
    check_responses(sdk, job, "gpt-4o-mini")


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_responses_api_tool_call(sdk: Env, is_async: bool) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    result, job = same_answer_metered(
        sdk, is_async, lambda c: c.responses.create(model="gpt-4o-mini-tools", input="Weather?", tools=tools)
    )
    assert [(i["type"], i["name"]) for i in result["output"]] == [("function_call", CALL[0])]
    check_responses(sdk, job, "gpt-4o-mini-tools")


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embeddings(sdk: Env, is_async: bool) -> None:
    result, job = same_answer_metered(
        sdk, is_async, lambda c: c.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    )
    assert len(result["data"]) == 2
    attributes = dict(sdk.span("embeddings text-embedding-3-small").attributes)
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.usage.input_tokens"] == 64
    assert attributes["gen_ai.usage.output_tokens"] == 0
    assert attributes["statek.cost.usd"] == float(cost(64, 0))
    assert (
        sdk.counter(
            "statek.tokens", statek__token__type="input", gen_ai__request__model="text-embedding-3-small"
        )
        == 64
    )
    durations = sdk.captured.values("gen_ai.client.operation.duration")
    assert [dict(k)["gen_ai.operation.name"] for k in durations] == ["embeddings"]
    assert job.usage.total_cost == cost(64, 0)


def test_http_errors_are_recorded_as_failed_calls_and_reach_the_caller(sdk: Env) -> None:
    from openai import NotFoundError

    _, metered = clients(sdk, False)
    with Job("sdk-test") as job, pytest.raises(NotFoundError):
        metered.with_options(max_retries=0).chat.completions.create(model="no-such-model", messages=MESSAGES)
    attributes = dict(sdk.span("chat no-such-model").attributes)
    assert attributes["error.type"] == "404"
    assert sdk.counter("statek.requests", statek__outcome="error") == 1
    assert job.usage.failed_calls == 1
