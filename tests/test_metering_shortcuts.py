"""Two shortcuts of the metering path, and the cases where they must not apply.

* An answer a built-in codec read (``LLM_Response._of_detail``) is priced in place and not range
  checked again; a response handed back a second time takes the general path (checked, copied).
* With OpenTelemetry's ``NoOpTracerProvider`` no span is started: the record carries the current span's
  context, as the no-op tracer's span would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NonRecordingSpan, NoOpTracerProvider, SpanContext, TraceFlags
from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    captured_fixture,
    prices_fixture,
)

from statek import LLM_API, ChatHistoryItem, Job
from statek.call_record import CallRecord, add_call_consumer, remove_call_consumer
from statek.llm_api import LLM_Response, PreparedRequest
from statek.metering import PriceRegistry
from statek.model_pricing import set_model_pricing
from statek.providers.openai_compat import OpenAICompatible_API
from statek.settings import ProviderSettings
from statek.telemetry import configure_telemetry
from statek.telemetry.config import telemetry_config

URL = "http://127.0.0.1:9/v1/chat/completions"
MODEL = "shortcut-model"
ANSWER = {
    "id": "chatcmpl-1",
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1_000, "completion_tokens": 100, "total_tokens": 1_100},
}


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=ANSWER)))


class Records:
    """A consumer keeping every finished record."""

    name = "records"

    def __init__(self) -> None:
        self.seen: list[CallRecord] = []

    def start(self, record: CallRecord) -> None:
        pass

    def finish(self, record: CallRecord) -> None:
        self.seen.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    kept = Records()
    add_call_consumer(kept)
    yield kept
    remove_call_consumer(kept)


@pytest.fixture(autouse=True)
def _price(prices: PriceRegistry) -> None:
    set_model_pricing("OPENAI", MODEL, "2", "10", "1")  # $ per million input / output / cached


async def _ask(api: LLM_API) -> LLM_Response:
    return await api.process_request("", MODEL, chat_history=[ChatHistoryItem.user("hello")])


EXPECTED = Decimal(1_000 * 2 + 100 * 10) / 1_000_000


async def test_a_built_in_answer_is_priced_and_unmarked(captured: Captured, records: Records) -> None:
    api = LLM_API.get("OPENAI", model=MODEL, api_url=URL, api_key="k", http_client=_client())
    response = await _ask(api)
    assert response.detail.priced_cost == EXPECTED and response.detail.cost_status == "calculated"
    assert response.detail.stats == response.stats  # the seed's six fields, unchanged by pricing
    assert records.seen[-1].response is response and records.seen[-1].detail is response.detail
    assert not response._take_read(), "the codec's mark outlived the pricing"


class _Repeating(OpenAICompatible_API):
    """Hands back its first response on every later call (a cache in a custom provider)."""

    first: LLM_Response | None = None

    async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
        if self.first is None:
            self.first = await super()._send(params, payload)
        return self.first


async def test_a_response_handed_back_again_takes_the_general_path(
    captured: Captured, records: Records
) -> None:
    settings = ProviderSettings(api_url=URL, api_key="k")
    api = _Repeating(settings, model=MODEL, provider_key="OPENAI", http_client=_client())
    async with Job("twice") as job:
        first = await _ask(api)
        second = await _ask(api)
    assert first is api.first  # priced in place: it was the codec's, made for that call
    assert second is not first  # the second time it is copied, as any provider's response is
    for response in (first, second):
        assert response.detail.priced_cost == EXPECTED
    assert job.usage.calls == 2 and job.usage.total_cost == 2 * EXPECTED


@pytest.fixture
def no_op_tracer() -> Iterator[None]:
    configure_telemetry(
        tracer_provider=NoOpTracerProvider(), meter_provider=MeterProvider([InMemoryMetricReader()])
    )
    yield
    configure_telemetry()


@pytest.mark.usefixtures("no_op_tracer")
async def test_a_no_op_tracer_starts_no_span_and_keeps_the_current_context(records: Records) -> None:
    assert telemetry_config().traces is False
    api = LLM_API.get("OPENAI", model=MODEL, api_url=URL, api_key="k", http_client=_client())
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(parent)):
        response = await _ask(api)
        assert trace.get_current_span().get_span_context() == parent  # the context is restored
    record = records.seen[-1]
    assert record.span is None and record.span_scope is None
    assert record.span_context == parent and record.trace_id == 0xABC  # what the no-op span carried
    assert response.detail.priced_cost == EXPECTED
    await _ask(api)  # outside any span: the invalid context, as the no-op tracer gives
    assert not records.seen[-1].span_context.is_valid


async def test_an_sdk_tracer_still_traces(captured: Captured, records: Records) -> None:
    assert telemetry_config().traces is True
    api = LLM_API.get("OPENAI", model=MODEL, api_url=URL, api_key="k", http_client=_client())
    await _ask(api)
    (span,) = captured.finished()
    assert span.name == f"chat {MODEL}" and records.seen[-1].span_context == span.get_span_context()
    assert dict(span.attributes or {})["gen_ai.usage.input_tokens"] == 1_000
