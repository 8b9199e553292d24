"""The metering transport against hostile answers: long SSE lines, compressed bombs, redirect chains.

In every case the caller's bytes are delivered untouched, metering's memory and CPU stay bounded, and
the call is recorded once, for what it was.
"""

from __future__ import annotations

import gc
import gzip
import json
import resource
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_telemetry_support import Captured, captured_fixture, prices_fixture  # noqa: F401 - fixtures

import statek.wire.sse
from statek import Budget, Job
from statek.instrumentation import AsyncMeteringTransport, MeteringTransport, _exchange

URL = "http://llm.test/v1/chat/completions"
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
STREAM_BODY = json.dumps({"model": "gpt-4o-mini", "messages": [], "stream": True}).encode()
ANSWER = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }
).encode()
USAGE_EVENT = (
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}\n\n'
)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _client(handler: Any, **kwargs: Any) -> httpx.Client:
    return httpx.Client(
        transport=MeteringTransport(httpx.MockTransport(handler), provider="OPENAI"), **kwargs
    )


def _stream_answer(body: bytes, piece: int) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=_pieces(body, piece), headers={"content-type": "text/event-stream"}
        )

    return handler


def _read_stream(client: httpx.Client) -> bytes:
    with client.stream("POST", URL, content=STREAM_BODY) as response:
        return b"".join(response.iter_raw())


# ----------------------------------------------------------------------------- long SSE lines
def test_a_stream_line_over_the_bound_is_delivered_untouched_and_the_call_recorded_unmetered(
    captured: Captured, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(statek.wire.sse, "MAX_EVENT_BYTES", 64 * 1024)
    body = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"A" * 200_000 + b'"}}]}\n\n' + USAGE_EVENT
    with Job("j") as job:
        assert _read_stream(_client(_stream_answer(body, 4096))) == body
    span = captured.finished("chat gpt-4o-mini")[0]
    assert "error.type" not in span.attributes
    assert span.attributes["statek.cost.status"] == "no_usage"
    assert span.attributes["statek.bytes.received"] == len(body)
    assert job.usage.calls == 1 and job.usage.failed_calls == 0
    assert "longer than 65536 bytes" in caplog.text


def test_a_long_line_below_the_bound_is_read_in_linear_cpu_and_bounded_memory(captured: Captured) -> None:
    """A 4 MiB base64 line (a Gemini-sized image) in 1 KiB pieces: the old decoder re-split the whole
    line at every piece (about 8 GB of copying here); now each byte is handled a few times."""
    line = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"QUJD" * (1024 * 1024) + b'"}}]}\n\n'
    body = line + USAGE_EVENT
    client = _client(_stream_answer(body, 1024))
    gc.collect()
    tracemalloc.start()
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    try:
        assert _read_stream(client) == body
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert captured.finished()[0].attributes["gen_ai.usage.output_tokens"] == 2
    assert cpu < 5.0  # seconds of CPU; quadratic reading took minutes
    assert peak < 6 * len(body)  # the caller's joined copy, the line, its text: a few copies at most


# ----------------------------------------------------------------------------- compressed answers
def test_a_gzip_bomb_costs_bounded_memory_and_is_recorded_unmetered(
    captured: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    """64 MiB of zeros in 64 KB of gzip, read raw by the caller: metering decompresses in bounded pieces
    and gives up past its whole-answer bound, without ever holding the decompressed body."""
    packed = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_pieces(packed, 16 * 1024), headers={"content-encoding": "gzip"})

    client = _client(handler)
    gc.collect()
    tracemalloc.start()
    try:
        with client.stream("POST", URL, content=BODY) as response:
            assert b"".join(response.iter_raw()) == packed
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < _exchange.MAX_WHOLE_ANSWER_BYTES + 4 * 1024 * 1024
    span = captured.finished()[0]
    assert span.attributes["statek.cost.status"] == "no_usage"
    assert span.attributes["statek.bytes.received"] == len(packed)
    assert "longer than" in caplog.text


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send it
    ],
)
def test_gzip_and_deflate_answers_are_read_in_any_pieces(
    captured: Captured, encoding: str, pack: Any
) -> None:
    packed = pack(ANSWER)
    for size in (1, 7, len(packed)):

        def handler(request: httpx.Request, size: int = size) -> httpx.Response:
            return httpx.Response(200, content=_pieces(packed, size), headers={"content-encoding": encoding})

        with _client(handler).stream("POST", URL, content=BODY) as response:
            assert b"".join(response.iter_raw()) == packed  # raw: httpx's own reader fails 1-byte raw deflate
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in captured.finished()] == [11, 11, 11]


