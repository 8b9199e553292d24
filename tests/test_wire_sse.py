"""The incremental SSE decoder reads a stream the same however its bytes are cut."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statek.wire.sse import SSEDecoder, iter_sse_json

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
