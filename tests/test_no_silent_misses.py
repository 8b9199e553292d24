"""No silent misses: an LLM call is metered by what it is, whatever the host and however late the
instrumentation started; what cannot be metered is counted and logged.

The official SDKs run as users write them against the loopback simulator, which listens on
127.0.0.1 at a port no table names: an unknown host.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from anthropic import Anthropic
from google import genai
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI, OpenAI
from test_sdk_support import TEXT, Env, cost, sdk_fixture  # noqa: F401 - fixture
from test_telemetry_support import Captured, captured_fixture, prices_fixture  # noqa: F401 - fixtures

import statek
from statek import Job
from statek.instrumentation import MeteringTransport
from statek.instrumentation.unmetered import reset_unmetered_log
from statek.wire.requests import recognise

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
}


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    reset_unmetered_log()
    yield
    statek.uninstrument_httpx()


def chat_span(sdk: Env) -> dict[str, Any]:
    return dict(sdk.span("chat gpt-4o-mini").attributes)


def assert_exact_chat(sdk: Env, job: Job, provider: str, key: str) -> None:
    """The simulator's gpt-4o-mini usage, priced at the test's OpenAI prices, in span and job."""
    attributes = chat_span(sdk)
    assert attributes["gen_ai.provider.name"] == provider
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == 30
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attributes["statek.cost.status"] == "calculated"
    assert attributes["statek.cost.usd"] == float(cost(1200, 30, 1024))
    assert job.usage.by_model()[(key, "gpt-4o-mini")].input_tokens == 1200
    assert job.usage.total_cost == cost(1200, 30, 1024)


# ----------------------------------------------------------------------------- any host
def test_an_sdk_at_an_unknown_host_by_base_url_is_metered_as_the_generic_provider(sdk: Env) -> None:
    client = OpenAI(base_url=sdk.sim.base_url + "/v1", api_key="k", http_client=statek.http_client())
    with Job("j") as job:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == TEXT
    # Unknown host, OpenAI wire format: the generic provider, priced as OpenAI's own model id.
    assert_exact_chat(sdk, job, "openai_compatible", "OPENAI_COMPATIBLE")


def test_an_sdk_at_an_unknown_host_by_its_environment_variable_is_that_provider(
    sdk: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", sdk.sim.base_url + "/v1")
    client = OpenAI(api_key="k", http_client=statek.http_client())
    with Job("j") as job:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert_exact_chat(sdk, job, "openai", "OPENAI")


def test_an_unknown_model_at_an_unknown_host_is_unpriced_never_dropped(captured: Any) -> None:
    answer = {**ANSWER, "model": "llama-3.1-8b"}
    client = httpx.Client(
        transport=MeteringTransport(httpx.MockTransport(lambda r: httpx.Response(200, json=answer)))
    )
    client.post("http://vllm.internal:8001/v1/chat/completions", json={**CHAT, "model": "llama-3.1-8b"})
    span = captured.finished("chat llama-3.1-8b")[0]
    assert span.attributes["gen_ai.usage.input_tokens"] == 11
    assert span.attributes["statek.cost.status"] == "unpriced"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions/",
        "/V1/CHAT/COMPLETIONS",
        "/v1/Chat/Completions//",
        "/openai/v1/chat/completions/",
    ],
)
def test_trailing_slashes_and_capitals_do_not_escape_metering(captured: Any, path: str) -> None:
    transport = MeteringTransport(
        httpx.MockTransport(lambda r: httpx.Response(200, json=ANSWER)), provider="OPENAI"
    )
    httpx.Client(transport=transport).post("https://gw.internal" + path, json=CHAT)
    span = captured.finished("chat gpt-4o-mini")[0]
    assert span.attributes["gen_ai.usage.input_tokens"] == 11


_LLM_PATHS = [
    ("/v1/chat/completions", "openai_chat"),
    ("/v1/responses", "openai_responses"),
    ("/v1/embeddings", "openai_embeddings"),
    ("/v1/messages", "anthropic"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
    ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini"),
    ("/v1beta/models/gemini-embedding-001:embedContent", "gemini_embeddings"),
]


@settings(deadline=None)  # a loaded machine
@given(
    st.sampled_from(_LLM_PATHS),
    st.lists(st.booleans(), min_size=60, max_size=60),
    st.integers(min_value=0, max_value=3),
    st.text(alphabet="abcxyz/-_", max_size=12),
)
def test_an_llm_path_is_recognised_in_any_case_with_any_trailing_slashes(
    case: tuple[str, str], upper: list[bool], slashes: int, prefix: str
) -> None:
    path, wire_format = case
    spelled = "".join(c.upper() if up else c for c, up in zip(path, upper))
    found = recognise("POST", "/" + prefix.strip("/") + spelled + "/" * slashes, b"{}")
    assert found is not None and found.format == wire_format
    if wire_format.startswith("gemini"):
        assert (
            found.model
            == "".join(c.upper() if up else c for c, up in zip(path, upper))
            .rpartition("/")[2]
            .partition(":")[0]
        )
        assert found.stream is path.endswith("streamGenerateContent")


@settings(deadline=None)  # a loaded machine
@given(st.text(max_size=40), st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_recognise_never_raises_on_any_path_or_body(path: str, body: bytes) -> None:
    found = recognise("POST", path, body)
    assert found is None or not found.shaped or found.model is not None


# ----------------------------------------------------------------------------- late instrumentation
def test_an_openai_client_created_before_instrument_httpx_is_metered_after_it(sdk: Env) -> None:
    client = OpenAI(base_url=sdk.sim.base_url + "/v1", api_key="k")

    def call() -> Any:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    call()
    assert sdk.captured.finished() == []  # not instrumented yet
    statek.instrument_httpx()
    with Job("j") as job:
        assert call().choices[0].message.content == TEXT
    assert_exact_chat(sdk, job, "openai_compatible", "OPENAI_COMPATIBLE")
    statek.uninstrument_httpx()
    call()
    assert len(sdk.captured.finished()) == 1  # undone: the class is as it was


def test_an_async_openai_client_created_before_instrument_httpx_is_metered_after_it(sdk: Env) -> None:
    async def scenario() -> Job:
        client = AsyncOpenAI(base_url=sdk.sim.base_url + "/v1", api_key="k")
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert sdk.captured.finished() == []
        statek.instrument_httpx()
        with Job("j") as job:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == TEXT
        return job

    job = asyncio.run(scenario())
    assert_exact_chat(sdk, job, "openai_compatible", "OPENAI_COMPATIBLE")
    assert "statek.time_to_first_chunk_s" in chat_span(sdk)


def test_an_anthropic_client_created_before_instrument_httpx_is_metered_after_it(sdk: Env) -> None:
    client = Anthropic(base_url=sdk.sim.base_url, api_key="k")
    statek.instrument_httpx()
    with Job("j") as job:
        client.messages.create(model="claude-sim", max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
    span = sdk.span("chat claude-sim")
    assert span.attributes["gen_ai.provider.name"] == "anthropic_compatible"
    assert span.attributes["gen_ai.usage.input_tokens"] == 1200
    assert span.attributes["gen_ai.usage.output_tokens"] == 30
    assert job.usage.total_input_tokens == 1200


def test_a_gemini_client_and_its_aio_twin_are_metered_by_the_readme_one_liner(sdk: Env) -> None:
    gemini = genai.Client(  # the README's line, with the simulator's address
        api_key="k",
        http_options={
            "base_url": sdk.sim.base_url,
            "httpx_client": statek.http_client(),
            "httpx_async_client": statek.async_http_client(),
        },
    )
    with Job("j") as job:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
        asyncio.run(gemini.aio.models.generate_content(model="gemini-2.5-flash", contents="hi"))
    spans = sdk.captured.finished("generate_content gemini-2.5-flash")
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in spans] == [1200, 1200]
    assert job.usage.calls == 2
    assert job.usage.total_cost == 2 * cost(1200, 30, 1024)


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_a_call_through_two_metering_transports_is_counted_once(captured: Any, module: Any) -> None:
    class Retrying(module.BaseTransport):  # type: ignore[misc,name-defined]
        """A transport of the user's own, around a metering transport."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def handle_request(self, request: Any) -> Any:
            return self.inner.handle_request(request)

    mock = module.MockTransport(lambda r: module.Response(200, json=ANSWER))
    sync, _ = statek.instrumentation.transport.transport_classes(module.__name__)
    statek.instrument_httpx()
    client = module.Client(transport=Retrying(sync(mock, provider="OPENAI")))
    client.post("https://api.openai.com/v1/chat/completions", json=CHAT)
    assert len(captured.finished()) == 1


