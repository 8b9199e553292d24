"""The loopback provider simulator (``statek.testing``), checked on the wire with plain httpx.

Bodies are asserted as raw JSON, not through statek's provider adapters: the point is that the
simulator speaks each provider's real convention, so the adapters can be tested against it.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import ssl
import threading
from decimal import Decimal
from typing import Any

import httpx
import pytest

from statek.testing import Failure, ModelBehavior, ProviderSimulator, ToolCallSpec, Usage
from statek.types import CallDetail

CHAT = {"model": "m", "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
GEMINI_CHAT = {"contents": [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}]}

RICH = ModelBehavior(
    text="It is sunny in Paris today.",
    tool_calls=[ToolCallSpec("get_weather", {"city": "Paris", "days": 2})],
    thinking="The user wants the weather; call the tool.",
    input_tokens=1000,
    cached_tokens=600,
    cache_write_tokens=200,
    cache_write_1h_tokens=50,
    tool_use_prompt_tokens=40,
    output_tokens=90,
    reasoning_tokens=30,
    cost="0.0123",
    response_model="m-2025-01-01",
)


def sse_events(raw: str) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a server-sent-events body; separators may be \\n\\n or \\r\\n\\r\\n."""
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((name, "\n".join(data)))
    return events


@pytest.fixture
def sim() -> Any:
    with ProviderSimulator({"m": RICH}, default=ModelBehavior(), seed=1) as simulator:
        yield simulator


@pytest.fixture
def http() -> Any:
    with httpx.Client(timeout=10) as client:
        yield client


