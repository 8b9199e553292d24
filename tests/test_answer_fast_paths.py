"""The answer and pricing side's fast paths build what the general paths build: the plain detail a
codec builds by position, the pricing path's detail built once with its cost. Property-based where
the input is outside input (usages) or a price (rates)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from statek.types import CallDetail
from statek.wire.openai_chat import OPENAI_PROFILE, _plain_detail

_label = st.none() | st.text(max_size=6)
_plain_usage = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": st.none() | st.integers(0, 10**6),
        "completion_tokens": st.none() | st.integers(0, 10**6),
        "total_tokens": st.none() | st.integers(0, 3 * 10**6),
        "prompt_tokens_details": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "cached_tokens": st.none() | st.integers(0, 10**6),
                "cache_write_tokens": st.none() | st.integers(0, 10**6),
                "audio_tokens": st.just(0),
            },
        ),
        "completion_tokens_details": st.none()
        | st.fixed_dictionaries(
            {},
            optional={"reasoning_tokens": st.none() | st.integers(0, 10**6), "audio_tokens": st.just(0)},
        ),
        "search_context_size": st.sampled_from(["low", "HIGH", "x y"]),
    },
)


@settings(max_examples=400, deadline=None)
@given(_plain_usage, _label, _label, _label, _label, st.integers(0, 10**6), st.integers(0, 10**6))
def test_the_plain_detail_is_the_detail_its_keywords_make(
    usage: Any, tier: Any, model: Any, finish: Any, response_id: Any, sent: int, received: int
) -> None:
    """The plain detail, built by position, is the CallDetail its fields name (so a field added to
    or moved in CallDetail cannot shift it), with the counts the general usage reading gives."""
    detail = _plain_detail(usage, OPENAI_PROFILE, tier, model, finish, response_id, sent, received)
    assert detail is not None
    assert type(detail) is CallDetail
    assert len(detail) == len(CallDetail._fields)
    u = usage or {}
    prompt = u.get("prompt_tokens_details") or {}
    completion = u.get("completion_tokens_details") or {}
    reasoning = completion.get("reasoning_tokens")
    rest = (u.get("total_tokens") or 0) - (u.get("prompt_tokens") or 0) - (u.get("completion_tokens") or 0)
    if reasoning is None and rest > 0:
        reasoning, output = rest, (u.get("completion_tokens") or 0) + rest
    else:
        output = u.get("completion_tokens") or 0
    if tier is None and usage is not None and "search_context_size" in usage:
        tier = {"low": "low", "HIGH": "high"}.get(usage["search_context_size"])
    assert detail == CallDetail(
        total_bytes_sent=sent,
        total_bytes_received=received,
        cost=None,
        input_tokens=u.get("prompt_tokens") or 0,
        output_tokens=output,
        cached_tokens=prompt.get("cached_tokens") or 0,
        cache_write_tokens=prompt.get("cache_write_tokens") or 0,
        reasoning_tokens=reasoning or 0,
        response_model=model,
        finish_reason=finish,
        has_usage=usage is not None,
        response_id=response_id,
        service_tier=tier,
    )
