"""Budgets, property-based: outside input (limits, environment values, request bodies) and the ledger's
reservation arithmetic under any order of reservations and settlements."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek import Budget, BudgetExceededError
from statek.exceptions import ConfigurationError
from statek.executors.budget import BudgetLedger, Reservation, reserve
from statek.executors.estimate import (
    CHARS_PER_TOKEN,
    DEFAULT_OUTPUT_TOKENS,
    CallEstimate,
    body_units,
    estimate_request_body,
)
from statek.executors.output_limits import UNKNOWN_MAX_OUTPUT
from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.settings import BUDGET_CALLS_ENV, BUDGET_UNPRICED_ENV, BUDGET_USD_ENV, MAX_TOKEN_USAGE_ENV

amounts = st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=6)


@given(amounts)
def test_a_usd_limit_in_any_spelling_is_that_exact_amount(amount: Decimal) -> None:
    for spelling in (amount, str(amount), f"${amount}", f"  {amount} "):
        assert Budget(usd=spelling).usd == amount


@given(st.text(max_size=30))
def test_any_text_as_a_limit_is_a_limit_or_one_clear_configuration_error(text: str) -> None:
    for build in (lambda: Budget(usd=text), lambda: Budget(tokens=text), lambda: Budget(unpriced=text)):  # type: ignore[arg-type]
        try:
            budget = build()
        except ConfigurationError as exc:
            assert "\n" not in str(exc) and "Budget(" in str(exc)
        else:
            assert budget.usd is None or (budget.usd.is_finite() and budget.usd >= 0)
            assert budget.tokens is None or budget.tokens >= 0


@given(
    st.dictionaries(
        st.sampled_from([BUDGET_USD_ENV, BUDGET_CALLS_ENV, MAX_TOKEN_USAGE_ENV, BUDGET_UNPRICED_ENV]),
        st.one_of(st.text(max_size=12), st.integers(-5, 10**12).map(str)),
    )
)
def test_environment_values_give_a_budget_or_an_error_naming_the_variable(env: dict[str, str]) -> None:
    try:
        budget = Budget.from_env(env)
    except ConfigurationError as exc:
        assert str(exc).split(" ", 1)[0] in env
    else:
        raw = env.get(MAX_TOKEN_USAGE_ENV, "").strip()
        assert budget.approx_tokens == (int(raw.replace("_", "")) if raw else None)


@given(st.binary(max_size=2000))
def test_any_request_body_gets_an_estimate(body: bytes) -> None:
    estimate = estimate_request_body("OPENAI", "unlisted-model", body)
    # Bytes, plus each non-ASCII character's bytes beyond its first: never fewer than the bytes.
    assert estimate.input_tokens == -(-body_units(body) // CHARS_PER_TOKEN)
    assert estimate.input_tokens >= -(-len(body) // CHARS_PER_TOKEN)
    assert estimate.output_tokens == UNKNOWN_MAX_OUTPUT and estimate.usd is None


@given(
    st.sampled_from(["max_tokens", "max_completion_tokens", "max_output_tokens", "gemini"]),
    st.integers(1, 10**6),
    st.text(max_size=200),
)
def test_the_output_cap_is_read_from_the_body(key: str, cap: int, prompt: str) -> None:
    payload: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    if key == "gemini":
        payload = {"contents": [{"parts": [{"text": prompt}]}], "generationConfig": {"maxOutputTokens": cap}}
    else:
        payload[key] = cap
    body = json.dumps(payload).encode()
    assert estimate_request_body("OPENAI", "m", body).output_tokens == cap
    uncapped = json.dumps({"model": "m"})
    assert estimate_request_body("OPENAI", "m", uncapped).output_tokens == UNKNOWN_MAX_OUTPUT
    assert (
        estimate_request_body("OPENAI", "m", uncapped, worst_case=False).output_tokens
        == DEFAULT_OUTPUT_TOKENS
    )


@pytest.fixture(scope="module", autouse=True)
def priced_model() -> object:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    set_model_pricing("OPENAI", "priced-model", "2", "10", "1")
    yield registry
    set_default_registry(previous)


def test_a_body_is_priced_like_a_recorded_call() -> None:
    body = json.dumps({"model": "priced-model", "messages": [], "max_tokens": 50, "pad": "x" * 3930})
    assert len(body) == 4000
    estimate = estimate_request_body("OPENAI", "priced-model", body)
    assert (estimate.input_tokens, estimate.output_tokens) == (1000, 50)
    assert estimate.usd == (1000 * Decimal(2) + 50 * Decimal(10)) / 1_000_000
    cached = estimate_request_body("OPENAI", "priced-model", body, cached_tokens=600)
    assert cached.usd == (400 * Decimal(2) + 600 * Decimal(1) + 50 * Decimal(10)) / 1_000_000
    writes = estimate_request_body("OPENAI", "priced-model", body, cache_write=True)
    assert writes.usd == estimate.usd  # no cache-write price listed: the input price applies


# ----------------------------------------------------------------------------- the ledger's arithmetic
calls = st.lists(
    st.tuples(st.integers(1, 500), st.integers(0, 500), st.booleans()),  # estimate, real, fails
    min_size=1,
    max_size=60,
)


@settings(max_examples=150)
@given(calls, st.integers(0, 5000), st.randoms(use_true_random=False))
def test_reservations_keep_spend_within_the_limit_whatever_the_order(
    plan: list[tuple[int, int, bool]], limit: int, rng: object
) -> None:
    """Calls whose real cost is at most their estimate never take spend past the limit, in any
    interleaving; what is reserved is always exactly the estimates of the calls in flight."""
    ledger = BudgetLedger("prop", Budget(usd=Decimal(limit) / 1000, calls=40))
    in_flight: list[tuple[Reservation, int, bool]] = []
    refused = 0
    for estimate, real, fails in plan:
        cost = Decimal(estimate) / 1000
        try:
            held = reserve((ledger,), CallEstimate.of("P", "m", estimate, 0, cost))
            in_flight.append((held, min(real, estimate), fails))
        except BudgetExceededError as exc:
            refused += 1
            assert exc.reason in ("usd", "calls")
        assert ledger.status().reserved_usd == sum(r.estimate.usd for r, _, _ in in_flight)  # type: ignore[misc]
        if in_flight and rng.random() < 0.5:  # type: ignore[attr-defined]
            done, real_cost, failed = in_flight.pop(rng.randrange(len(in_flight)))  # type: ignore[attr-defined]
            if failed:
                done.settle_failure(10, 0)
            else:
                done.settle(
                    cost=Decimal(real_cost) / 1000,
                    input_tokens=1,
                    output_tokens=1,
                    bytes_sent=4,
                    bytes_received=4,
                )
            done.settle(
                cost=Decimal(1), input_tokens=1, output_tokens=1, bytes_sent=1, bytes_received=1
            )  # no-op
        status = ledger.status()
        assert status.spent_usd + status.reserved_usd <= Decimal(limit) / 1000
        assert status.spent_calls + status.reserved_calls <= 40
    for done, real_cost, _ in in_flight:
        done.settle(
            cost=Decimal(real_cost) / 1000, input_tokens=0, output_tokens=0, bytes_sent=0, bytes_received=0
        )
    status = ledger.status()
    assert status.reserved_usd == 0 and status.reserved_calls == 0 and status.reserved_tokens == 0
    assert status.spent_calls + refused == len(plan) and status.refusals == refused


def test_a_price_set_after_an_estimate_is_used_by_the_next_one() -> None:
    body = json.dumps({"model": "late-model", "max_tokens": 10, "pad": "x" * 3960})
    assert estimate_request_body("OPENAI", "late-model", body).usd is None
    set_model_pricing("OPENAI", "late-model", "3", "15")
    estimate = estimate_request_body("OPENAI", "late-model", body)
    assert estimate.usd == (estimate.input_tokens * Decimal(3) + 10 * Decimal(15)) / 1_000_000


def test_offered_tools_and_tool_calls_count_in_the_prompt_estimate() -> None:
    from statek import LLM_API, ChatHistoryItem, ToolCall
    from statek.demo.traffic import TOOLS
    from statek.executors.estimate import estimate_call

    api = LLM_API.get("OPENAI", model="priced-model", api_url="http://127.0.0.1:9/v1", api_key="k")
    question = [ChatHistoryItem.user("Where is order A-1042?")]
    bare = api._prepare(None, "priced-model", None, None, question, None, None, False)
    tools = api._prepare(None, "priced-model", {"LLM_TOOLS_SCOPE": "ALL"}, TOOLS, question, None, None, False)
    schemas = sum(len(t.name) + len(t.description) + len(json.dumps(t.parameters)) for t in tools.tools)
    assert len(tools.tools) == 3
    assert estimate_call(api, tools).input_tokens - estimate_call(api, bare).input_tokens >= schemas // 4
    call = ToolCall("c1", "get_order", [], {"order_id": "A-1042"})
    followed = [*question, ChatHistoryItem.assistant("", [call])]
    after = api._prepare(None, "priced-model", None, None, followed, None, None, False)
    assert estimate_call(api, after).input_tokens > estimate_call(api, bare).input_tokens + 8
