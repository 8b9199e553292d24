"""Every stream reader, fed a real provider stream (tests/recordings/*.sse) in pieces of every size from
one byte to the whole, gives the same answer as when fed the whole stream at once, or fails the same way;
and a hostile stream (garbage, cut anywhere, one huge line) costs bounded CPU and memory per input."""

from __future__ import annotations

import json
import resource
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.wire.answer import Answer, StreamReader
from statek.wire.anthropic_messages import MessageStreamReader
from statek.wire.errors import WireFormatError
from statek.wire.gemini import ContentStreamReader
from statek.wire.openai_chat import ChatStreamReader
from statek.wire.openai_responses import ResponsesStreamReader

RECORDINGS = Path(__file__).parent / "recordings"
STREAMS = sorted(RECORDINGS.glob("*.sse"))


def _reader(name: str, keep_content: bool) -> StreamReader:
    if name.startswith("anthropic"):
        return MessageStreamReader(keep_content=keep_content)
    if name.startswith(("gemini", "vertex")):
        return ContentStreamReader(keep_content=keep_content)
    return ChatStreamReader(keep_content=keep_content)


def _read(name: str, body: bytes, cuts: list[int], keep_content: bool = True) -> tuple[str, Answer | str]:
    """The text pieces joined and the answer, or the error's type, feeding ``body`` cut at ``cuts``."""
    reader = _reader(name, keep_content)
    text: list[str] = []
    start = 0
    try:
        for cut in [*cuts, len(body)]:
            text += reader.feed(body[start:cut])
            start = cut
        return "".join(text), reader.finish(1, len(body))
    except WireFormatError as exc:
        return "".join(text), type(exc).__name__


def test_there_are_recorded_streams_of_every_reader() -> None:
    names = {p.name.split("_")[0] for p in STREAMS}
    assert {"anthropic", "gemini", "openai", "openrouter"} <= names


@pytest.mark.parametrize("path", STREAMS, ids=[p.stem for p in STREAMS])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000])
def test_a_recorded_stream_in_pieces_of_one_size_reads_as_whole(path: Path, size: int) -> None:
    body = path.read_bytes()
    cuts = list(range(size, len(body), size))
    whole = _read(path.name, body, [])
    assert _read(path.name, body, cuts) == whole
    usage_only = _read(path.name, body, cuts, keep_content=False)[1]  # as the httpx transport reads
    if isinstance(whole[1], Answer):
        assert isinstance(usage_only, Answer) and usage_only.detail == whole[1].detail
    else:
        assert usage_only == whole[1]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_recorded_stream_cut_anywhere_reads_as_whole(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(STREAMS))
    body = path.read_bytes()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=40))))
    assert _read(path.name, body, cuts) == _read(path.name, body, [])


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    noise=st.binary(max_size=300),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_a_hostile_stream_fails_typed_with_bounded_cpu_and_memory(
    data: st.DataObject, noise: bytes, newline: bytes
) -> None:
    """A recorded stream cut short, re-lined, with noise spliced in: the reader returns an answer or
    raises WireFormatError (nothing else), within a CPU and memory bound per input."""
    path = data.draw(st.sampled_from(STREAMS))
    body = path.read_bytes().replace(b"\n", newline)
    at = data.draw(st.integers(0, len(body)))
    body = body[:at] + noise + body[at : data.draw(st.integers(at, len(body)))]
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=20))))
    tracemalloc.start()
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    try:
        _read(path.name, body, cuts)
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert cpu < 1.0
    assert peak < 64 * len(body) + 256 * 1024


@pytest.mark.parametrize(
    "reader", [ChatStreamReader, MessageStreamReader, ContentStreamReader, ResponsesStreamReader]
)
def test_every_reader_refuses_a_line_without_end_past_the_bound_with_a_typed_error(
    reader: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    import statek.wire.sse

    monkeypatch.setattr(statek.wire.sse, "MAX_EVENT_BYTES", 100_000)
    stream = reader(keep_content=False)
    with pytest.raises(WireFormatError, match="longer than 100000 bytes"):
        for _ in range(1_000):
            stream.feed(b"data: " + b"x" * 4096)


async def test_through_llm_api_a_line_over_the_bound_is_a_typed_error_with_the_bytes_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    import statek.wire.sse
    from statek import ChatHistoryItem
    from statek.exceptions import ResponseFormatError
    from statek.providers.openai_compat import OpenAICompatible_API
    from statek.settings import ProviderSettings

    monkeypatch.setattr(statek.wire.sse, "MAX_EVENT_BYTES", 100_000)
    body = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"A" * 300_000 + b'"}}]}\n\n'

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=pieces(), headers={"content-type": "text/event-stream"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    api = OpenAICompatible_API(
        ProviderSettings(api_url="http://127.0.0.1:9/v1/chat/completions"), http_client=client
    )
    stream = api.stream_request(model="m", chat_history=[ChatHistoryItem.user("draw")])
    with pytest.raises(ResponseFormatError, match="longer than 100000 bytes") as caught:
        [piece async for piece in stream]
    assert 100_000 < caught.value.bytes_received < len(body)  # refused as soon as the bound was passed
    await client.aclose()


@pytest.mark.parametrize("keep_content", [True, False])
def test_a_gemini_image_streamed_as_one_8_mib_event_is_read_with_its_usage(keep_content: bool) -> None:
    image = "iVBORw0KGgo" + "A" * (8 * 1024 * 1024)
    chunk = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": image}}],
                }
            }
        ],
        "modelVersion": "gemini-2.5-flash-image",
    }
    last = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "done"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1290, "totalTokenCount": 1297},
    }
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in (chunk, last))
    reader = ContentStreamReader(keep_content=keep_content)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    pieces = [
        piece for start in range(0, len(body), 16384) for piece in reader.feed(body[start : start + 16384])
    ]
    answer = reader.finish(1, len(body))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu < 3.0  # the quadratic decoder: ~6 s
    assert pieces == ["done"] and answer.detail.has_usage
    assert (answer.detail.input_tokens, answer.detail.output_tokens) == (7, 1290)
