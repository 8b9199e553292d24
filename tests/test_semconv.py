"""GenAI semantic conventions: operation names, the standard token-type values, the scope's schema URL,
streaming, and the main-branch names behind ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    ScriptedAPI,
    call,
    captured_fixture,
    prices_fixture,
    scripted_api,
)

from statek.instruments import INFERENCE_USAGE, latest_genai_opted_in
from statek.telemetry import SCHEMA_URL, configure_telemetry


class GeminiLike(ScriptedAPI):
    genai_provider_name = "gcp.gemini"


class Streaming(ScriptedAPI):
    stream = True


def _attribute_sets(captured: Captured, name: str) -> list[dict[str, Any]]:
    return [dict(key) for key in captured.points(name)]


async def test_gemini_calls_are_generate_content_operations(captured: Captured) -> None:
    await call(scripted_api(cls=GeminiLike), "in=10 out=2")
    (span,) = captured.finished()
    assert span.name == "generate_content priced"
    assert span.attributes["gen_ai.operation.name"] == "generate_content"
    for name in ("gen_ai.client.operation.duration", "gen_ai.client.token.usage"):
        assert {a["gen_ai.operation.name"] for a in _attribute_sets(captured, name)} == {"generate_content"}


async def test_other_providers_stay_chat(captured: Captured) -> None:
    await call(scripted_api(), "in=10 out=2")
    assert captured.finished()[0].attributes["gen_ai.operation.name"] == "chat"


async def test_token_type_holds_only_standard_values(captured: Captured) -> None:
    await call(scripted_api(), "in=100 out=20 cached=10 write=5 reason=3")
    usage = _attribute_sets(captured, "gen_ai.client.token.usage")
    assert {a["gen_ai.token.type"] for a in usage} == {"input", "output"}
    tokens = _attribute_sets(captured, "statek.tokens")
    assert all("gen_ai.token.type" not in a for a in tokens)
    assert {a["statek.token.type"] for a in tokens} == {
        "input",
        "output",
        "cache_read",
        "cache_write",
        "reasoning",
    }


async def test_server_address_and_port_are_on_the_genai_metrics(captured: Captured) -> None:
    await call(scripted_api(), "in=10 out=2")
    for name in ("gen_ai.client.operation.duration", "gen_ai.client.token.usage"):
        for attributes in _attribute_sets(captured, name):
            assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", 9), name
    # statek's own counters stay per provider and model (no new label on the dashboards' series)
    assert all("server.address" not in a for a in _attribute_sets(captured, "statek.requests"))


async def test_scope_carries_the_schema_url(captured: Captured) -> None:
    await call(scripted_api(), "in=10 out=2")
    (span,) = captured.finished()
    assert span.instrumentation_scope.schema_url == SCHEMA_URL == "https://opentelemetry.io/schemas/1.37.0"
    scopes = {sm.scope.schema_url for rm in captured.metrics().resource_metrics for sm in rm.scope_metrics}
    assert scopes == {SCHEMA_URL}


async def test_streaming_and_output_type_are_on_the_span(captured: Captured) -> None:
    await call(scripted_api(cls=Streaming), "in=10 out=2")
    await call(scripted_api(), "in=10 out=2")
    streamed, plain = captured.finished()
    assert streamed.attributes["gen_ai.request.stream"] is True
    assert "gen_ai.request.stream" not in plain.attributes
    assert streamed.attributes["gen_ai.output.type"] == plain.attributes["gen_ai.output.type"] == "text"


# ----------------------------------------------------------------------------- the opt-in
@pytest.fixture
def latest(prices: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    captured = Captured()
    yield captured
    configure_telemetry()


async def test_opt_in_adds_the_inference_usage_counters(latest: Captured) -> None:
    await call(scripted_api(), "in=100 out=20 cached=10 write=5 reason=3")
    await call(scripted_api(cls=GeminiLike), "in=7 out=1")
    expected = {"input": 107, "output": 21, "cache_read": 10, "cache_write": 5, "reasoning": 3}
    for name, token_type in INFERENCE_USAGE:
        points = latest.points(name)
        assert sum(p.value for p in points.values()) == expected[token_type], name
        for key in points:
            attributes = dict(key)
            assert attributes["gen_ai.token.modality"] == "text" and "statek.token.type" not in attributes
            assert attributes["gen_ai.operation.name"] == (
                "generate_content" if attributes["gen_ai.provider.name"] == "gcp.gemini" else "chat"
            )


async def test_opt_in_uses_the_main_branch_span_attributes(latest: Captured) -> None:
    await call(scripted_api(), "in=100 out=20 write=5")
    (span,) = latest.finished()
    assert span.attributes["gen_ai.usage.cache_write.input_tokens"] == 5
    assert "gen_ai.usage.cache_creation.input_tokens" not in span.attributes
    assert span.attributes["gen_ai.usage.cost.amount"] == pytest.approx(span.attributes["statek.cost.usd"])
    assert span.attributes["gen_ai.usage.cost.currency"] == "USD"
    assert span.attributes["gen_ai.usage.cost.source"] == "calculated"


async def test_without_the_opt_in_only_the_released_names(captured: Captured) -> None:
    await call(scripted_api(), "in=100 out=20 write=5")
    (span,) = captured.finished()
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 5
    assert not any(key.startswith("gen_ai.usage.cost") for key in span.attributes)
    names = {
        m.name for rm in captured.metrics().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert not any(name.startswith("gen_ai.client.inference") for name in names)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, False),
        ("", False),
        ("http", False),
        ("gen_ai_latest_experimental", True),
        ("http/dup, GEN_AI_LATEST_EXPERIMENTAL", True),
        ("gen_ai_latest_experimentalx", False),
    ],
)
def test_opt_in_parsing(raw: str | None, expected: bool) -> None:
    assert latest_genai_opted_in(raw) is expected


# ----------------------------------------------------------------------------- gen_ai.response.id
_ANSWERS: dict[str, tuple[str, dict[str, Any]]] = {
    "OPENAI": (
        "chatcmpl-7Qx",
        {
            "id": "chatcmpl-7Qx",
            "model": "gpt-4o",
            "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        },
    ),
    "ANTHROPIC": (
        "msg_01AbC",
        {
            "id": "msg_01AbC",
            "type": "message",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    ),
    "GEMINI": (
        "resp-9zY",
        {
            "responseId": "resp-9zY",
            "modelVersion": "gemini-2.5-flash",
            "candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
        },
    ),
}


@pytest.mark.parametrize("provider", sorted(_ANSWERS))
async def test_the_answers_id_is_the_spans_gen_ai_response_id(captured: Captured, provider: str) -> None:
    import httpx

    from statek import LLM_API, ChatHistoryItem

    expected, answer = _ANSWERS[provider]
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    )
    api = LLM_API.get(provider, api_key="test-key-response-id", http_client=client)
    response = await api.process_request(model="m", chat_history=[ChatHistoryItem.user("hi")])
    assert response.detail.response_id == expected
    (span,) = [s for s in captured.finished() if s.attributes.get("gen_ai.operation.name") != "invoke_agent"]
    assert span.attributes["gen_ai.response.id"] == expected
