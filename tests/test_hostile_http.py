"""Hostile retry hints, slow servers and cancelled calls (issue 10, items 8 and 9)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from hostile_support import Exporters
from hypothesis import given
from hypothesis import strategies as st

from statek import ChatHistoryItem
from statek._http import MAX_RETRY_HINT, RetryEvent, RetryPolicy, gemini_retry_delay, parse_retry_after, post
from statek.exceptions import ProviderConnectionError
from statek.executors.job import Job
from statek.providers.openai_compat import OpenAICompatible_API
from statek.settings import ProviderSettings

ANSWER = {
    "model": "m",
    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


@pytest.fixture(name="exporters")
def exporters_fixture() -> Iterator[Exporters]:
    exporters = Exporters()
    yield exporters
    exporters.close()


# ----------------------------------------------------------------------------- item 8: hints
@pytest.mark.parametrize(
    "value",
    ["abc", "", "   ", "Wed, 99 Foo 2015 07:28:00 GMT", "nan", "NaN", "inf", "-inf", "-1", "1e999", "0x10"],
)
def test_a_hostile_retry_after_is_no_hint(value: str) -> None:
    assert parse_retry_after({"retry-after": value}) is None
    assert parse_retry_after({"retry-after-ms": value}) is None


def test_usable_retry_hints_are_read_and_a_huge_one_is_bounded() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "1e300"}) == MAX_RETRY_HINT
    assert RetryPolicy(max_backoff=20).delay(1, MAX_RETRY_HINT) == 20
    assert RetryPolicy(max_backoff=20, jitter=False, initial_backoff=1).delay(1, math.nan) == 1


@given(st.text(max_size=40), st.text(max_size=40))
def test_parse_retry_after_never_raises_and_is_none_or_a_bounded_delay(seconds: str, millis: str) -> None:
    hint = parse_retry_after({"retry-after": seconds, "retry-after-ms": millis})
    assert hint is None or (math.isfinite(hint) and 0 <= hint <= MAX_RETRY_HINT)


@given(
    st.binary(max_size=200)
    | st.text(max_size=60).map(lambda t: json.dumps({"error": {"details": [{"retryDelay": t}]}}).encode())
)
def test_gemini_retry_delay_never_raises(body: bytes) -> None:
    hint = gemini_retry_delay(body)
    assert hint is None or (math.isfinite(hint) and 0 <= hint <= MAX_RETRY_HINT)


async def _post(handler: httpx.MockTransport, retry: RetryPolicy, events: list[RetryEvent]) -> httpx.Response:
    async with httpx.AsyncClient(transport=handler) as client:
        raw = await post(
            client,
            "http://127.0.0.1:9/x",
            body=b"{}",
            headers={},
            provider="P",
            retry=retry,
            on_retry=events.append,
        )
    return raw  # type: ignore[return-value]


@pytest.mark.parametrize("value", ["abc", "", "nan", "inf", "-3", "Mon, 32 Foo"])
async def test_a_429_with_a_hostile_retry_after_is_retried_after_the_policys_own_backoff(value: str) -> None:
    answers = iter([httpx.Response(429, headers={"retry-after": value}), httpx.Response(200, json=ANSWER)])
    events: list[RetryEvent] = []
    retry = RetryPolicy(initial_backoff=0.01, max_backoff=0.01, jitter=False)
    raw = await _post(httpx.MockTransport(lambda request: next(answers)), retry, events)
    assert raw.status_code == 200 and raw.attempts == 2
    assert [e.delay for e in events] == [0.01]


async def test_gemini_retryinfo_in_a_429_body_sets_the_delay() -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"},
            ],
        }
    }
    answers = iter([httpx.Response(429, json=body), httpx.Response(200, json=ANSWER)])
    events: list[RetryEvent] = []
    retry = RetryPolicy(initial_backoff=5, max_backoff=30, jitter=False)
    started = time.monotonic()
    raw = await _post(httpx.MockTransport(lambda request: next(answers)), retry, events)
    assert raw.attempts == 2 and [e.delay for e in events] == [0.05]
    assert time.monotonic() - started < 2  # not the policy's 5 s


# ----------------------------------------------------------------------------- item 8: total_timeout
async def _serve(handle: object) -> AsyncIterator[str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return length


async def test_total_timeout_bounds_a_server_trickling_one_byte_at_a_time() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n")
        try:
            for _ in range(400):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)  # well inside httpx's read timeout: only total_timeout can stop it
        except (ConnectionError, asyncio.CancelledError):
            pass

    async for url in _serve(trickle):
        api = OpenAICompatible_API(
            ProviderSettings(api_url=url), retry=RetryPolicy(total_timeout=1.0, max_attempts=3)
        )
        started = time.monotonic()
        async with Job("slow") as job:
            with pytest.raises(ProviderConnectionError, match="total_timeout=1 s") as caught:
                await api.process_request(model="m", chat_history=[ChatHistoryItem.user("hi")])
        elapsed = time.monotonic() - started
        await api.aclose()
    assert 0.9 < elapsed < 2.0
    assert caught.value.bytes_sent > 0 and job.usage.total_bytes_sent == caught.value.bytes_sent
    assert 5 <= caught.value.bytes_received < 400  # the body bytes read before the deadline cut it
    assert job.usage.total_bytes_received == caught.value.bytes_received


async def test_total_timeout_bounds_a_streamed_call_that_trickles() -> None:
    async def trickle_events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        try:
            for n in range(100):
                chunk = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.1)  # a piece every 0.1 s: only total_timeout can stop it
        except (ConnectionError, asyncio.CancelledError):
            pass

    async for url in _serve(trickle_events):
        api = OpenAICompatible_API(
            ProviderSettings(api_url=url), retry=RetryPolicy(total_timeout=1.0, max_attempts=3), stream=True
        )
        pieces: list[str] = []
        started = time.monotonic()
        async with Job("slow-stream") as job:
            with pytest.raises(ProviderConnectionError, match="total_timeout=1 s") as caught:
                async for piece in api.stream_request(model="m", chat_history=[ChatHistoryItem.user("hi")]):
                    pieces.append(piece)
        elapsed = time.monotonic() - started
        await api.aclose()
    assert 0.9 < elapsed < 2.0 and 3 <= len(pieces) < 100  # pieces came, then the bound stopped it
    error = caught.value
    assert error.bytes_sent > 0 and error.bytes_received > 0  # what was read is kept
    assert job.usage.total_bytes_sent == error.bytes_sent
    assert job.usage.total_bytes_received == error.bytes_received


# ----------------------------------------------------------------------------- item 9: cancellation
def _bytes(exporters: Exporters, direction: str) -> int:
    total = 0
    data = exporters.reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "statek.bytes":
                    for point in metric.data.data_points:
                        if point.attributes.get("network.io.direction") == direction:
                            total += point.value
    return total


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.wait_for"])
async def test_a_call_cancelled_after_the_request_went_out_records_the_bytes_sent(
    how: str, exporters: Exporters
) -> None:
    arrived = asyncio.Event()
    lengths: list[int] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lengths.append(await _read_request(reader))
        arrived.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            writer.close()

    async for url in _serve(hang):
        api = OpenAICompatible_API(ProviderSettings(api_url=url))
        async with Job("cancelled") as job:
            call = api.process_request(model="m", chat_history=[ChatHistoryItem.user("hello there")])
            if how == "task.cancel":
                task = asyncio.ensure_future(call)
                await arrived.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(call, 0.5)
        await api.aclose()
    assert lengths and job.usage.total_bytes_sent == lengths[0]
    assert job.usage.failed_calls == 1
    assert _bytes(exporters, "transmit") == lengths[0]
    (span,) = [s for s in exporters.spans.get_finished_spans() if s.name == "chat m"]
    assert span.attributes["statek.bytes.sent"] == lengths[0]
    assert span.attributes["error.type"] == "CancelledError"


async def test_cancelling_during_backoff_keeps_the_failed_attempts_bytes(exporters: Exporters) -> None:
    refused = b'{"error": "slow down"}'
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(len(request.content))
        return httpx.Response(429, content=refused, headers={"retry-after": "30"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    api = OpenAICompatible_API(
        ProviderSettings(api_url="http://127.0.0.1:9/v1/chat/completions"),
        http_client=client,
        retry=RetryPolicy(max_backoff=60, total_timeout=120),
    )
    async with Job("backoff") as job:
        task = asyncio.ensure_future(
            api.process_request(model="m", chat_history=[ChatHistoryItem.user("hi")])
        )
        while not sent:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # now in the 30 s back-off
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await client.aclose()
    assert job.usage.total_bytes_sent == sent[0] and job.usage.total_bytes_received == len(refused)
    assert _bytes(exporters, "transmit") == sent[0] and _bytes(exporters, "receive") == len(refused)


async def test_a_stream_cancelled_midway_keeps_the_bytes_sent_and_received(exporters: Exporters) -> None:
    lengths: list[int] = []
    first = b'data: {"model": "m", "choices": [{"index": 0, "delta": {"content": "Par"}}]}\n\n'

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lengths.append(await _read_request(reader))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        await writer.drain()
        try:
            await asyncio.sleep(30)  # the rest never comes
        except asyncio.CancelledError:
            writer.close()

    async for url in _serve(stall):
        api = OpenAICompatible_API(ProviderSettings(api_url=url))
        async with Job("stream") as job:
            pieces: list[str] = []
            task = asyncio.ensure_future(_consume(api, pieces))
            while not pieces:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await api.aclose()
    assert pieces == ["Par"]
    assert job.usage.total_bytes_sent == lengths[0] and job.usage.total_bytes_received > 0
    assert _bytes(exporters, "transmit") == lengths[0]


async def _consume(api: OpenAICompatible_API, pieces: list[str]) -> None:
    async for piece in api.stream_request(model="m", chat_history=[ChatHistoryItem.user("hi")]):
        pieces.append(piece)