def test_an_encoding_the_transport_does_not_read_is_logged_and_recorded_unmetered(
    captured: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"\x8b\x01\x80"]), headers={"content-encoding": "zstd"})

    for _ in range(3):
        with _client(handler).stream("POST", URL, content=BODY) as response:
            assert b"".join(response.iter_raw()) == b"\x8b\x01\x80"
    assert [s.attributes["statek.cost.status"] for s in captured.finished()] == ["no_usage"] * 3
    assert caplog.text.count("content-encoding 'zstd'") == 1  # once, not on every call


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    garbage=st.binary(max_size=200),
    cut=st.integers(min_value=0, max_value=400),
    piece=st.integers(min_value=1, max_value=64),
    encoding=st.sampled_from(["gzip", "deflate", "gzip, br", "x-gzip"]),
)
def test_any_compressed_body_is_delivered_untouched_and_recorded_once(
    captured: Captured, garbage: bytes, cut: int, piece: int, encoding: str
) -> None:
    """Valid, truncated or garbage compressed bodies in pieces of any size: the caller gets the raw bytes,
    one call is recorded, and metering holds no more than its bound."""
    packed = (gzip.compress(ANSWER) + garbage)[:cut] if cut % 2 else garbage + gzip.compress(ANSWER)
    captured.spans.clear()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_pieces(packed, piece), headers={"content-encoding": encoding})

    client = _client(handler)
    with client.stream("POST", URL, content=BODY) as response:  # warm-up: first-use imports and caches
        b"".join(response.iter_raw())
    captured.spans.clear()
    tracemalloc.start()
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    try:
        with client.stream("POST", URL, content=BODY) as response:
            assert b"".join(response.iter_raw()) == packed
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    spans = captured.finished()
    assert len(spans) == 1
    assert spans[0].attributes["statek.bytes.received"] == len(packed)
    assert cpu < 1.0 and peak < 2 * 1024 * 1024  # per input: a few pieces of 256 KiB at most


# ----------------------------------------------------------------------------- redirects
def _redirecting(statuses: list[int]) -> Any:
    """A server answering the n-th request with ``statuses[n]`` (a redirect to /hop{n}) and then the answer."""
    seen: list[str] = []  # paths only: holding a request would keep an unfollowed redirect pending

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        hop = len(seen) - 1
        if hop < len(statuses):
            return httpx.Response(
                statuses[hop], headers={"location": f"/hop{hop}/v1/chat/completions"}, content=b"moved"
            )
        return httpx.Response(200, content=ANSWER)

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


@pytest.mark.parametrize("status", [307, 308, 301, 302, 303])
def test_a_redirected_call_is_one_call_with_its_model(captured: Captured, status: int) -> None:
    handler = _redirecting([status])
    with Job("j") as job:
        answer = _client(handler, follow_redirects=True).post(URL, content=BODY)
    assert answer.status_code == 200 and answer.json() == json.loads(ANSWER)
    assert len(handler.seen) == 2
    spans = captured.finished()
    assert [s.name for s in spans] == ["chat gpt-4o-mini"]
    attributes = spans[0].attributes
    assert "error.type" not in attributes
    assert attributes["gen_ai.usage.input_tokens"] == 11
    resent = len(BODY) if status in (307, 308) else 0
    assert attributes["statek.bytes.sent"] == len(BODY) + resent
    assert attributes["statek.bytes.received"] == len(b"moved") + len(ANSWER)
    assert job.usage.calls == 1 and job.usage.failed_calls == 0


