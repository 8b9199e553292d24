"""boto3 Bedrock Runtime, metered after ``statek.instrument_clients()``: Converse, ConverseStream,
InvokeModel and InvokeModelWithResponseStream against a loopback Bedrock that answers in Bedrock's
own shapes and event-stream framing; exact tokens (the cache added back into input), exact cost,
job usage, budgets; answers and events reach the caller unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_telemetry_support import Captured, captured_fixture, prices_fixture  # noqa: F401 - fixtures

import statek
from statek import Budget, Job
from statek.exceptions import BudgetExceededError
from statek.model_pricing import set_model_pricing
from statek.testing.bedrock import TEXT, USAGE, BedrockServer

boto3 = pytest.importorskip("boto3")

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "What is the weather in Paris?"}]}]
INPUT, CACHED, OUTPUT = 176 + 1024, 1024, 30
IN, CACHE, OUT = Decimal(2), Decimal(1), Decimal(10)
COST = ((INPUT - CACHED) * IN + CACHED * CACHE + OUTPUT * OUT) / Decimal(1_000_000)


def client(url: str) -> Any:
    """A boto3 bedrock-runtime client against ``url``, as users make one (test credentials, no retries)."""
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(name="bedrock")
def bedrock_fixture(captured: Captured) -> Iterator[BedrockServer]:
    set_model_pricing("BEDROCK", MODEL, IN, OUT, CACHE)
    with BedrockServer() as server:
        yield server
    statek.uninstrument_clients()


def check(captured: Captured, job: Job, *, stream: bool, finish: str | None = "end_turn") -> None:
    span = captured.finished(f"chat {MODEL}")[0]
    attributes = dict(span.attributes)
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["gen_ai.usage.input_tokens"] == INPUT
    assert attributes["gen_ai.usage.output_tokens"] == OUTPUT
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == CACHED
    assert attributes.get("gen_ai.response.finish_reasons") == ((finish,) if finish else None)
    assert attributes["statek.cost.status"] == "calculated"
    assert attributes["statek.cost.usd"] == float(COST)
    assert ("statek.time_to_first_chunk_s" in attributes) is stream
    assert job.usage.by_model()[("BEDROCK", MODEL)].input_tokens == INPUT
    assert job.usage.total_cost == COST


def test_converse_is_metered_after_instrument_clients(captured: Captured, bedrock: BedrockServer) -> None:
    bedrock_client = client(bedrock.url)
    statek.instrument_clients()
    with Job("j") as job:
        answer = bedrock_client.converse(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 100})
    assert answer["output"]["message"]["content"][0]["text"] == TEXT
    assert answer["usage"]["inputTokens"] == USAGE["inputTokens"]  # the caller's answer is Bedrock's own
    check(captured, job, stream=False)
    span = captured.finished(f"chat {MODEL}")[0]
    assert span.attributes["gen_ai.request.max_tokens"] == 100
    assert span.attributes["statek.bytes.sent"] == len(bedrock.requests[0][2])


def test_a_client_created_after_instrument_clients_is_metered(
    captured: Captured, bedrock: BedrockServer
) -> None:
    statek.instrument_clients()
    with Job("j") as job:
        client(bedrock.url).converse(modelId=MODEL, messages=MESSAGES)
    check(captured, job, stream=False)


def test_converse_stream_events_pass_through_and_are_metered(
    captured: Captured, bedrock: BedrockServer
) -> None:
    statek.instrument_clients()
    with Job("j") as job:
        answer = client(bedrock.url).converse_stream(modelId=MODEL, messages=MESSAGES)
        events = list(answer["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == TEXT
    assert events[-1]["metadata"]["usage"]["inputTokens"] == USAGE["inputTokens"]
    check(captured, job, stream=True)


def test_invoke_model_is_metered_from_the_token_headers(captured: Captured, bedrock: BedrockServer) -> None:
    statek.instrument_clients()
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with Job("j") as job:
        answer = client(bedrock.url).invoke_model(modelId=MODEL, body=json.dumps(body))
        read = json.loads(answer["body"].read())  # the body is the caller's, unread by statek
    assert read["content"][0]["text"] == TEXT
    check(captured, job, stream=False, finish=None)  # the body (and its stop reason) is left unread


def test_invoke_model_with_response_stream_reads_the_invocation_metrics(
    captured: Captured, bedrock: BedrockServer
) -> None:
    statek.instrument_clients()
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with Job("j") as job:
        answer = client(bedrock.url).invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
        chunks = [json.loads(event["chunk"]["bytes"]) for event in answer["body"]]
    assert chunks[-1]["type"] == "message_stop"
    check(captured, job, stream=True)


def test_a_bedrock_error_is_a_failed_call_and_reaches_the_caller(
    captured: Captured, bedrock: BedrockServer
) -> None:
    statek.instrument_clients()
    bedrock.fail_with = 429
    with Job("j") as job, pytest.raises(Exception, match="ThrottlingException"):
        client(bedrock.url).converse(modelId=MODEL, messages=MESSAGES)
    span = captured.finished(f"chat {MODEL}")[0]
    assert span.attributes["error.type"] == "429"
    assert (job.usage.failed_calls, job.usage.calls) == (1, 0)


def test_a_budget_refuses_a_bedrock_call_before_it_is_sent(
    captured: Captured, bedrock: BedrockServer
) -> None:
    statek.instrument_clients()
    with Job("j", budget=Budget(usd=Decimal("0.000001"))), pytest.raises(BudgetExceededError):
        client(bedrock.url).converse(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 1000})
    assert bedrock.requests == []


def test_uninstrument_clients_unhooks_every_client(captured: Captured, bedrock: BedrockServer) -> None:
    bedrock_client = client(bedrock.url)
    statek.instrument_clients()
    statek.uninstrument_clients()
    bedrock_client.converse(modelId=MODEL, messages=MESSAGES)
    client(bedrock.url).converse(modelId=MODEL, messages=MESSAGES)
    assert captured.finished() == []


_EVENT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)
_KEYS = st.sampled_from(["chunk", "metadata", "messageStop", "contentBlockDelta", "bytes", "usage", "x"])


@settings(deadline=None)  # a loaded machine
@given(
    st.lists(st.dictionaries(_KEYS, _EVENT, max_size=3), max_size=6),
    st.sampled_from(["ConverseStream", "InvokeModelWithResponseStream"]),
)
def test_any_bedrock_stream_events_reach_the_caller_unchanged(
    events: list[dict[str, Any]], operation: str
) -> None:
    """Whatever a stream carries (hostile or broken events), the caller gets exactly those events and
    the call is recorded once, never raising into the caller."""
    from statek.instrumentation import bedrock
    from statek.telemetry import WireCall, WireEndpoint

    state = bedrock._Call(
        WireCall(WireEndpoint("BEDROCK", "aws.bedrock", "bedrock"), "chat", MODEL), operation, 10
    )
    read = bedrock._converse_event if operation == "ConverseStream" else bedrock._invoke_event
    assert list(bedrock.MeteredEventStream(iter(events), state, read)) == events
    assert state.done


def test_instrument_with_clients_hooks_every_library_until_shutdown() -> None:
    from prometheus_client import CollectorRegistry

    from statek.instrumentation.aiohttp_hooks import is_aiohttp_instrumented
    from statek.instrumentation.bedrock import is_botocore_instrumented

    statek.instrument(registry=CollectorRegistry(), clients=True)
    try:
        assert is_botocore_instrumented() and is_aiohttp_instrumented()
        assert statek.instrumentation.is_httpx_instrumented()
    finally:
        statek.shutdown()
    assert not (is_botocore_instrumented() or is_aiohttp_instrumented())
    assert not statek.instrumentation.is_httpx_instrumented()
