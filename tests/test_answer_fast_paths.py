"""The answer and pricing side's fast paths build what the general paths build: the plain detail a
codec builds by position, the pricing path's detail built once with its cost. Property-based where
the input is outside input (usages) or a price (rates)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.limits import COUNT_FIELDS, MAX_COST_USD, MAX_COUNT, in_bounds, problems
from statek.metering.cost import Prices, compile_rate
from statek.metering.index import FROM_PROVIDER, PriceTable
from statek.metering.records import PriceRow
from statek.metering.registry import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.telemetry.pricing import checked, priced
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


# ----------------------------------------------------------------------------- checking and pricing
_count = (
    st.integers(-2, 3)
    | st.integers(MAX_COUNT - 1, MAX_COUNT + 1)
    | st.just(0)
    | st.booleans()
    | st.floats(0, 10)
    | st.none()
)
_cost = (
    st.none()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.sampled_from([Decimal(0), MAX_COST_USD, MAX_COST_USD + 1, Decimal("-0.1")])
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_count, min_size=len(COUNT_FIELDS), max_size=len(COUNT_FIELDS)),
    st.lists(_cost, min_size=3, max_size=3),
)
def test_in_bounds_is_true_exactly_when_no_problem_is_found(counts: list[int], costs: list[Any]) -> None:
    """The hot check agrees with the one that names the problems (bools, floats and None counts
    included); ``checked`` returns the same object exactly when nothing is wrong."""
    detail = CallDetail(0, 0, None)._replace(
        **dict(zip(COUNT_FIELDS, counts)), **dict(zip(("cost", "priced_cost", "explained_cost"), costs))
    )
    assert in_bounds(detail) == (not problems(detail))
    assert (checked("p", "m", detail) is detail) == (not problems(detail))


@pytest.fixture
def own_registry() -> Iterator[PriceRegistry]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    yield registry
    set_default_registry(previous)


@pytest.mark.usefixtures("own_registry")
def test_the_priced_copy_replaces_priced_cost_and_cost_status_only() -> None:
    set_model_pricing("OPENAI", "fast-path-model", "0.15", "0.60", "0.075")
    detail = CallDetail(1, 2, None, 1200, 3, 1024, response_model="r", response_id="i", service_tier="flex")
    detail = detail._replace(service_tier=None)
    stats, cost = priced("OPENAI", "fast-path-model", detail, 1_700_000_000.0, FROM_PROVIDER)
    assert cost.status == "calculated"
    assert stats == detail._replace(priced_cost=cost.amount, cost_status="calculated")
    assert type(stats) is CallDetail


def test_a_start_in_epoch_seconds_picks_the_price_its_datetime_picks() -> None:
    """Dated rows: a call's start given as epoch seconds is priced as the same start given as a
    datetime, at the boundary of a price change too (rounded to a datetime's microseconds)."""
    change = datetime(2026, 3, 1, tzinfo=timezone.utc)
    rows = [
        PriceRow("openai", "", "dated-model", Decimal(1), None, Decimal(2)),
        PriceRow("openai", "", "dated-model", Decimal(3), None, Decimal(4), valid_from=change),
    ]
    table = PriceTable.from_rows(rows)
    detail = CallDetail(0, 0, None, 1000, 10)
    boundary = change.timestamp()
    for started in (boundary - 1, boundary - 4e-7, boundary - 1e-9, boundary, boundary + 2e-7, boundary + 9):
        as_datetime = datetime.fromtimestamp(started, timezone.utc)
        assert table.price_call("openai", "dated-model", detail, started) == table.price_call(
            "openai", "dated-model", detail, as_datetime
        )


_price = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
_tokens = st.integers(0, 10**7)


@settings(max_examples=500, deadline=None)
@given(
    st.builds(
        Prices,
        input=_price,
        output=_price,
        cached=st.none() | _price,
        cache_write_5m=st.none() | _price,
        cache_write_1h=st.none() | _price,
        reasoning=st.none() | _price,
    ),
    _tokens,
    _tokens,
    _tokens,
    _tokens,
    _tokens,
    _tokens,
)
def test_a_plain_rates_cost_is_the_general_cost(
    prices: Prices, inp: int, cached: int, write: int, write_1h: int, out: int, reasoning: int
) -> None:
    """A rate without tiers, fees, modality, search or own reasoning price takes a formula of its
    own: exactly the general formula's Decimal, on any counts (inconsistent ones included)."""
    rate = compile_rate(prices)
    general = copy.copy(rate)
    general.plain = False
    assert rate.plain == (prices.reasoning is None or prices.reasoning == prices.output)
    amount = rate.cost(inp, cached, write, write_1h, out, reasoning)
    expected = general.cost(inp, cached, write, write_1h, out, reasoning)
    assert amount == expected
    assert amount.as_tuple() == expected.as_tuple()  # the same digits and exponent, not only value
