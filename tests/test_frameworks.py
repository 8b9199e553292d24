"""Frameworks as users write them, their clients made BEFORE ``statek.instrument_httpx()`` (the case
that used to drop them to 0 metered calls), against the loopback simulator at an unknown host: each
call metered with exact tokens and cost. One test per framework; each fails if metering stops.

LlamaIndex and instructor are not here: instructor's current release pins ``openai`` below the
version the SDK tests use, and LlamaIndex pulls a large tree; both reach the OpenAI SDK, which the
SDK tests cover.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_sdk_support import TEXT, Env, cost, sdk_fixture  # noqa: F401 - fixture

import statek
from statek import Job


@pytest.fixture(autouse=True)
def _undo() -> Iterator[None]:
    yield
    statek.uninstrument_httpx()


def check(sdk: Env, job: Job) -> None:
    span = sdk.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.usage.input_tokens"] == 1200
    assert span.attributes["gen_ai.usage.output_tokens"] == 30
    assert span.attributes["statek.cost.usd"] == float(cost(1200, 30, 1024))
    assert (job.usage.calls, job.usage.total_cost) == (1, cost(1200, 30, 1024))


def test_langchain_chat_openai(sdk: Env) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(model="gpt-4o-mini", base_url=sdk.sim.openai_base_url, api_key="k")
    statek.instrument_httpx()
    with Job("j") as job:
        assert llm.invoke("What is the weather in Paris?").content == TEXT
    check(sdk, job)


def test_pydantic_ai_agent(sdk: Env) -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(
        "gpt-4o-mini", provider=OpenAIProvider(base_url=sdk.sim.openai_base_url, api_key="k")
    )
    agent = Agent(model)
    statek.instrument_httpx()
    with Job("j") as job:
        assert agent.run_sync("What is the weather in Paris?").output == TEXT
    check(sdk, job)


def test_openai_agents_sdk(sdk: Env) -> None:
    agents = pytest.importorskip("agents")
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=sdk.sim.openai_base_url, api_key="k")
    agent = agents.Agent(
        name="weather",
        instructions="Answer briefly.",
        model=agents.OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client),
    )
    statek.instrument_httpx()
    with Job("j") as job:
        assert agents.Runner.run_sync(agent, "What is the weather in Paris?").final_output == TEXT
    check(sdk, job)
