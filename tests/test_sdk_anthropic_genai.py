"""The official ``anthropic`` and ``google-genai`` SDKs, metered through statek's client, against the
loopback simulator: sync and async, streamed and not, tool calls, Gemini embeddings. Same checks as
the OpenAI tests: span, counters, exact cost, job usage, and identical SDK results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from anthropic import Anthropic, AsyncAnthropic
from google import genai
from google.genai import types
from test_sdk_support import CALL, TEXT, Env, cost, sdk_fixture  # noqa: F401 - fixture

import statek
from statek import Job

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
CLAUDE_TOOLS = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
]


def compare(sdk: Env, plain: Callable[[], Any], metered: Callable[[], Any]) -> Job:
    expected = plain()
    assert sdk.captured.finished() == []
    sdk.sim.engine.reset()
    with Job("sdk-test") as job:
        got = metered()
    assert got == expected
    return job


def check(sdk: Env, job: Job, span_name: str, provider: str, finish: str, *, stream: bool) -> None:
    attributes = dict(sdk.span(span_name).attributes)
    assert attributes["gen_ai.provider.name"] == provider
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == 30
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attributes["gen_ai.response.finish_reasons"] == (finish,)
    assert attributes["statek.cost.usd"] == float(cost(1200, 30, 1024))
    assert attributes["statek.bytes.received"] == sdk.sim.requests[-1].response_bytes
    assert ("statek.time_to_first_chunk_s" in attributes) is stream
    assert job.usage.total_cost == cost(1200, 30, 1024)
    assert (job.usage.total_input_tokens, job.usage.total_output_tokens) == (1200, 30)


# ----------------------------------------------------------------------------- anthropic
def anthropic_pair(sdk: Env, is_async: bool) -> tuple[Any, Any]:
    if is_async:
        return (
            AsyncAnthropic(base_url=sdk.sim.base_url, api_key="k", http_client=httpx2.AsyncClient()),
            AsyncAnthropic(
                base_url=sdk.sim.base_url,
                api_key="k",
                http_client=statek.async_http_client(provider="ANTHROPIC"),
            ),
        )
    return (
        Anthropic(base_url=sdk.sim.base_url, api_key="k", http_client=httpx2.Client()),
        Anthropic(
            base_url=sdk.sim.base_url, api_key="k", http_client=statek.http_client(provider="ANTHROPIC")
        ),
    )


def claude_call(client: Any, model: str, stream: bool, is_async: bool) -> Any:
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 200, "messages": MESSAGES, "tools": CLAUDE_TOOLS}
    if not is_async:
        if stream:
            with client.messages.stream(**kwargs) as events:
                return [e.model_dump() for e in events]
        return client.messages.create(**kwargs).model_dump()

    async def go() -> Any:
        if stream:
            async with client.messages.stream(**kwargs) as events:
                return [e.model_dump() async for e in events]
        return (await client.messages.create(**kwargs)).model_dump()

    return asyncio.run(go())


@pytest.mark.parametrize("model", ["claude-sim", "claude-sim-tools"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_anthropic_messages(sdk: Env, is_async: bool, stream: bool, model: str) -> None:
    plain, metered = anthropic_pair(sdk, is_async)
    job = compare(
        sdk,
        lambda: claude_call(plain, model, stream, is_async),
        lambda: claude_call(metered, model, stream, is_async),
    )
    finish = "tool_use" if model.endswith("tools") else "end_turn"
    check(sdk, job, f"chat {model}", "anthropic", finish, stream=stream)
    assert job.usage.by_model()[("ANTHROPIC", model)].calls == 1


# ----------------------------------------------------------------------------- google-genai
def gemini_pair(sdk: Env, is_async: bool) -> tuple[genai.Client, genai.Client]:
    def client(http: Any) -> genai.Client:
        options = {"httpx_async_client" if is_async else "httpx_client": http}
        return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sdk.sim.base_url, **options))

    if is_async:
        return client(httpx2.AsyncClient()), client(statek.async_http_client(provider="GEMINI"))
    return client(httpx2.Client()), client(statek.http_client(provider="GEMINI"))


def gemini_call(client: genai.Client, model: str, stream: bool, is_async: bool) -> Any:
    if not is_async:
        if stream:
            return [
                c.model_dump(exclude={"sdk_http_response"})
                for c in client.models.generate_content_stream(model=model, contents="Weather?")
            ]
        return client.models.generate_content(model=model, contents="Weather?").model_dump(
            exclude={"sdk_http_response"}
        )

    async def go() -> Any:
        if stream:
            chunks = await client.aio.models.generate_content_stream(model=model, contents="Weather?")
            return [c.model_dump(exclude={"sdk_http_response"}) async for c in chunks]
        answer = await client.aio.models.generate_content(model=model, contents="Weather?")
        return answer.model_dump(exclude={"sdk_http_response"})

    return asyncio.run(go())


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-2.5-flash-tools"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_gemini_generate_content(sdk: Env, is_async: bool, stream: bool, model: str) -> None:
    plain, metered = gemini_pair(sdk, is_async)
    job = compare(
        sdk,
        lambda: gemini_call(plain, model, stream, is_async),
        lambda: gemini_call(metered, model, stream, is_async),
    )
    check(sdk, job, f"generate_content {model}", "gcp.gemini", "STOP", stream=stream)
    assert job.usage.total_reasoning_tokens == 12
    assert job.usage.by_model()[("VERTEXAI", model)].calls == 1


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_gemini_embeddings(sdk: Env, is_async: bool) -> None:
    plain, metered = gemini_pair(sdk, is_async)

    def embed(client: genai.Client) -> Any:
        if is_async:
            answer = asyncio.run(
                client.aio.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
            )
        else:
            answer = client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
        return answer.model_dump(exclude={"sdk_http_response"})

    job = compare(sdk, lambda: embed(plain), lambda: embed(metered))
    attributes = dict(sdk.span("embeddings gemini-embedding-001").attributes)
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.usage.input_tokens"] == 48
    assert attributes["statek.cost.usd"] == float(cost(48, 0))
    assert job.usage.total_cost == cost(48, 0)


def test_text_and_tool_call_of_one_answer_are_what_the_sdk_saw(sdk: Env) -> None:
    _, metered = anthropic_pair(sdk, False)
    message = metered.messages.create(model="claude-sim-tools", max_tokens=100, messages=MESSAGES)
    assert [(b.type, b.name, b.input) for b in message.content] == [("tool_use", CALL[0], CALL[1])]
    assert message.usage.input_tokens == 1200 - 1024  # Anthropic's own meaning; statek's span says 1200
    assert dict(sdk.span("chat claude-sim-tools").attributes)["gen_ai.usage.input_tokens"] == 1200
    assert TEXT  # the text model is covered above
