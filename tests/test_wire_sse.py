"""The incremental SSE decoder reads a stream the same however its bytes are cut."""

from __future__ import annotations

import json
import resource
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.wire.errors import WireFormatError
from statek.wire.sse import EventTooLargeError, SSEDecoder, iter_sse_json

_payloads = st.lists(
    st.dictionaries(st.sampled_from(["a", "text", "é", "\u2028"]), st.text(max_size=8), max_size=3),
    min_size=1,
    max_size=6,
)


def _stream(payloads: list[dict[str, str]], newline: bytes) -> bytes:
    out = b": keep-alive comment" + newline + newline
    for n, payload in enumerate(payloads):
        out += b"event: e%d" % n + newline
        out += b"data: " + json.dumps(payload, ensure_ascii=False).encode() + newline + newline
    return out + b"data: [DONE]" + newline + newline


@given(
    payloads=_payloads,
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_split_gives_the_same_events(
    payloads: list[dict[str, str]], newline: bytes, cuts: list[int]
) -> None:
    body = _stream(payloads, newline)
    decoder = SSEDecoder()
    events = []
    start = 0
    for cut in sorted({c % (len(body) + 1) for c in cuts}) + [len(body)]:
        events += decoder.feed(body[start:cut])
        start = cut
    events += decoder.close()
    assert events == [(f"e{n}", p) for n, p in enumerate(payloads)]
    assert list(iter_sse_json(body)) == events


def test_multi_line_data_is_joined_and_an_unterminated_last_event_counts() -> None:
    body = b'data: {"a":\ndata: 1}\n\ndata: {"b": 2}'
    assert list(iter_sse_json(body)) == [(None, {"a": 1}), (None, {"b": 2})]


def test_data_that_is_not_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        SSEDecoder().feed(b"data: {oops\n\n")


# ----------------------------------------------------------------------------- bounds and cost
def _feed_in_pieces(decoder: SSEDecoder, body: bytes, size: int) -> list[tuple[str | None, object]]:
    events = []
    for start in range(0, len(body), size):
        events += decoder.feed(body[start : start + size])
    return events + decoder.close()


@given(
    payloads=_payloads,
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    size=st.integers(min_value=1, max_value=300),
)
def test_pieces_of_every_size_give_the_same_events(
    payloads: list[dict[str, str]], newline: bytes, size: int
) -> None:
    body = _stream(payloads, newline)
    assert _feed_in_pieces(SSEDecoder(), body, size) == list(iter_sse_json(body))


@pytest.mark.parametrize("size", [1, 7, 4096, 10_000])
def test_a_line_over_the_bound_raises_a_typed_error_before_more_is_held(size: int) -> None:
    decoder = SSEDecoder(max_event_bytes=5_000)
    fed = 0
    with pytest.raises(EventTooLargeError, match="longer than 5000 bytes"):
        for _ in range(100_000):  # a stream with no line end, read until the decoder refuses it
            decoder.feed(b"x" * size)
            fed += size
    assert fed <= 5_000  # refused at the piece that went over
    assert isinstance(EventTooLargeError("x"), WireFormatError)


def test_an_event_of_many_data_lines_over_the_bound_raises() -> None:
    with pytest.raises(EventTooLargeError, match="event"):
        SSEDecoder(max_event_bytes=5_000).feed(b"data: 0123456789\n" * 1_000)


def test_an_event_just_under_the_bound_is_read() -> None:
    line = b'data: "' + b"A" * 4_000 + b'"\n\n'
    assert _feed_in_pieces(SSEDecoder(max_event_bytes=5_000), line, 3) == [(None, "A" * 4_000)]


@settings(max_examples=25, deadline=None)
@given(size=st.integers(min_value=1, max_value=64 * 1024), crlf=st.booleans())
def test_one_long_line_costs_linear_cpu_and_bounded_memory_whatever_the_pieces(size: int, crlf: bool) -> None:
    """A 1 MiB base64 event in pieces of any size: CPU (measured with getrusage, not wall time) and
    traced memory stay within a bound that a quadratic reader (the old one re-split the whole line at
    every piece: up to 10^11 bytes copied here) or one keeping copies per piece would break."""
    end = b"\r\n\r\n" if crlf else b"\n\n"
    body = b'data: {"image":"' + b"QUJD" * (256 * 1024) + b'"}' + end
    pieces = [body[start : start + max(size, 256)] for start in range(0, len(body), max(size, 256))]
    decoder = SSEDecoder()
    tracemalloc.start()
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    try:
        events = [event for piece in pieces for event in decoder.feed(piece)] + decoder.close()
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(events) == 1 and len(events[0][1]["image"]) == 1024 * 1024
    assert cpu < 2.0
    assert peak < 8 * len(body)


def test_an_event_nested_deeper_than_the_stack_is_a_wire_format_error() -> None:
    decoder = SSEDecoder()
    with pytest.raises(WireFormatError, match="nested too deeply"):
        decoder.feed(b"data: " + b"[" * 200_000 + b"\n\n")
    unfinished = SSEDecoder()
    assert unfinished.feed(b"data: " + b"[" * 200_000) == []
    with pytest.raises(WireFormatError, match="nested too deeply"):
        unfinished.close()
