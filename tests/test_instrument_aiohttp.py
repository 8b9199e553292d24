"""aiohttp, metered after ``statek.instrument_clients()``: a plain aiohttp POST to an OpenAI-compatible
or Anthropic server (the loopback simulator, an unknown host) with exact tokens and cost; streams
read every way aiohttp offers, byte for byte unchanged and metered; failures; sessions made before
are left alone with a warning; an httpx transport built on aiohttp (LiteLLM's) is counted once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from test_sdk_support import TEXT, Env, cost, sdk_fixture  # noqa: F401 - fixture

import statek
from statek import Job

aiohttp = pytest.importorskip("aiohttp")

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(autouse=True)
def _undo() -> Iterator[None]:
    yield
    statek.uninstrument_clients()


async def post(url: str, body: dict[str, Any], *, stream: bool = False) -> Any:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        if stream:
            return [line async for line in response.content]
        return await response.json()


def test_an_aiohttp_post_is_metered_after_instrument_clients(sdk: Env) -> None:
    assert "aiohttp" in statek.instrument_clients()
    with Job("j") as job:
        answer = asyncio.run(post(sdk.sim.openai_url, {"model": "gpt-4o-mini", "messages": MESSAGES}))
    assert answer["choices"][0]["message"]["content"] == TEXT
    span = sdk.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.provider.name"] == "openai_compatible"
    assert span.attributes["gen_ai.usage.input_tokens"] == 1200
    assert span.attributes["gen_ai.usage.output_tokens"] == 30
    assert span.attributes["statek.cost.usd"] == float(cost(1200, 30, 1024))
    assert job.usage.total_cost == cost(1200, 30, 1024)


def test_an_aiohttp_anthropic_call_is_metered(sdk: Env) -> None:
    statek.instrument_clients(endpoints={sdk.sim.base_url: "ANTHROPIC"})
    with Job("j") as job:
        asyncio.run(
            post(sdk.sim.anthropic_url, {"model": "claude-sim", "max_tokens": 64, "messages": MESSAGES})
        )
    span = sdk.span("chat claude-sim")
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert job.usage.total_input_tokens == 1200
    assert job.usage.total_cost == cost(1200, 30, 1024)


@pytest.mark.parametrize("how", ["lines", "iter_any", "iter_chunked"])
def test_an_aiohttp_stream_passes_through_unchanged_and_is_metered(sdk: Env, how: str) -> None:
    async def read() -> bytes:
        async with (
            aiohttp.ClientSession() as session,
            session.post(sdk.sim.openai_url, json=body) as response,
        ):
            if how == "lines":
                return b"".join([line async for line in response.content])
            if how == "iter_any":
                return b"".join([chunk async for chunk in response.content.iter_any()])
            return b"".join([chunk async for chunk in response.content.iter_chunked(7)])

    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    plain = asyncio.run(read())
    sdk.sim.engine.reset()
    statek.instrument_clients()
    with Job("j") as job:
        metered = asyncio.run(read())
    assert metered == plain  # byte for byte
    span = sdk.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.usage.input_tokens"] == 1200
    assert span.attributes["gen_ai.usage.output_tokens"] == 30
    assert span.attributes["statek.bytes.received"] == len(metered)
    assert "statek.time_to_first_chunk_s" in span.attributes
    assert job.usage.total_cost == cost(1200, 30, 1024)


def test_an_aiohttp_stream_without_usage_is_no_usage(sdk: Env) -> None:
    statek.instrument_clients()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    with Job("j") as job:
        asyncio.run(post(sdk.sim.openai_url, body, stream=True))
    assert sdk.span("chat gpt-4o-mini").attributes["statek.cost.status"] == "no_usage"
    assert job.usage.no_usage_calls == 1


def test_an_aiohttp_call_that_gets_no_answer_is_a_failed_call(sdk: Env) -> None:
    statek.instrument_clients(endpoints={"http://127.0.0.1:9": "OPENAI"})  # nothing listens on port 9
    with Job("j") as job, pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(
            post("http://127.0.0.1:9/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES})
        )
    span = sdk.span("chat unknown")  # the body never left: the model is not known
    assert span.attributes["error.type"].endswith("Error")
    assert job.usage.failed_calls == 1


def test_a_session_created_before_is_not_reached_and_a_warning_says_so(
    sdk: Env, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as before:
            with caplog.at_level(logging.WARNING, logger="statek.instrumentation"):
                statek.instrument_clients()
            async with before.post(
                sdk.sim.openai_url, json={"model": "gpt-4o-mini", "messages": MESSAGES}
            ) as r:
                await r.json()

    asyncio.run(scenario())
    assert sdk.captured.finished() == []
    assert any("aiohttp session" in record.getMessage() for record in caplog.records)


def test_an_httpx_transport_built_on_aiohttp_is_counted_once(sdk: Env) -> None:
    import httpx

    class AiohttpTransport(httpx.AsyncBaseTransport):
        """What LiteLLM's aiohttp transport is: an httpx transport sending through aiohttp."""

        def __init__(self, session: Any) -> None:
            self.session = session

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            async with self.session.request(
                request.method, str(request.url), data=request.content, headers=dict(request.headers)
            ) as response:
                return httpx.Response(
                    response.status, headers=dict(response.headers), content=await response.read()
                )

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = httpx.AsyncClient(transport=AiohttpTransport(session))
            await client.post(sdk.sim.openai_url, json={"model": "gpt-4o-mini", "messages": MESSAGES})

    statek.instrument_clients()
    with Job("j") as job:
        asyncio.run(scenario())
    assert len(sdk.captured.finished()) == 1
    assert job.usage.calls == 1


def test_aiohttp_calls_count_against_their_jobs_budget(sdk: Env) -> None:
    from statek import Budget

    statek.instrument_clients()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    one_call = cost(1200, 30, 1024)
    with Job("j", budget=Budget(usd=one_call * 100)) as job:
        asyncio.run(post(sdk.sim.openai_url, body))
        asyncio.run(post(sdk.sim.openai_url, body))
    status = job.usage.budget.status()  # type: ignore[union-attr]
    assert (status.spent_usd, status.spent_calls) == (2 * one_call, 2)  # settled with the real usage
    assert (status.reserved_usd, status.reserved_calls) == (0, 0)
