"""The metering transport itself: what it leaves alone, what it recognises, and how it records
answers that are compressed, broken, or made by statek's own client."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from test_telemetry_support import Captured, captured_fixture, prices_fixture  # noqa: F401 - fixtures

import statek
from statek import LLM_API, ChatHistoryItem, Job
from statek.instrumentation import AsyncMeteringTransport, MeteringTransport, is_httpx_instrumented

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
}
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


def server(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/chat/completions"):
        return httpx.Response(200, json=ANSWER)
    return httpx.Response(200, json={"object": "list", "data": []})


def test_requests_that_are_not_llm_calls_pass_through_untouched(captured: Captured) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return server(request)

    client = httpx.Client(transport=MeteringTransport(httpx.MockTransport(record)))
    assert client.get("https://api.openai.com/v1/models").json() == {"object": "list", "data": []}
    client.post("https://api.openai.com/v1/files", content=b"x")
    client.post("https://example.com/v1/messages", json={"text": "hi"})  # another API's path
    assert [r.url.path for r in seen] == ["/v1/models", "/v1/files", "/v1/messages"]
    assert captured.finished() == []


def test_a_known_public_endpoint_is_recognised_by_its_host(captured: Captured) -> None:
    client = httpx.Client(transport=MeteringTransport(httpx.MockTransport(server)))
    with Job("j") as job:
        answer = client.post("https://api.openai.com/v1/chat/completions", content=BODY).json()
    assert answer == ANSWER
    span = captured.finished("chat gpt-4o-mini")[0]
    assert span.attributes["server.address"] == "api.openai.com"
    assert span.attributes["server.port"] == 443
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert span.attributes["statek.bytes.sent"] == len(BODY)
    assert job.usage.by_model()[("OPENAI", "gpt-4o-mini")].input_tokens == 11


def test_configured_and_custom_endpoints_are_recognised(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_URL", "http://127.0.0.1:8999/openai/v1/chat/completions")
    client = httpx.Client(
        transport=MeteringTransport(httpx.MockTransport(server), endpoints={"https://gw.internal": "MISTRAL"})
    )
    client.post("http://127.0.0.1:8999/openai/v1/chat/completions", content=BODY)
    client.post("https://gw.internal/v1/chat/completions", content=BODY)
    assert [s.attributes["gen_ai.provider.name"] for s in captured.finished()] == ["groq", "mistral_ai"]


def test_a_gzip_answer_is_read(captured: Captured) -> None:
    packed = gzip.compress(json.dumps(ANSWER).encode())

    def gzipped(request: httpx.Request) -> httpx.Response:  # streamed in two pieces, as a server would
        return httpx.Response(
            200, content=iter([packed[:20], packed[20:]]), headers={"content-encoding": "gzip"}
        )

    client = httpx.Client(transport=MeteringTransport(httpx.MockTransport(gzipped), provider="OPENAI"))
    assert client.post("http://127.0.0.1:1/v1/chat/completions", content=BODY).json() == ANSWER
    attributes = captured.finished()[0].attributes
    assert attributes["gen_ai.usage.input_tokens"] == 11
    assert attributes["statek.bytes.received"] == len(packed)  # bytes as they came over the wire


FIRST_EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"he"}}]}\n\n'


class _Breaking(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield FIRST_EVENT
        raise httpx.ReadTimeout("the server went quiet")


def test_a_broken_stream_is_a_failed_call_with_its_bytes_and_the_error_reaches_the_caller(
    captured: Captured,
) -> None:
    def breaking(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Breaking(), headers={"content-type": "text/event-stream"})

    body = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
    client = httpx.Client(transport=MeteringTransport(httpx.MockTransport(breaking), provider="OPENAI"))
    with (
        Job("j") as job,
        pytest.raises(httpx.ReadTimeout),
        client.stream("POST", "http://h/v1/chat/completions", content=body) as r,
    ):
        for _ in r.iter_raw():
            pass
    attributes = captured.finished("chat m")[0].attributes
    assert attributes["error.type"] == "ReadTimeout"
    assert attributes["statek.bytes.received"] == len(FIRST_EVENT)
    assert "statek.time_to_first_chunk_s" in attributes
    assert job.usage.failed_calls == 1


def test_streams_reach_the_caller_chunk_for_chunk(captured: Captured) -> None:
    chunks = [
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n',
        b"\n",
        b'data: {"usage":{"prompt_tokens":3',
        b',"completion_tokens":1}}\n\ndata: [DONE]\n\n',
    ]

    def streaming(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter(chunks), headers={"content-type": "text/event-stream"})

    body = json.dumps({"model": "m", "stream": True, "stream_options": {"include_usage": True}}).encode()
    client = httpx.Client(transport=MeteringTransport(httpx.MockTransport(streaming), provider="OPENAI"))
    with client.stream("POST", "http://h/v1/chat/completions", content=body) as r:
        assert list(r.iter_raw()) == chunks
    attributes = captured.finished("chat m")[0].attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (3, 1)


async def test_statek_own_calls_through_a_metered_client_are_counted_once(captured: Captured) -> None:
    client = httpx.AsyncClient(
        transport=AsyncMeteringTransport(httpx.MockTransport(server), provider="OPENAI")
    )
    api = LLM_API.get(
        "OPENAI", api_key="k", api_url="http://127.0.0.1:1/v1/chat/completions", http_client=client
    )
    await api.process_request(model="gpt-4o-mini", chat_history=[ChatHistoryItem.user("hi")])
    assert len(captured.finished()) == 1


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_process_wide_instrumentation_is_opt_in_and_reversible(captured: Captured, module: Any) -> None:
    mock = module.MockTransport(lambda request: module.Response(200, json=ANSWER))
    before = module.Client(transport=mock)
    statek.instrument_httpx()
    try:
        assert is_httpx_instrumented()
        during = module.Client(transport=mock)
        patched = module.HTTPTransport.handle_request
    finally:
        statek.uninstrument_httpx()
    after = module.Client(transport=mock)
    assert not is_httpx_instrumented()
    assert module.HTTPTransport.handle_request is not patched  # the class is as it was
    for client in (before, during, after):
        client.post("https://api.openai.com/v1/chat/completions", content=BODY)
    # Only the client created while instrumented with a transport of its own keeps its metering
    # transport; `before` was counted as not reached while instrumentation was on (not here).
    assert len(captured.finished()) == 1


def test_the_transport_wraps_the_callers_transport_and_closes_it() -> None:
    closed: list[bool] = []

    class Inner(httpx.MockTransport):
        def close(self) -> None:
            closed.append(True)

    client = statek.http_client(transport=Inner(server), backend="httpx")
    assert isinstance(client, httpx.Client)
    client.close()
    assert closed == [True]


def test_instrument_with_httpx_meters_new_clients_until_shutdown() -> None:
    from prometheus_client import CollectorRegistry

    statek.instrument(registry=CollectorRegistry(), httpx=True)
    try:
        assert is_httpx_instrumented()
    finally:
        statek.shutdown()
    assert not is_httpx_instrumented()


def test_a_call_read_off_the_wire_gets_its_span_at_the_end_backdated_under_the_context_it_was_sent_in(
    captured: Captured,
) -> None:
    """The span is made when the answer has been read (one pass of attributes), but it starts when
    the request left, ends when the answer ended, and is a child of the span current when it left."""
    import time

    client = httpx.Client(transport=MeteringTransport(httpx.MockTransport(server), provider="OPENAI"))
    tracer = captured.tracer_provider.get_tracer("test")
    before = time.time_ns()
    with tracer.start_as_current_span("request handler") as handler:
        request = client.build_request("POST", "http://h/v1/chat/completions", content=BODY)
        response = client.send(request, stream=True)
    response.read()  # the answer is read (and the call ends) outside the handler's span
    response.close()
    after = time.time_ns()
    span = captured.finished("chat gpt-4o-mini")[0]
    assert span.parent is not None and span.parent.span_id == handler.get_span_context().span_id
    assert before <= span.start_time <= span.end_time <= after
    assert span.attributes["gen_ai.usage.input_tokens"] == 11
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
