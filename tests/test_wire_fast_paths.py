"""The codecs' fast checks agree with their pydantic models: a body the fast check accepts is one the
model accepts, and reading it gives what the model's reading gives. Property-based: outside input."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from statek.limits import MAX_COUNT
from statek.wire.errors import WireFormatError
from statek.wire.openai_chat import (
    OPENAI_PROFILE,
    ChatBody,
    ChatStream,
    Usage,
    _plain_chat_body,
    message_text,
    normalise_usage,
    read_answer,
)
from statek.wire.validation import plain_counts

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-5, max_value=MAX_COUNT + 5)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
_count = st.none() | st.integers(min_value=-3, max_value=MAX_COUNT + 3) | _scalars
_message = st.fixed_dictionaries(
    {},
    optional={
        "role": _json,
        "content": st.none() | st.text(max_size=8) | st.lists(_json, max_size=2) | _json,
        "tool_calls": st.none() | st.lists(_json, max_size=2) | _json,
    },
)
_choice = st.fixed_dictionaries(
    {},
    optional={
        "index": st.none() | st.integers(-2, 3) | _scalars,
        "message": st.none() | _message | _json,
        "delta": st.none() | _message | _json,
        "finish_reason": _json,
    },
)
_usage = st.fixed_dictionaries(
    {},
    optional={"prompt_tokens": _count, "completion_tokens": _count, "total_tokens": _count, "extra": _json},
)
_body = st.fixed_dictionaries(
    {},
    optional={
        "id": _json,
        "model": _json,
        "choices": st.none() | st.lists(_choice | _json, max_size=3) | _json,
        "usage": st.none() | _usage | _json,
    },
)


def _accepted(model: Any, data: Any) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(_body)
def test_a_body_the_fast_check_accepts_is_one_the_model_accepts(body: dict[str, Any]) -> None:
    if _plain_chat_body(body):
        assert _accepted(ChatBody, body)


@settings(max_examples=600, deadline=None)
@given(_usage | _json)
def test_counts_the_fast_check_accepts_are_counts_the_model_accepts(usage: Any) -> None:
    if isinstance(usage, dict) and plain_counts(
        usage, ("prompt_tokens", "completion_tokens", "total_tokens")
    ):
        assert _accepted(Usage, usage)


@settings(max_examples=600, deadline=None)
@given(_body)
def test_reading_an_answer_gives_what_the_models_reading_gives(body: dict[str, Any]) -> None:
    if body.get("error"):
        return
    try:
        answer = read_answer(body)
    except WireFormatError:
        assert not _accepted(ChatBody, body)  # refused exactly when the model refuses
        return
    checked = ChatBody.model_validate(body)
    first = checked.choices[0] if checked.choices else None
    assert answer.finish_reason == (first.finish_reason if first is not None else None)
    assert answer.model == (checked.model or None)


@settings(max_examples=600, deadline=None)
@given(st.lists(_body, min_size=1, max_size=3))
def test_reading_stream_chunks_gives_what_the_models_reading_gives(chunks: list[dict[str, Any]]) -> None:
    """A stream of chunks read with the fast check: model, finish reason and text as the model reads
    them, and a chunk refused exactly when the model refuses it."""
    stream = ChatStream()
    model: str | None = None
    finish: str | None = None
    text: list[str] = []
    for chunk in chunks:
        if chunk.get("error"):
            return
        try:
            stream.add(chunk)
        except WireFormatError:
            assert not _accepted(ChatBody, chunk)
            return
        checked = ChatBody.model_validate(chunk)  # raises if the fast check let through a bad chunk
        model = checked.model or model
        for raw, parsed in zip(chunk.get("choices") or (), checked.choices or ()):
            if parsed.index != 0:
                continue
            finish = parsed.finish_reason or finish
            piece = message_text(raw["delta"].get("content")) if isinstance(raw.get("delta"), dict) else ""
            if piece:
                text.append(piece)
        assert (stream.model, stream.finish_reason, stream.text) == (model, finish, text)


_detail = st.none() | st.integers(min_value=-3, max_value=MAX_COUNT + 3) | _scalars
_details = (
    st.none()
    | _json
    | st.fixed_dictionaries(
        {},
        optional={
            "cached_tokens": _detail,
            "cache_write_tokens": _detail,
            "reasoning_tokens": _detail,
            "audio_tokens": _detail,
            "image_tokens": _detail,
            "cached_tokens_details": st.none()
            | st.fixed_dictionaries({}, optional={"audio_tokens": _detail}),
        },
    )
)
_openai_usage = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": _count,
        "completion_tokens": _count,
        "total_tokens": _count,
        "prompt_tokens_details": _details,
        "completion_tokens_details": _details,
        "cost": _json,
    },
)


@settings(max_examples=800, deadline=None)
@given(_openai_usage)
def test_openai_usage_fast_path_reads_as_the_profile_paths_do(usage: dict[str, Any]) -> None:
    """OpenAI's own profile reads a plain usage without walking its paths; an equal profile that is
    not the same object walks them: both give the same counts, or both refuse."""
    fresh = [
        tuple(tuple(step for step in path) for path in paths)
        for paths in (
            OPENAI_PROFILE.cached_tokens_paths,
            OPENAI_PROFILE.cache_write_paths,
            OPENAI_PROFILE.reasoning_tokens_paths,
        )
    ]
    general = replace(
        OPENAI_PROFILE,
        cached_tokens_paths=fresh[0],
        cache_write_paths=fresh[1],
        reasoning_tokens_paths=fresh[2],
        cost_path=("cost",),  # equal, not the same object
    )
    assert general == OPENAI_PROFILE and general.cost_path is not OPENAI_PROFILE.cost_path

    def read(profile: Any) -> Any:
        try:
            return normalise_usage(usage, profile)
        except WireFormatError:
            return "refused"

    assert read(OPENAI_PROFILE) == read(general)
