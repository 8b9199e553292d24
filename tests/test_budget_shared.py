"""Shared budgets: one limit per key and period, in this process or in Redis (fakeredis here; the
real server in tests/e2e/test_budget_redis_e2e.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_telemetry_support import Captured
from typer.testing import CliRunner

from statek import LLM_API, Budget, BudgetExceededError, ChatHistoryItem, Job
from statek.cli import app
from statek.exceptions import ConfigurationError
from statek.executors import budget as budget_module
from statek.executors.budget import account_status, reserve_request, set_shared_store
from statek.executors.budget_redis import RedisStore
from statek.executors.budget_store import (
    Account,
    Claim,
    clear_store_events,
    store_events,
    window_end,
    window_of,
)
from statek.llm_api import MAX_TOKENS
from statek.metering import PriceRegistry, set_default_registry
from statek.model_pricing import set_model_pricing
from statek.settings import BUDGET_STORE_ENV
from statek.telemetry import configure_telemetry
from statek.testing import ModelBehavior, ProviderSimulator, Usage

MODEL = "shared-model"
CALL_USD = (1_000 * Decimal(2) + 100 * Decimal(10)) / 1_000_000  # what each simulated call costs
BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}
).encode()


@pytest.fixture(autouse=True)
def prices() -> Iterator[None]:
    registry = PriceRegistry(shipped=False, model_info_dir=None)
    previous = set_default_registry(registry)
    set_model_pricing("OPENAI", MODEL, Decimal(2), Decimal(10))
    budget_module._memory.clear()
    yield
    set_shared_store(None)
    set_default_registry(previous)
    clear_store_events()  # process-wide counters: later tests' expositions must not see them


@pytest.fixture(name="api")
async def api_fixture() -> AsyncIterator[tuple[LLM_API, ProviderSimulator]]:
    behavior = ModelBehavior(text="ok", usage=lambda request: Usage(input_tokens=1_000, output_tokens=100))
    async with ProviderSimulator({MODEL: behavior}, seed=5) as sim:
        api = LLM_API.get("OPENAI", api_url=sim.openai_url, api_key="test-key")
        yield api, sim
        await api.aclose()


async def _ask(api: LLM_API) -> None:
    await api.process_request(
        model=MODEL, chat_history=[ChatHistoryItem.user("hi")], metadata={MAX_TOKENS: 100}
    )


async def _spend_in_jobs(api: LLM_API, tenants: list[str], budget: Budget) -> tuple[int, int]:
    sent = refused = 0
    for number, tenant in enumerate(tenants):
        async with Job(f"job-{number}", attributes={"tenant": tenant}, budget=budget):
            try:
                await _ask(api)
                sent += 1
            except BudgetExceededError as error:
                assert error.job_id == f"tenant:{tenant}@{window_of('day')}"
                refused += 1
    return sent, refused


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_every_job_with_the_same_key_shares_one_daily_limit(
    api: tuple[LLM_API, ProviderSimulator], store: str
) -> None:
    client, sim = api
    if store == "redis":
        set_shared_store(RedisStore(fakeredis.FakeRedis(), renew_in_background=False))
    # Room for three calls' reservations (a reservation is a bit above the call's real cost).
    budget = Budget(usd=CALL_USD * 3 + Decimal("0.0001"), period="day", key="tenant:{tenant}")
    sent, refused = await _spend_in_jobs(client, ["acme"] * 5 + ["globex"] * 2, budget)
    assert (sent, refused) == (5, 2)  # acme: 3 of 5 jobs; globex: its own limit, both calls
    assert sim.request_count == 5
    counts, _ = account_status("tenant:acme", window_of("day"))
    assert counts["spent_pico"] == int((CALL_USD * 3).scaleb(12)) and counts["spent_calls"] == 3
    assert counts["reserved_calls"] == 0 and counts["refusals"] == 2


async def test_a_key_naming_a_missing_attribute_refuses_the_call(
    api: tuple[LLM_API, ProviderSimulator],
) -> None:
    client, sim = api
    async with Job("no-tenant", budget=Budget(usd=1, key="tenant:{tenant}")):
        with pytest.raises(BudgetExceededError) as refused:
            await _ask(client)
    assert refused.value.reason == "budget_key" and "'tenant'" in str(refused.value)
    assert sim.request_count == 0


def test_bad_keys_and_periods_are_configuration_errors() -> None:
    for bad in ({"key": "t:{tenant!r}"}, {"key": "{a.b}"}, {"key": " "}, {"period": "week"}):
        with pytest.raises(ConfigurationError):
            Budget(usd=1, **bad)  # type: ignore[arg-type]


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
    )
)
def test_a_window_is_the_utc_day_or_month_and_ends_where_the_next_begins(at: datetime) -> None:
    for period in ("day", "month"):
        window = window_of(period, at)  # type: ignore[arg-type]
        end = window_end(window)
        assert at < end and window_of(period, end) != window  # type: ignore[arg-type]
        assert window_of(period, end - timedelta(microseconds=1)) == window  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- Redis specifics
def _store(server: fakeredis.FakeServer, **kwargs: object) -> RedisStore:
    return RedisStore(fakeredis.FakeRedis(server=server), renew_in_background=False, **kwargs)  # type: ignore[arg-type]


def test_two_workers_share_the_account_and_a_retried_settle_counts_once() -> None:
    server = fakeredis.FakeServer()
    first, second = _store(server), _store(server)
    account = (Account("fleet", "2026-12-06", 10 * 10**9, None, None, None, True),)
    claims = [Claim(f"c{n}", 4 * 10**9, 10, 10) for n in range(3)]
    grants = [first.reserve(account, claims[0]), second.reserve(account, claims[1])]
    assert all(hasattr(g, "output_tokens") for g in grants)
    assert second.reserve(account, claims[2]).__class__.__name__ == "Refusal"  # 4 + 4 + 4 > 10
    for _ in range(3):  # the command retried after a timeout, from either worker
        first.settle(account, claims[0], 3 * 10**9, 10, 10, False)
        second.settle(account, claims[0], 3 * 10**9, 10, 10, False)
    status = first.status("fleet", "2026-12-06")
    assert status["spent_pico"] == 3 * 10**9 and status["spent_calls"] == 1 and status["reserved_calls"] == 1


def test_a_crashed_workers_reservation_returns_after_one_lease_and_is_counted() -> None:
    server = fakeredis.FakeServer()
    now = [1_000_000]
    crashed = _store(server, clock=lambda: now[0], lease_seconds=5)
    alive = _store(server, clock=lambda: now[0], lease_seconds=5)
    account = (Account("fleet", "2026-12-06", 10 * 10**9, None, None, None, True),)
    claim = Claim("dies", 8 * 10**9, 10, 10)
    crashed.hold(account, claim, crashed.reserve(account, claim))  # type: ignore[arg-type]
    assert alive.reserve(account, Claim("waits", 8 * 10**9, 10, 10)).__class__.__name__ == "Refusal"
    before = store_events().get(("lease_expiry", alive.name), 0)
    now[0] += 5_001  # the worker was SIGKILLed: nobody renews its lease
    assert alive.reserve(account, Claim("goes", 8 * 10**9, 10, 10)).__class__.__name__ == "Grant"
    assert store_events()[("lease_expiry", alive.name)] == before + 1
    assert alive.status("fleet", "2026-12-06")["lease_expiries"] == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("policy", ["refuse", "allow"])
def test_an_unreachable_store_follows_its_policy_and_never_shows_the_password(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured = Captured()
    url = f"redis://user:s3cr3t-pass@127.0.0.1:{_closed_port()}/0?on_error={policy}&lease=5"
    monkeypatch.setenv(BUDGET_STORE_ENV, url)
    set_shared_store(None)
    with Job("tenant-job", attributes={"tenant": "acme"}, budget=Budget(usd=1, key="t:{tenant}")) as job:
        before = sum(v for (kind, _), v in store_events().items() if kind == "error")
        if policy == "refuse":
            with pytest.raises(BudgetExceededError) as refused:
                reserve_request(job, "OPENAI", MODEL, BODY)
            message = str(refused.value)
            assert refused.value.reason == "store" and "127.0.0.1" in message and "s3cr3t" not in message
        else:
            held = reserve_request(job, "OPENAI", MODEL, BODY)
            assert held is not None
            held.settle(Decimal("0.001"), 1, 1, 1, 1)
        after = sum(v for (kind, _), v in store_events().items() if kind == "error")
    assert after == before + 1
    # Counted in statek_budget_store_errors_total, by store (no credentials in the label).
    errors = captured.values("statek.budget.store.errors")
    assert sum(errors.values()) >= 1 and "s3cr3t" not in str(errors)
    configure_telemetry()


def test_statek_budget_show_prints_spend_reservations_and_what_remains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    set_shared_store(store)
    with Job("one", attributes={"tenant": "acme"}, budget=Budget(usd="0.01", key="tenant:{tenant}")) as job:
        held = reserve_request(job, "OPENAI", MODEL, BODY)
        assert held is not None
        held.settle(Decimal("0.002"), 1_000, 100, 10, 10)
        reserve_request(job, "OPENAI", MODEL, BODY)  # one left in flight
    monkeypatch.setattr(budget_module, "_open_store", lambda url: store)
    result = CliRunner().invoke(app, ["budget", "show", "tenant:acme", "--store", "redis://x"])
    assert result.exit_code == 0, result.output
    # One call settled at $0.002; one in flight at its reservation (1,000 + 100 tokens plus the
    # prompt estimate's 24 tokens at $2 and $10 per million: $0.001048).
    assert "limit      $0.01\n" in result.output
    assert "spent      $0.002 (1 calls, 1,100 tokens" in result.output
    assert "in flight  $0.001048 (1 calls)" in result.output and "remaining  $0.006952" in result.output
    as_json = json.loads(
        CliRunner().invoke(app, ["budget", "show", "tenant:acme", "--store", "r", "--json"]).output
    )
    assert as_json["spent_calls"] == 1 and as_json["reserved_calls"] == 1


def test_a_new_period_starts_a_fresh_account_and_the_old_one_is_dropped() -> None:
    budget = Budget(usd=1, period="day", key="tenant:{tenant}")
    yesterday = budget_module._memory_account("tenant:acme", "2026-12-05", budget)
    yesterday._spent_pico = 10**12  # yesterday's dollar is spent
    today = budget_module._memory_account("tenant:acme", "2026-12-06", budget)
    assert today is not yesterday and today.status().spent_usd == 0 and today.status().remaining_usd == 1
    assert ("tenant:acme", "2026-12-05") not in budget_module._memory  # only the current window is kept
    assert budget_module._memory_account("tenant:acme", "2026-12-06", budget) is today