# ---------------------------------------------------------------------------------------------- wire formats
def test_openai_body_and_usage_convention(sim: ProviderSimulator, http: httpx.Client) -> None:
    response = http.post(sim.openai_url, json=CHAT, headers={"authorization": "Bearer test-key"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "m-2025-01-01"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "It is sunny in Paris today."
    assert choice["message"]["reasoning_content"] == "The user wants the weather; call the tool."
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "days": 2}  # a JSON *string*
    usage = body["usage"]
    # Cache reads and writes inside prompt_tokens, reasoning inside completion_tokens.
    assert usage["prompt_tokens"] == 1000
    assert usage["prompt_tokens_details"]["cached_tokens"] == 600
    assert usage["prompt_tokens_details"]["cache_write_tokens"] == 200
    assert usage["completion_tokens"] == 90
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 30
    assert usage["total_tokens"] == 1090
    assert Decimal(str(usage["cost"])) == Decimal("0.0123")

    (record,) = sim.requests
    assert (record.method, record.path, record.wire, record.model) == (
        "POST",
        "/v1/chat/completions",
        "openai",
        "m",
    )
    assert record.headers["authorization"] == "Bearer test-key"
    assert "test-key" not in repr(record)  # headers may hold keys: kept out of repr
    assert record.body == CHAT and record.body_bytes == len(response.request.content)
    assert record.status == 200 and record.outcome == "ok" and record.response_bytes == len(response.content)
    assert record.wire_usage == usage
    assert record.usage == Usage(1000, 90, 600, 200, 0, 30, 0, Decimal("0.0123"))  # no 1h split on this wire


def test_anthropic_body_and_usage_convention(sim: ProviderSimulator, http: httpx.Client) -> None:
    response = http.post(
        sim.anthropic_url, json=CHAT, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "message" and body["id"].startswith("msg_") and body["model"] == "m-2025-01-01"
    assert body["stop_reason"] == "tool_use"
    thinking, text, tool = body["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] and thinking["signature"]
    assert text == {"type": "text", "text": "It is sunny in Paris today."}
    assert tool["type"] == "tool_use" and tool["id"].startswith("toolu_") and tool["name"] == "get_weather"
    assert tool["input"] == {"city": "Paris", "days": 2}  # an *object*
    usage = body["usage"]
    # input_tokens excludes cache reads and writes; writes split by lifetime; thinking inside output.
    assert usage["input_tokens"] == 1000 - 600 - 200
    assert usage["cache_read_input_tokens"] == 600
    assert usage["cache_creation_input_tokens"] == 200
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 50}
    assert usage["output_tokens"] == 90
    assert usage["output_tokens_details"] == {"thinking_tokens": 30}
    assert "cost" not in usage
    assert sim.requests[0].usage == Usage(1000, 90, 600, 200, 50, 30, 0, None)


def test_gemini_body_and_usage_convention(sim: ProviderSimulator, http: httpx.Client) -> None:
    assert sim.gemini_url.endswith("/v1beta/models/{model}:generateContent")
    response = http.post(sim.gemini_url.format(model="m"), json=GEMINI_CHAT, headers={"x-goog-api-key": "k"})
    assert response.status_code == 200
    body = response.json()
    assert body["modelVersion"] == "m-2025-01-01" and body["responseId"]
    candidate = body["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    # No thought part unless the request asks for thoughts.
    assert candidate["content"] == {
        "role": "model",
        "parts": [
            {"text": "It is sunny in Paris today."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 2}}},
        ],
    }
    meta = body["usageMetadata"]
    # promptTokenCount includes the cache but not tool-use prompt tokens; thoughts outside candidates.
    assert meta["promptTokenCount"] == 1000 - 40
    assert meta["cachedContentTokenCount"] == 600
    assert meta["toolUsePromptTokenCount"] == 40
    assert meta["candidatesTokenCount"] == 90 - 30
    assert meta["thoughtsTokenCount"] == 30
    assert meta["totalTokenCount"] == 960 + 60 + 40 + 30 == 1090
    # Gemini has no cache-write field: the record says what was really reported.
    assert sim.requests[0].usage == Usage(1000, 90, 600, 0, 0, 30, 40, None)


def test_gemini_thoughts_on_request_and_vertex_path(sim: ProviderSimulator, http: httpx.Client) -> None:
    ask = {**GEMINI_CHAT, "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    vertex = http.post(sim.vertex_url("m", project="p1", location="europe-west4"), json=ask)
    assert "/v1/projects/p1/locations/europe-west4/publishers/google/models/m:generateContent" in str(
        vertex.url
    )
    assert vertex.status_code == 200
    parts = vertex.json()["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "The user wants the weather; call the tool.", "thought": True}
    assert sim.requests[0].wire == "gemini" and sim.requests[0].model == "m"
    assert sim.vertex_url().endswith("/publishers/google/models/{model}:generateContent")  # a template
    assert sim.gemini_model_url(stream=True).endswith("/v1beta/models/{model}:streamGenerateContent?alt=sse")


def test_usage_derived_from_request_and_text(http: httpx.Client) -> None:
    with ProviderSimulator(default=ModelBehavior(text="x" * 41, cached_tokens=3)) as sim:
        body = {"model": "any-model", "messages": [{"role": "user", "content": "y" * 200}]}
        response = http.post(sim.openai_url, json=body)
        usage = response.json()["usage"]
        assert usage["prompt_tokens"] == math.ceil(len(response.request.content) / 4)
        assert usage["completion_tokens"] == math.ceil(41 / 4)
        assert usage["prompt_tokens_details"]["cached_tokens"] == 3
        assert response.json()["model"] == "any-model"  # default: echo the requested model


def test_text_callable_sees_the_prompt(http: httpx.Client) -> None:
    behavior = ModelBehavior(text=lambda request: f"echo: {request.prompt_text}")
    with ProviderSimulator({"m": behavior}) as sim:
        openai = http.post(sim.openai_url, json=CHAT).json()
        anthropic = http.post(
            sim.anthropic_url,
            json={
                **CHAT,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}
                ],
            },
        ).json()
        gemini = http.post(sim.gemini_model_url("m"), json=GEMINI_CHAT).json()
    expected = "echo: What is the weather in Paris?"
    assert openai["choices"][0]["message"]["content"] == expected
    assert anthropic["content"][0]["text"] == expected
    assert gemini["candidates"][0]["content"]["parts"][0]["text"] == expected


def test_routing_errors_use_each_wire_error_shape(http: httpx.Client) -> None:
    with ProviderSimulator({"known": ModelBehavior()}) as sim:  # behaviours but no default: others are 404
        unknown = http.post(sim.openai_url, json={**CHAT, "model": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
        anthropic = http.post(sim.anthropic_url, json={**CHAT, "model": "nope"})
        assert anthropic.status_code == 404 and anthropic.json()["error"]["type"] == "not_found_error"
        gemini = http.post(sim.gemini_model_url("nope"), json=GEMINI_CHAT)
        assert gemini.status_code == 404 and gemini.json()["error"]["status"] == "NOT_FOUND"
        bad_json = http.post(
            sim.openai_url, content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 400
        nowhere = http.post(f"{sim.base_url}/v2/elsewhere", json=CHAT)
        assert nowhere.status_code == 404
        azure = http.post(
            f"{sim.base_url}/openai/deployments/known/chat/completions?api-version=2024-10-21",
            json={"messages": CHAT["messages"]},
        )
        assert azure.status_code == 200 and sim.requests[-1].model == "known"
        assert sim.requests[-1].query == {"api-version": "2024-10-21"}
        assert [r.status for r in sim.requests] == [404, 404, 404, 400, 404, 200]


def test_failing_text_callable_answers_500(http: httpx.Client) -> None:
    def broken(request: Any) -> str:
        raise KeyError("boom")

    with ProviderSimulator({"m": ModelBehavior(text=broken)}) as sim:
        response = http.post(sim.openai_url, json=CHAT)
    assert response.status_code == 500 and "KeyError" in response.json()["error"]["message"]


def test_behavior_validation() -> None:
    with pytest.raises(ValueError, match="exceed input_tokens"):
        ModelBehavior(input_tokens=10, cached_tokens=8, cache_write_tokens=5)
    with pytest.raises(ValueError, match="cache_write_1h_tokens"):
        ModelBehavior(cache_write_tokens=5, cache_write_1h_tokens=6)
    with pytest.raises(ValueError, match="reasoning_tokens"):
        ModelBehavior(output_tokens=5, reasoning_tokens=6)
    with pytest.raises(ValueError, match="4xx/5xx"):
        Failure(status=200)
    assert ModelBehavior(tool_calls=[("f", {"a": 1})]).tool_calls == (ToolCallSpec("f", {"a": 1}),)


def test_usage_mismatches_compares_with_llm_stats() -> None:
    usage = Usage(1000, 90, 600, 200, 50, 30, 40, Decimal("0.0123"))
    stats = CallDetail(10, 20, Decimal("0.0123"), 1000, 90, 600, 200, 50, 30)
    assert usage.mismatches(stats) == {}
    off = stats._replace(input_tokens=400, cost=None)
    assert usage.mismatches(off) == {"input_tokens": (1000, 400), "cost": (Decimal("0.0123"), None)}


# ---------------------------------------------------------------------------------------------- failures
@pytest.mark.parametrize(
    ("send", "check_shape"),
    [
        (lambda s, c: c.post(s.openai_url, json=CHAT), lambda b: b["error"]["type"] == "rate_limit_exceeded"),
        (lambda s, c: c.post(s.anthropic_url, json=CHAT), lambda b: b["error"]["type"] == "rate_limit_error"),
        (
            lambda s, c: c.post(s.gemini_model_url("m"), json=GEMINI_CHAT),
            lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED",
        ),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_rate_limit_first_n_with_retry_after(send: Any, check_shape: Any, http: httpx.Client) -> None:
    behavior = ModelBehavior(failures=[Failure.rate_limit(first=2, retry_after=3)])
    with ProviderSimulator({"m": behavior}) as sim:
        answers = [send(sim, http) for _ in range(3)]
        records = sim.requests
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "3"
    assert check_shape(answers[0].json())
    assert "retry-after" not in answers[2].headers
    assert [r.outcome for r in records] == ["error", "error", "ok"]
    assert records[0].usage is None and records[2].usage is not None
    assert records[0].failure == behavior.failures[0]


def test_server_errors_with_probability_are_seeded(http: httpx.Client) -> None:
    behavior = ModelBehavior(failures=[Failure.server_error(probability=0.5, status=503)])

    def statuses(seed: int) -> list[int]:
        with ProviderSimulator({"m": behavior}, seed=seed) as sim:
            return [http.post(sim.openai_url, json=CHAT).status_code for _ in range(40)]

    first = statuses(11)
    assert first == statuses(11)  # same seed, same failures
    assert set(first) == {200, 503}
    assert first != statuses(12)


def test_every_on_and_hard_failures(http: httpx.Client) -> None:
    behavior = ModelBehavior(
        failures=[
            Failure.hard(400, on=[0], message="bad field 'x'"),
            Failure.server_error(status=500, every=3),
        ]
    )
    with ProviderSimulator({"m": behavior}) as sim:
        answers = [http.post(sim.openai_url, json=CHAT) for _ in range(7)]
    assert [a.status_code for a in answers] == [400, 200, 500, 200, 200, 500, 200]
    assert answers[0].json()["error"] == {
        "message": "bad field 'x'",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert answers[2].json()["error"]["type"] == "server_error"


def test_malformed_json_body(http: httpx.Client) -> None:
    behavior = ModelBehavior(failures=[Failure.malformed(first=1)])
    with ProviderSimulator({"m": behavior}) as sim:
        bad = http.post(sim.openai_url, json=CHAT)
        good = http.post(sim.openai_url, json=CHAT)
        stream = http.post(
            sim.anthropic_url, json={**CHAT, "model": "other", "stream": True}
        )  # no plan: fine
        records = sim.requests
    assert bad.status_code == 200 and bad.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad.content)
    assert good.json()["choices"]
    assert records[0].outcome == "malformed" and records[1].outcome == "ok"
    assert stream.status_code == 404  # "other" is not simulated when behaviours are given without default


def test_malformed_stream_is_cut_mid_event(http: httpx.Client) -> None:
    with ProviderSimulator(default=ModelBehavior(failures=[Failure.malformed()])) as sim:
        response = http.post(sim.openai_url, json={**CHAT, "stream": True})
    events = sse_events(response.text)
    json.loads(events[0][1])
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[1][1])


async def test_disconnect_is_a_transport_error_on_both_paths() -> None:
    behavior = ModelBehavior(failures=[Failure.disconnect(first=1)])
    async with ProviderSimulator({"m": behavior}) as sim:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(sim.openai_url, json=CHAT)
            assert (await client.post(sim.openai_url, json=CHAT)).status_code == 200
        sim.reset()
        async with httpx.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/v1/chat/completions", json=CHAT)
        assert [r.outcome for r in sim.requests] == ["disconnect"]


# ---------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_different_seed_different_ids(http: httpx.Client) -> None:
    behavior = ModelBehavior(latency=(0.0, 0.01), tool_calls=[("f", {"x": 1})])

    def run(seed: int) -> tuple[list[bytes], list[float]]:
        with ProviderSimulator({"m": behavior}, seed=seed) as sim:
            bodies = [http.post(sim.openai_url, json=CHAT).content for _ in range(3)]
            bodies.append(http.post(sim.anthropic_url, json=CHAT).content)
            return bodies, [r.latency for r in sim.requests]

    first, latencies = run(5)
    assert run(5) == (first, latencies)
    assert len(set(first)) == 4  # ids differ from request to request
    assert all(0.0 <= x <= 0.01 for x in latencies) and len(set(latencies)) == 4
    other, _ = run(6)
    assert json.loads(other[0])["id"] != json.loads(first[0])["id"]


async def test_transport_answers_exactly_like_the_server() -> None:
    calls = [
        ("/v1/chat/completions", CHAT),
        ("/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}}),
        ("/v1/messages", CHAT),
        ("/v1/messages", {**CHAT, "stream": True}),
        ("/v1beta/models/m:generateContent", GEMINI_CHAT),
        ("/v1beta/models/m:streamGenerateContent?alt=sse", GEMINI_CHAT),
        ("/v1/chat/completions", {**CHAT, "model": "limited"}),
    ]
    behaviors = {"m": RICH, "limited": ModelBehavior(failures=[Failure.rate_limit(retry_after=0.5)])}
    sim = ProviderSimulator(behaviors, seed=3)

    async def answers(client: httpx.AsyncClient) -> list[tuple[int, str, str | None, bytes]]:
        out = []
        for path, body in calls:
            r = await client.post(path, json=body)
            out.append((r.status_code, r.headers["content-type"], r.headers.get("retry-after"), r.content))
        return out

    async with httpx.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        in_process = await answers(client)  # works without starting the server
    in_process_usage = [r.usage for r in sim.requests]
    sim.reset()
    async with sim, httpx.AsyncClient(base_url=sim.base_url) as client:
        over_http = await answers(client)
    assert over_http == in_process
    assert [r.usage for r in sim.requests] == in_process_usage
    assert in_process[-1][:3] == (429, "application/json", "0.5")


# ---------------------------------------------------------------------------------------------- streaming
def test_openai_stream_usage_only_with_include_usage(sim: ProviderSimulator, http: httpx.Client) -> None:
    plain = http.post(sim.openai_url, json={**CHAT, "stream": True})
    assert plain.headers["content-type"] == "text/event-stream"
    events = sse_events(plain.text)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert sim.requests[-1].usage is None

    with_usage = http.post(
        sim.openai_url, json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    )
    chunks = [json.loads(data) for _, data in sse_events(with_usage.text)[:-1]]
    *content, last = chunks
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 1000
    assert last["usage"]["completion_tokens_details"]["reasoning_tokens"] == 30
    assert all(c["usage"] is None for c in content)
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content[-1]["choices"][0]["finish_reason"] == "tool_calls"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in content)
    assert text == "It is sunny in Paris today."
    tool_deltas = [d for c in content for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert tool_deltas[0]["function"]["name"] == "get_weather" and tool_deltas[0]["id"].startswith("call_")
    arguments = "".join(d["function"]["arguments"] for d in tool_deltas)
    assert json.loads(arguments) == {"city": "Paris", "days": 2}
    assert len(tool_deltas) > 2  # arguments really arrive in fragments
    assert sim.requests[-1].usage == Usage(1000, 90, 600, 200, 0, 30, 0, Decimal("0.0123"))


@pytest.mark.parametrize(
    ("mode", "ask", "usage_chunk", "nulls"),
    [("always", False, True, False), ("never", True, False, True), ("requested", False, False, False)],
)
def test_openai_stream_usage_modes(
    mode: str, ask: bool, usage_chunk: bool, nulls: bool, http: httpx.Client
) -> None:
    with ProviderSimulator(default=ModelBehavior(stream_usage=mode, input_tokens=7)) as sim:  # type: ignore[arg-type]
        body = {**CHAT, "stream": True, **({"stream_options": {"include_usage": True}} if ask else {})}
        chunks = [json.loads(d) for _, d in sse_events(http.post(sim.openai_url, json=body).text)[:-1]]
        record = sim.requests[-1]
    assert (chunks[-1]["choices"] == []) is usage_chunk
    assert (record.usage is not None) is usage_chunk
    if usage_chunk:
        assert chunks[-1]["usage"]["prompt_tokens"] == 7 and record.usage.input_tokens == 7
    assert all(("usage" in c) is nulls for c in chunks if c["choices"])


def test_anthropic_stream_events_and_cumulative_usage(sim: ProviderSimulator, http: httpx.Client) -> None:
    response = http.post(sim.anthropic_url, json={**CHAT, "stream": True})
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == name for d, name in zip(data, names))
    start_usage = data[0]["message"]["usage"]
    assert start_usage["input_tokens"] == 200 and start_usage["cache_read_input_tokens"] == 600
    assert start_usage["cache_creation"]["ephemeral_1h_input_tokens"] == 50
    assert start_usage["output_tokens"] == 1  # a placeholder, replaced (not added) by message_delta
    delta = data[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert (
        delta["usage"]["output_tokens"] == 90
        and delta["usage"]["output_tokens_details"]["thinking_tokens"] == 30
    )
    starts = [d["content_block"]["type"] for d in data if d["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    deltas = [d["delta"] for d in data if d["type"] == "content_block_delta"]
    assert "".join(d.get("text", "") for d in deltas) == "It is sunny in Paris today."
    assert any(d["type"] == "signature_delta" for d in deltas)
    partial = "".join(d.get("partial_json", "") for d in deltas)
    assert json.loads(partial) == {"city": "Paris", "days": 2}


def test_gemini_sse_stream_has_cumulative_usage(sim: ProviderSimulator, http: httpx.Client) -> None:
    response = http.post(sim.gemini_model_url("m", stream=True), json=GEMINI_CHAT)
    assert response.headers["content-type"] == "text/event-stream"
    assert b"\r\n\r\n" in response.content  # Google's separator
    chunks = [json.loads(d) for _, d in sse_events(response.text)]
    assert len(chunks) > 2
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == sorted(counts) and counts[0] < counts[-1] == 60  # cumulative: the last is the total
    assert all(c["usageMetadata"]["promptTokenCount"] == 960 for c in chunks)
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == "It is sunny in Paris today."
    assert sim.requests[-1].usage == Usage(1000, 90, 600, 0, 0, 30, 40, None)
    array = http.post(
        sim.gemini_model_url("m").replace(":generateContent", ":streamGenerateContent"), json=GEMINI_CHAT
    )
    assert [c["usageMetadata"] for c in array.json()] == [c["usageMetadata"] for c in chunks]


# ---------------------------------------------------------------------------------------------- server
async def test_500_concurrent_requests_on_keep_alive_connections() -> None:
    async with ProviderSimulator(default=ModelBehavior(latency=0.2)) as sim:
        # Many small clients: httpx's own pool gets slow with hundreds of connections in one client.
        # One shared TLS context: building one per client costs ~20 ms each.
        limits = httpx.Limits(max_connections=5, max_keepalive_connections=5)
        tls = ssl.create_default_context()
        clients = [httpx.AsyncClient(limits=limits, timeout=30, verify=tls) for _ in range(100)]
        try:
            for _ in range(2):
                replies = await asyncio.gather(
                    *(clients[i % 100].post(sim.openai_url, json=CHAT) for i in range(500))
                )
                assert [r.status_code for r in replies] == [200] * 500
                assert all(r.json()["choices"][0]["message"]["content"] for r in replies)
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        assert sim.request_count == 1000
        # The latency holds every request open at once: 500 connections, reused by the second round.
        assert sim.connections_accepted == 500


def _simulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("statek-simulator")]


def test_start_stop_leaves_no_thread_and_closes_the_port(http: httpx.Client) -> None:
    sim = ProviderSimulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.base_url
    sim.start()
    port = sim.port
    assert sim.base_url == f"http://127.0.0.1:{port}" and sim.running
    assert len(_simulator_threads()) == 1
    assert http.post(sim.openai_url, json=CHAT).status_code == 200  # leaves a keep-alive connection open
    sim.stop()
    sim.stop()  # idempotent
    assert not sim.running
    assert _simulator_threads() == []
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
    sim.start()  # restartable
    try:
        assert httpx.post(sim.openai_url, json=CHAT).status_code == 200
    finally:
        sim.stop()
    assert _simulator_threads() == []


def test_garbage_http_gets_400_and_server_keeps_serving(http: httpx.Client) -> None:
    with ProviderSimulator() as sim:
        with socket.create_connection(("127.0.0.1", sim.port)) as raw:
            raw.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
        assert http.post(sim.openai_url, json=CHAT).status_code == 200


def test_port_in_use_raises_on_start() -> None:
    with ProviderSimulator() as first:
        with pytest.raises(OSError):
            ProviderSimulator(port=first.port).start()
        assert first.running


def test_record_bound_and_reset(http: httpx.Client) -> None:
    behavior = ModelBehavior(failures=[Failure.rate_limit(first=1, retry_after=0)])
    with ProviderSimulator({"m": behavior}, max_recorded=2) as sim:
        statuses = [http.post(sim.openai_url, json=CHAT).status_code for _ in range(4)]
        assert statuses == [429, 200, 200, 200]
        assert sim.request_count == 4 and [r.sequence for r in sim.requests] == [2, 3]
        sim.reset()
        assert sim.requests == [] and sim.request_count == 0
        assert http.post(sim.openai_url, json=CHAT).status_code == 429  # failure plans start over
        sim.set_behavior("m", ModelBehavior(text="changed"))
        assert http.post(sim.openai_url, json=CHAT).json()["choices"][0]["message"]["content"] == "changed"
        assert [r.index for r in sim.requests_for("m")] == [0, 1]


def test_black_hole_accepts_and_never_answers() -> None:
    import httpx

    from statek.testing import BlackHole

    with BlackHole() as hole:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{hole.url}/v1/traces", content=b"x", timeout=0.3)
        assert len(hole.accepted) == 1
