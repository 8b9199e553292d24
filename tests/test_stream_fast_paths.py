"""The streamed-answer fast paths read every stream as the general paths do: the SSE decoder's
whole-event reading against a line-at-a-time reading of the event-stream rules, the chat stream's
common-chunk reading against its general (validating) reading, the plain finish against the general
one. Property-based, hostile streams included: outside input."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from statek.limits import MAX_COUNT
from statek.wire.answer import Answer
from statek.wire.errors import WireFormatError
from statek.wire.openai_chat import (
    OPENAI_PROFILE,
    ChatCompletionsProfile,
    ChatStream,
    ChatStreamReader,
    answer_detail,
    message_text,
    tool_calls,
)
from statek.wire.sse import EventTooLargeError, SSEDecoder


class _LineByLine:
    """The event-stream rules read a line at a time, with the decoder's bounds: a line held across
    pieces may be at most ``limit`` bytes, an event's data (its decoded data lines, one more for
    each line end) less than that. What :class:`SSEDecoder` did before it read whole events."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = b""  # the unfinished line, begun in an earlier piece
        self.after_cr = False
        self.event: str | None = None
        self.data: list[str] = []
        self.size = 0

    def feed(self, piece: bytes) -> list[tuple[str | None, Any]]:
        events: list[tuple[str | None, Any]] = []
        if not piece:
            return events
        if self.after_cr:
            self.after_cr = False
            piece = piece[1:] if piece[:1] == b"\n" else piece
        while piece:
            ends = [at for at in (piece.find(b"\r"), piece.find(b"\n")) if at >= 0]
            if not ends:
                self.held += piece
                if len(self.held) > self.limit:
                    raise EventTooLargeError("line")
                break
            end = min(ends)
            line, carried = self.held + piece[:end], bool(self.held)
            self.held = b""
            if carried and len(line) > self.limit:
                raise EventTooLargeError("line")
            if piece[end : end + 2] == b"\r\n":
                piece = piece[end + 2 :]
            else:
                self.after_cr = piece[end:] == b"\r"
                piece = piece[end + 1 :]
            self.line(line, events)
        return events

    def close(self) -> list[tuple[str | None, Any]]:
        events: list[tuple[str | None, Any]] = []
        if self.held:
            self.line(self.held, events)
            self.held = b""
        self.dispatch(events)
        return events

    def line(self, line: bytes, events: list[tuple[str | None, Any]]) -> None:
        if not line:
            self.dispatch(events)
            return
        name, _, value = line.partition(b":")
        value = value[1:] if value[:1] == b" " else value
        if line[:1] == b":" or name not in (b"data", b"event"):
            return
        text = value.decode("utf-8")
        if name == b"event":
            self.event = text
        else:
            self.size += len(text) + 1
            if self.size > self.limit:
                raise EventTooLargeError("event")
            self.data.append(text)

    def dispatch(self, events: list[tuple[str | None, Any]]) -> None:
        data, event = self.data, self.event
        self.event, self.data, self.size = None, [], 0
        if data and data != ["[DONE]"]:
            events.append((event, json.loads("\n".join(data))))


def _read(decoder: Any, pieces: list[bytes]) -> tuple[list[Any], str | None]:
    """The events read from ``pieces`` and how the reading ended: ``None`` (whole), ``"too large"`` or
    ``"unreadable"``. A piece that fails gives none of its events."""
    events: list[Any] = []
    try:
        for piece in pieces:
            events += decoder.feed(piece)
        events += decoder.close()
    except EventTooLargeError:
        return events, "too large"
    except ValueError:
        return events, "unreadable"
    return events, None


_lines = st.sampled_from(
    [
        b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}',
        b'data:{"a":1}',
        b'data:  {"b": 2}',
        b"data: [DONE]",
        b"data: [1,",
        b"data: 2]",
        b"data: ",
        b"data",
        b"data: {oops",
        b'data: "\xc3\xa9\xe2\x80\xa8"',
        b'data: "\xff"',
        b": keep-alive \xff",
        b"event: delta",
        b"event",
        b"id: 7",
        b"retry: 10",
        b"datax: 1",
        b"",
        b'data: {"long":"' + b"x" * 60 + b'"}',
    ]
)