def test_statek_own_client_under_instrumentation_is_counted_once(sdk: Env) -> None:
    statek.instrument_httpx()
    api = statek.LLM_API.get("OPENAI", api_key="k", api_url=sdk.sim.openai_url)
    asyncio.run(api.process_request(model="gpt-4o-mini", chat_history=[statek.ChatHistoryItem.user("hi")]))
    assert len(sdk.captured.finished()) == 1


# ----------------------------------------------------------------------------- counted, never silent
def unmetered(captured: Any) -> dict[tuple[str, str], int]:
    return {
        (dict(key)["server.address"], dict(key)["statek.unmetered.reason"]): value
        for key, value in captured.values("statek.unmetered_requests").items()
    }


def test_a_client_instrumentation_cannot_reach_is_counted_and_logged_once_per_host(
    captured: Any, caplog: pytest.LogCaptureFixture
) -> None:
    before = httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(200, json=ANSWER)))
    statek.instrument_httpx()
    with caplog.at_level(logging.WARNING, logger="statek.instrumentation"):
        for _ in range(3):
            before.post("https://api.openai.com/v1/chat/completions", json=CHAT)
        before.get("https://api.openai.com/v1/models")  # not an LLM call: not counted
    assert captured.finished() == []
    assert unmetered(captured) == {("api.openai.com", "not_reached"): 3}
    assert len([r for r in caplog.records if "api.openai.com" in r.getMessage()]) == 1


