"""parse_json is json.loads: same value, same exception, for any input (hypothesis)."""

from __future__ import annotations

import codecs
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from statek.wire.json_text import parse_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le")


def _outcome(parse: Any, data: Any) -> tuple[str, Any]:
    try:
        return "value", parse(data)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@st.composite
def documents(draw: st.DrawFn) -> bytes | str:
    """JSON texts as they come, and broken: whitespace around, other encodings, cut, spliced."""
    text = json.dumps(draw(JSON_VALUES), ensure_ascii=draw(st.booleans()))
    text = (
        draw(st.sampled_from(["", " ", "\n", "\t "]))
        + text
        + draw(st.sampled_from(["", " ", "\r\n", "x", "}"]))
    )
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=3)) + text[cut:]
    if draw(st.booleans()):
        return text
    data = text.encode(draw(st.sampled_from(ENCODINGS)), "surrogatepass")
    if draw(st.booleans()):  # a byte changed: invalid UTF-8, a NUL, ...
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


@settings(max_examples=600)
@given(documents())
def test_parse_json_is_json_loads(data: bytes | str) -> None:
    assert _outcome(parse_json, data) == _outcome(json.loads, data)


@given(st.binary(max_size=40))
def test_any_bytes(data: bytes) -> None:
    assert _outcome(parse_json, data) == _outcome(json.loads, data)


def test_the_edge_cases_by_name() -> None:
    for data in (
        b"{}",
        b"[1]",
        b"{",
        b"{}\n",
        b"{} {}",
        b'{"a":"\xed\xa0\x80"}',  # a lone surrogate, which json.loads lets through (surrogatepass)
        b"{\x00",
        codecs.BOM_UTF8 + b"{}",
        "{}".encode("utf-16-le"),
        bytearray(b'{"a":1}'),
        "[" * 100_000,
        b"[" * 100_000,
    ):
        assert _outcome(parse_json, data) == _outcome(json.loads, data), data[:20]
