"""Cost status end to end: an answer without usage is ``no_usage`` in the response, the job, the span and
the metrics; a reported cost wins over the table and the drift is kept on the span, in LLM_Usage and
in the ``statek.cost.drift_requests`` counter; a catalogue provider is priced from the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from statek.chat import ChatHistoryItem
from statek.executors.job import Job
from statek.metering import PriceRegistry, set_default_registry
from statek.providers.catalog import XAI_API, Ollama_API, OpenAI_API
from statek.settings import ProviderSettings
from tests.test_telemetry_support import (  # noqa: F401 - pytest fixtures
    Captured,
    attrs,
    call,
    captured_fixture,
    prices_fixture,
    scripted_api,
)

URL = "http://127.0.0.1:9/v1/chat/completions"


@pytest.fixture
def database_prices() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    yield registry
    set_default_registry(previous)


def answering(payload: dict[str, Any] | bytes, stream: bool = False) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(payload, bytes):
            return httpx.Response(200, content=payload, headers={"content-type": "text/event-stream"})
        return httpx.Response(
            200, content=json.dumps(payload).encode(), headers={"content-type": "application/json"}
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


MESSAGE = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]
}
STREAM_WITHOUT_USAGE = (
    b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_answer_without_usage_is_no_usage_in_response_job_span_and_metrics(
    captured: Captured, database_prices: PriceRegistry, stream: bool
) -> None:
    client = answering(STREAM_WITHOUT_USAGE if stream else MESSAGE)
    api = OpenAI_API(ProviderSettings(api_url=URL, api_key="k"), http_client=client, stream=stream)
    async with Job("j") as job:
        response = await api.process_request(model="gpt-4o", chat_history=[ChatHistoryItem.user("hi")])
    assert response.text == "hi"
    assert (response.detail.cost_status, response.detail.priced_cost) == ("no_usage", None)
    assert (job.usage.no_usage_calls, job.usage.unpriced_calls, job.usage.total_cost) == (1, 0, None)
    assert job.usage.by_model()[("OPENAI", "gpt-4o")].no_usage_calls == 1
    (span,) = [s for s in captured.finished() if s.attributes.get("gen_ai.request.model") == "gpt-4o"]
    assert span.attributes["statek.cost.status"] == "no_usage" and "statek.cost.usd" not in span.attributes
    requests = captured.values("statek.requests")
    assert requests == {
        attrs(
            gen_ai__provider__name="openai",
            gen_ai__request__model="gpt-4o",
            statek__outcome="success",
            statek__cost__status="no_usage",
        ): 1
    }


async def test_a_reported_cost_wins_and_the_drift_is_kept(captured: Captured, prices: PriceRegistry) -> None:
    api = scripted_api()
    async with Job("j") as job:
        # model "priced" costs $2 per million input tokens: 1M tokens is $2 by the table; the provider says $2.50
        response = await call(api, "in=1000000 out=0 cost=2.5")
        same = await call(api, "in=1000000 out=0 cost=2.001")  # within 1 %: no drift counted
    assert (response.detail.cost_status, response.detail.priced_cost) == ("reported", Decimal("2.5"))
    assert same.detail.priced_cost == Decimal("2.001")
    assert job.usage.total_cost == Decimal("4.501")
    assert job.usage.total_cost_drift == Decimal("0.501")
    assert job.usage.by_model()[("SCRIPTED", "priced")].cost_drift == Decimal("0.501")
    first, _ = [s for s in captured.finished() if s.attributes.get("gen_ai.request.model") == "priced"]
    assert (
        first.attributes["statek.cost.table_usd"] == 2.0 and first.attributes["statek.cost.drift_usd"] == 0.5
    )
    assert first.attributes["statek.cost.usd"] == 2.5 and first.attributes["statek.cost.status"] == "reported"
    drift = captured.values("statek.cost.drift_requests")
    assert drift == {attrs(gen_ai__provider__name="scripted", gen_ai__request__model="priced"): 1}


async def test_a_catalogue_provider_is_priced_from_the_database(
    captured: Captured, database_prices: PriceRegistry
) -> None:
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0, "total_tokens": 1_000_000}
    client = answering({**MESSAGE, "usage": usage})
    api = XAI_API(ProviderSettings(api_url=URL, api_key="k"), http_client=client)
    response = await api.process_request(
        model="grok-4-fast-reasoning", chat_history=[ChatHistoryItem.user("hi")]
    )
    assert (response.detail.cost_status, response.detail.priced_cost) == ("calculated", Decimal("0.2"))


async def test_a_local_server_stays_unpriced(captured: Captured, database_prices: PriceRegistry) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    client = answering({**MESSAGE, "usage": usage})
    api = Ollama_API(ProviderSettings(api_url=URL), http_client=client)
    response = await api.process_request(model="gpt-4o", chat_history=[ChatHistoryItem.user("hi")])
    assert (response.detail.cost_status, response.detail.priced_cost) == ("unpriced", None)


async def test_the_span_names_the_price_row_and_the_service_tier(
    captured: Captured, database_prices: PriceRegistry
) -> None:
    # gpt-5 at OpenAI's flex tier: $0.625 per million input tokens (standard $1.25)
    database_prices.load(_tier_file())
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0, "total_tokens": 1_000_000}
    client = answering({**MESSAGE, "usage": usage, "service_tier": "flex", "model": "gpt-5-2025-08-07"})
    api = OpenAI_API(ProviderSettings(api_url=URL, api_key="k"), http_client=client)
    response = await api.process_request(model="gpt-5", chat_history=[ChatHistoryItem.user("hi")])
    assert (response.detail.service_tier, response.detail.priced_cost) == ("flex", Decimal("0.625"))
    (span,) = captured.spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["statek.cost.price_model"] == "openai:flex/gpt-5"
    assert span.attributes["statek.service_tier"] == "flex"


def _tier_file() -> Any:
    from statek.metering.registry import shipped_price_paths

    return [p for p in shipped_price_paths() if p.name == "tiers.csv"]