@settings(max_examples=600, deadline=None)
@given(
    lines=st.lists(
        st.tuples(_lines, st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n"])), max_size=14
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=8),
    limit=st.sampled_from([16, 40, 90, 10_000]),
    unterminated=st.booleans(),
)
def test_the_decoder_reads_every_stream_as_the_line_at_a_time_rules_do(
    lines: list[tuple[bytes, bytes]], cuts: list[int], limit: int, unterminated: bool
) -> None:
    body = b"".join(line + end for line, end in lines)
    if unterminated:
        body += b'data: {"last": true}'
    bounds = sorted({cut % (len(body) + 1) for cut in cuts})
    pieces = [body[start:end] for start, end in zip([0, *bounds], [*bounds, len(body)])]
    expected, failure = _read(_LineByLine(limit), pieces)
    events, fast_failure = _read(SSEDecoder(max_event_bytes=limit), pieces)
    assert fast_failure == failure
    if failure is None:
        assert events == expected
    else:  # the decoder gives events a piece at a time: those before the failing piece
        assert events == expected[: len(events)]


# ----------------------------------------------------------------------------- chat chunks
_labels = st.sampled_from(["m-1", "m-2", "", "default", "FLEX", "x" * 50, None, 5, ["m"]])
_counts = (
    st.none() | st.integers(min_value=-2, max_value=MAX_COUNT + 2) | st.sampled_from([1.0, 2.5, "3", True])
)
_usages = (
    st.none()
    | st.sampled_from([5, "u", [1]])
    | st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": _counts,
            "completion_tokens": _counts,
            "total_tokens": _counts,
            "prompt_tokens_details": st.none()
            | st.fixed_dictionaries({}, optional={"cached_tokens": _counts}),
            "completion_tokens_details": st.none()
            | st.fixed_dictionaries({}, optional={"reasoning_tokens": _counts, "audio_tokens": _counts}),
            "cost": st.sampled_from([0.5, "x", None]),
            "search_context_size": st.sampled_from(["low", "HIGH", 3]),
        },
    )
)
_plain_count = st.none() | st.integers(min_value=0, max_value=5000)
_plain_usages = st.fixed_dictionaries(
    {
        "prompt_tokens": _plain_count,
        "completion_tokens": _plain_count,
        "total_tokens": _plain_count,
        "completion_tokens_details": st.fixed_dictionaries({}, optional={"reasoning_tokens": _plain_count}),
    },
    optional={
        "prompt_tokens_details": st.fixed_dictionaries({}, optional={"cached_tokens": _plain_count}),
        "search_context_size": st.sampled_from(["low", "HIGH", 3, ""]),
    },
)
_fragment = st.fixed_dictionaries(
    {},
    optional={
        "index": st.sampled_from([0, 1, "a"]),
        "id": st.sampled_from(["call_1", None]),
        "function": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["f", None]),
                "arguments": st.sampled_from(['{"a":', "1}", {}]),
            },
        ),
    },
)
_deltas = (
    st.none()
    | st.sampled_from(["text", 3, []])
    | st.fixed_dictionaries(
        {},
        optional={
            "role": st.just("assistant"),
            "content": st.none()
            | st.text(max_size=6)
            | st.sampled_from([5, {"text": "x"}, [{"type": "text", "text": "part"}, {"type": "image"}]]),
            "tool_calls": st.none() | st.lists(_fragment, max_size=2) | st.just("calls"),
            "refusal": st.none() | st.text(max_size=4),
        },
    )
)
_choices = st.fixed_dictionaries(
    {},
    optional={
        "index": st.sampled_from([0, 0.0, False, True, 1, None, "0", -0.0]),
        "delta": _deltas,
        "message": st.none() | st.sampled_from(["m", {"content": "whole"}]),
        "finish_reason": st.none() | st.sampled_from(["stop", "length", "", 7, ["stop"]]),
        "logprobs": st.none(),
    },
)
_chunks = st.sampled_from([None, 3, "chunk", [1]]) | st.fixed_dictionaries(
    {"choices": st.lists(_choices, max_size=2) | st.sampled_from([None, "c", {"index": 0}])},
    optional={
        "id": _labels,
        "model": _labels,
        "service_tier": _labels,
        "usage": _usages,
        "error": st.sampled_from([None, "", {"message": "overloaded"}, 0]),
        "object": st.just("chat.completion.chunk"),
    },
)
_common = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["chatcmpl-1", "chatcmpl-2"]),
        "model": st.sampled_from(["m-1", "m-2", ""]),
        "choices": st.lists(
            st.fixed_dictionaries(
                {
                    "index": st.just(0),
                    "delta": st.fixed_dictionaries({"content": st.none() | st.text(max_size=6)}),
                },
                optional={"finish_reason": st.none() | st.just("stop")},
            ),
            max_size=1,
        ),
    },
    optional={"usage": st.none() | _usages, "service_tier": st.sampled_from(["default", "priority", None])},
)
_hostile = st.sampled_from(
    [
        None,
        0,
        1,
        0.0,
        False,
        True,
        "",
        "x",
        "0",
        "stop",
        [],
        [1],
        {},
        {"content": "c"},
        {"message": "overloaded"},
        {"prompt_tokens": 3},
        [{"type": "text", "text": "part"}],
        [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}],
    ]
)
_PLACES = {
    "chunk": ("error", "usage", "choices", "model", "id", "service_tier"),
    "choice": ("index", "message", "delta", "finish_reason"),
    "delta": ("content", "tool_calls", "refusal"),
}