def test_an_unreadable_body_to_an_unknown_host_is_counted(captured: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield json.dumps(CHAT).encode()

    client = httpx.Client(
        transport=MeteringTransport(httpx.MockTransport(lambda r: httpx.Response(200, json=ANSWER)))
    )
    client.post("http://10.0.0.7:9000/v1/chat/completions", content=chunks())
    client.post("http://10.0.0.7:9000/v1/chat/completions", json={"model": "m", "prompt": "x"})
    client.post("http://10.0.0.7:9000/v1/messages", json={"text": "a chat app, not an LLM"})
    assert captured.finished() == []
    assert unmetered(captured) == {("10.0.0.7", "body_not_read"): 1, ("10.0.0.7", "unrecognised_body"): 1}


@settings(deadline=None, max_examples=10)
@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_concurrent_reached_and_unreached_calls_are_each_counted_once(reached: list[bool]) -> None:
    """Interleaved async requests of a client instrumentation reaches and one it cannot: every call of
    the first is metered, every call of the second counted as not reached, none mixed up."""
    captured = Captured()
    reset_unmetered_log()

    async def scenario() -> None:
        mock = httpx2.MockTransport(lambda r: httpx2.Response(200, json=ANSWER))
        unreached = httpx2.AsyncClient(transport=mock)
        statek.instrument_httpx(endpoints={"https://gw.internal": "OPENAI"})
        try:
            metered = httpx2.AsyncClient(transport=mock)  # created under instrumentation: wrapped
            url = "https://gw.internal/v1/chat/completions"
            await asyncio.gather(*((metered if r else unreached).post(url, json=CHAT) for r in reached))
        finally:
            statek.uninstrument_httpx()

    asyncio.run(scenario())
    assert len(captured.finished()) == sum(reached)
    assert unmetered(captured) == (
        {("gw.internal", "not_reached"): len(reached) - sum(reached)} if not all(reached) else {}
    )
