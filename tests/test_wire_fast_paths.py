"""The codecs' fast checks agree with their pydantic models: a body the fast check accepts is one the
model accepts, and reading it gives what the model's reading gives. Property-based: outside input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from statek.limits import MAX_COUNT
from statek.wire.billing import _TIER_CHARS, tier_label
from statek.wire.errors import WireFormatError
from statek.wire.openai_chat import (
    OPENAI_PROFILE,
    ChatBody,
    ChatStream,
    Usage,
    _openai_usage,
    _plain_chat_body,
    _plain_whole,
    _profile_usage,
    answer_detail,
    message_text,
    normalise_usage,
    read_answer,
    read_whole,
    tool_calls,
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
_openai_usages = st.fixed_dictionaries(
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
@given(_openai_usages)
def test_openai_usage_fast_path_reads_as_the_profile_paths_do(usage: dict[str, Any]) -> None:
    """OpenAI's own profile reads a plain usage without walking its paths: what the fast reading
    accepts, it reads as the general reading (the profile's paths walked) does."""

    def general(profile: Any) -> Any:
        try:
            return _profile_usage(usage, profile)
        except WireFormatError:
            return "refused"

    fast = _openai_usage(usage)
    if fast is not None:
        assert fast == general(OPENAI_PROFILE)
    try:
        assert normalise_usage(usage, OPENAI_PROFILE) == general(OPENAI_PROFILE)
    except WireFormatError:
        assert general(OPENAI_PROFILE) == "refused"


def test_a_profile_reads_usage_like_openai_only_with_openais_paths() -> None:
    assert OPENAI_PROFILE.usage_like_openai
    assert replace(OPENAI_PROFILE, max_tokens_field="max_completion_tokens").usage_like_openai
    assert not replace(OPENAI_PROFILE, reasoning_in_output=False).usage_like_openai
    assert not replace(OPENAI_PROFILE, cost_path=("usage", "cost")).usage_like_openai
    assert not replace(OPENAI_PROFILE, cached_tokens_paths=(("cached_tokens",),)).usage_like_openai


_whole_usage = (
    st.none()
    | _json
    | _openai_usages
    | st.fixed_dictionaries(
        {"prompt_tokens": st.integers(0, 5000), "completion_tokens": st.integers(0, 500)},
        optional={
            "total_tokens": st.integers(0, 6000),
            "prompt_tokens_details": _details,
            "completion_tokens_details": _details,
            "search_context_size": _json | st.sampled_from(["low", "HIGH", " medium "]),
            "cost": _json,
        },
    )
)
_whole_message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.just("assistant") | _json,
        "content": st.none() | st.text(max_size=8) | st.lists(_json, max_size=2) | _json,
        "tool_calls": st.none() | st.just([]) | st.lists(_json, max_size=2) | _json,
    },
)
_whole_choice = st.fixed_dictionaries(
    {},
    optional={
        "index": st.none() | st.integers(-2, 3) | _scalars,
        "message": _whole_message | _json,
        "delta": st.none() | _json,
        "finish_reason": st.sampled_from(["stop", "length"]) | _json,
    },
)
_whole_body = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=300) | _json,
        "model": st.text(max_size=12) | _json,
        "choices": st.lists(_whole_choice, min_size=1, max_size=2) | _json,
        "usage": _whole_usage,
        "service_tier": st.sampled_from(["default", "FLEX", "on_demand", "bad tier!", ""]) | _json,
        "error": st.none() | _json,
    },
)
_plain_count = st.none() | st.integers(0, 5000)
_plain_details = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "cached_tokens": _plain_count,
        "cache_write_tokens": _plain_count,
        "reasoning_tokens": _plain_count,
        "audio_tokens": st.just(0) | _detail,
        "image_tokens": st.just(0) | _detail,
        "accepted_prediction_tokens": _plain_count,
    },
)
_likely_body = st.fixed_dictionaries(
    {
        "choices": st.tuples(
            st.fixed_dictionaries(
                {
                    "message": st.fixed_dictionaries(
                        {"role": st.just("assistant")},
                        optional={
                            "content": st.none() | st.text(max_size=8) | _json,
                            "tool_calls": st.just([]) | _json,
                        },
                    )
                },
                optional={
                    "index": st.just(0) | _scalars,
                    "finish_reason": st.sampled_from(["stop", "length"]) | _json,
                },
            )
        ).map(list),
        "usage": st.none()
        | st.fixed_dictionaries(
            {"prompt_tokens": _plain_count, "completion_tokens": _plain_count},
            optional={
                "total_tokens": _plain_count | _count,
                "prompt_tokens_details": _plain_details | _details,
                "completion_tokens_details": _plain_details | _details,
                "search_context_size": st.sampled_from(["low", "HIGH", " medium ", "x y"]) | _json,
            },
        ),
    },
    optional={
        "id": st.text(max_size=300) | _json,
        "model": st.text(max_size=12) | _json,
        "service_tier": st.sampled_from(["default", "FLEX", "on_demand", "bad tier!", ""]) | _json,
        "error": st.none() | _json,
    },
)
_profiles = st.sampled_from(
    [
        OPENAI_PROFILE,
        replace(OPENAI_PROFILE, max_tokens_field="max_completion_tokens"),
        replace(OPENAI_PROFILE, reasoning_in_output=False),
        replace(OPENAI_PROFILE, cost_path=("usage", "cost")),
    ]
)


def _read_generally(body: Any, profile: Any) -> Any:
    """:func:`read_whole` without its fast path: the codec's validating entry points, one by one."""
    try:
        answer = read_answer(body)
        detail = answer_detail(answer, profile, 11, 22)
        return (
            message_text(answer.message.get("content")),
            tool_calls(answer.message.get("tool_calls")),
            detail,
        )
    except WireFormatError as exc:
        return type(exc)


@settings(max_examples=1500, deadline=None)
@given(_likely_body | _whole_body, _profiles)
def test_the_whole_answer_fast_path_reads_as_the_general_path(body: dict[str, Any], profile: Any) -> None:
    """A whole answer the fast path takes (hostile ones included) reads exactly as the validating
    path reads it; one it declines is read by that path; it never raises."""
    fast = _plain_whole(body, profile, 11, 22)
    general = _read_generally(body, profile)
    if fast is not None:
        assert tuple(fast) == general
    try:
        whole = tuple(read_whole(body, profile, 11, 22))
    except WireFormatError as exc:
        whole = type(exc)
    assert whole == general


def test_the_whole_answer_fast_path_takes_real_openai_answers() -> None:
    """Recorded OpenAI answers (details with ``audio_tokens: 0``, ``service_tier``) take the fast path."""
    for name in ("openai_cache_read", "openai_o3mini_reasoning", "openai_text_aisdk"):
        body = json.loads((Path(__file__).parent / "recordings" / f"{name}.json").read_text())
        fast = _plain_whole(body, OPENAI_PROFILE, 11, 22)
        assert fast is not None, name
        assert tuple(fast) == _read_generally(body, OPENAI_PROFILE)


def _old_tier_chars(label: str) -> bool:
    return bool(label) and all(c.isalnum() or c in "_-" for c in label)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=12) | st.text(alphabet=st.characters(), max_size=4))
def test_tier_labels_accept_the_characters_str_isalnum_does(label: str) -> None:
    assert (_TIER_CHARS.fullmatch(label) is not None) == _old_tier_chars(label)
    if label and len(label) <= 40:
        expected = label.strip().lower()
        assert tier_label(label) in (
            (None,) if not _old_tier_chars(expected) else (expected, "default", "flex", "priority", None)
        )