@st.composite
def _near_common(draw: st.DrawFn) -> Any:
    """A common chunk with one field set to a value it may not take (or one added)."""
    chunk = json.loads(json.dumps(draw(_common)))
    place = draw(st.sampled_from(sorted(_PLACES)))
    key = draw(st.sampled_from(_PLACES[place]))
    target = chunk
    if place != "chunk":
        if not chunk["choices"]:
            return chunk
        target = chunk["choices"][0] if place == "choice" else chunk["choices"][0]["delta"]
    target[key] = draw(_hostile)
    return chunk


_streams = st.lists(st.one_of(_common, _near_common(), _near_common(), _chunks), max_size=8)
_STATE = ("text", "calls", "finish_reason", "model", "usage", "response_id", "service_tier")


def _state(stream: ChatStream) -> tuple[Any, ...]:
    return tuple(getattr(stream, name) for name in _STATE)


@settings(max_examples=800, deadline=None)
@given(chunks=_streams, keep_content=st.booleans(), groups=st.lists(st.integers(1, 4), max_size=8))
def test_the_common_chunk_reading_gives_what_the_general_reading_gives(
    chunks: list[Any], keep_content: bool, groups: list[int]
) -> None:
    """Chunks taken a feed at a time (fast path first) end in the state, with the pieces, that each
    chunk read the general way gives; a chunk is refused (with the same error) exactly when the
    general reading refuses it."""
    fast, general = ChatStream(keep_content=keep_content), ChatStream(keep_content=keep_content)
    position = 0
    for size in [*groups, len(chunks)]:
        feed = chunks[position : position + size]
        position += size
        expected: list[str] = []
        failure: type[Exception] | None = None
        for chunk in feed:
            before = len(general.text)
            try:
                general._add(chunk)
            except WireFormatError as exc:
                failure = type(exc)
                break
            expected += general.text[before:]
        try:
            pieces = fast.take([(None, chunk) for chunk in feed])
        except WireFormatError as exc:
            assert type(exc) is failure
            assert _state(fast) == _state(general)
            return
        assert failure is None
        assert pieces == expected
        assert _state(fast) == _state(general)
        if position >= len(chunks):
            return


def _general_finish(reader: ChatStreamReader, profile: ChatCompletionsProfile) -> Answer | str:
    try:
        answer = reader._stream.answer()
        detail = answer_detail(answer, profile, 10, 20)
        return Answer(
            message_text(answer.message.get("content")), tool_calls(answer.message.get("tool_calls")), detail
        )
    except WireFormatError as exc:
        return type(exc).__name__


@settings(max_examples=600, deadline=None)
@example(  # reasoning outside the completion count: no plain reading for such a profile
    chunks=[],
    profile=replace(OPENAI_PROFILE, reasoning_in_output=False),
    keep_content=True,
    usage={"prompt_tokens": 1, "completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": 3}},
)
@given(
    chunks=st.lists(_common | _near_common(), max_size=4),
    profile=st.sampled_from(
        [
            OPENAI_PROFILE,
            replace(OPENAI_PROFILE, cost_path=None),
            replace(OPENAI_PROFILE, reasoning_in_output=False),
            replace(OPENAI_PROFILE, stream_usage_paths=(("usage",), ("x_groq", "usage"))),
        ]
    ),
    keep_content=st.booleans(),
    usage=_plain_usages | _usages,
)
def test_a_streams_plain_finish_gives_what_the_general_finish_gives(
    chunks: list[Any], profile: ChatCompletionsProfile, keep_content: bool, usage: Any
) -> None:
    chunks = [*chunks, {"id": "chatcmpl-1", "choices": [], "usage": usage}]
    body = (
        b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"
    )
    reader = ChatStreamReader(profile, keep_content=keep_content)
    try:
        reader.feed(body)
    except WireFormatError:
        return  # the stream failed: nothing is finished
    expected = _general_finish(reader, profile)
    try:
        answer: Answer | str = reader.finish(10, 20)
    except WireFormatError as exc:
        answer = type(exc).__name__
    assert answer == expected


def test_an_event_begun_in_an_earlier_piece_is_ended_by_the_next_one() -> None:
    """A piece whose first block ends an event earlier pieces began (data lines or its name) reads
    that block line by line, not as a whole event of its own."""
    for pieces, expected in (
        ([b"data: [1,\n", b"data: 2]\n\ndata: 3\n\n"], [(None, [1, 2]), (None, 3)]),
        ([b"event: delta\n", b"data: 1\n\n"], [("delta", 1)]),
        ([b"event: delta\r", b"\ndata: 1\r\n\r\n"], [("delta", 1)]),
    ):
        assert _read(SSEDecoder(), pieces) == (expected, None)
        assert _read(_LineByLine(1000), pieces) == (expected, None)