def test_a_redirected_call_under_a_one_call_budget_is_not_refused(captured: Captured) -> None:
    handler = _redirecting([307, 308])
    with Job("j", budget=Budget(calls=1)) as job:
        assert _client(handler, follow_redirects=True).post(URL, content=BODY).status_code == 200
    assert len(handler.seen) == 3
    status = job.usage.budget.status()  # type: ignore[union-attr]
    assert status.spent_calls == 1 and status.refusals == 0 and status.reserved_calls == 0


def test_a_redirect_not_followed_is_one_failed_call_with_its_status(captured: Captured) -> None:
    """Recorded once its response is dropped, by the next metering call (as any answer dropped unread)."""
    handler = _redirecting([307])
    with Job("j") as job:
        answer = _client(handler).post(URL, content=BODY)  # httpx does not follow by default
        assert answer.status_code == 307
        del answer
        gc.collect()
        _client(_redirecting([])).post(URL, content=BODY)  # the next call
    spans = captured.finished("chat gpt-4o-mini")
    assert [s.attributes.get("error.type") for s in spans] == ["307", None]
    assert job.usage.failed_calls == 1 and job.usage.calls == 1


def test_too_many_redirects_is_one_failed_call(captured: Captured) -> None:
    handler = _redirecting([307] * 5)
    with pytest.raises(httpx.TooManyRedirects):
        _client(handler, follow_redirects=True, max_redirects=2).post(URL, content=BODY)
    gc.collect()
    _client(_redirecting([])).post(URL, content=BODY)  # the next call records it
    spans = captured.finished()
    assert [s.attributes.get("error.type") for s in spans] == ["307", None]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([301, 302, 303, 307, 308]), max_size=4))
def test_any_redirect_chain_is_one_call(captured: Captured, chain: list[int]) -> None:
    captured.spans.clear()
    handler = _redirecting(chain)
    with Job("j", budget=Budget(calls=1)) as job:
        assert _client(handler, follow_redirects=True).post(URL, content=BODY).status_code == 200
    assert len(handler.seen) == len(chain) + 1
    spans = captured.finished()
    assert len(spans) == 1 and spans[0].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert job.usage.calls == 1 and job.usage.failed_calls == 0


async def test_an_async_redirected_call_is_one_call_within_a_one_call_budget(captured: Captured) -> None:
    handler = _redirecting([308, 302])
    transport = AsyncMeteringTransport(httpx.MockTransport(handler), provider="OPENAI")
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        with Job("j", budget=Budget(calls=1)) as job:
            answer = await client.post(URL, content=BODY)
    assert answer.json() == json.loads(ANSWER) and len(handler.seen) == 3
    spans = captured.finished()
    assert len(spans) == 1 and spans[0].attributes["gen_ai.usage.input_tokens"] == 11
    assert spans[0].attributes["statek.bytes.sent"] == 2 * len(BODY)  # a 308 re-sends the body; a 302 GETs
    assert job.usage.calls == 1 and job.usage.budget.status().refusals == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("piece", [1, 5, 4096])
def test_a_gzip_stream_is_read_event_by_event_in_any_pieces(captured: Captured, piece: int) -> None:
    events = (
        b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n' + USAGE_EVENT + b"data: [DONE]\n\n"
    )
    packed = gzip.compress(events)

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
        return httpx.Response(200, content=_pieces(packed, piece), headers=headers)

    assert _read_stream(_client(handler)) == packed
    attributes = captured.finished()[0].attributes
    assert attributes["gen_ai.usage.input_tokens"] == 11 and attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes["statek.bytes.received"] == len(packed)
