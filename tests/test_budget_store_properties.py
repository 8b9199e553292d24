"""Interleavings of reserve / settle / retried settle / release / crash against both stores' logic.

The in-process store is the :class:`BudgetLedger` accounting; the Redis store runs its Lua scripts
on fakeredis (the end-to-end suite runs them on a real Redis). A model of the budget says what must
happen: a claim is granted exactly when spent + live reservations + the claim fit the limit (no
phantom refusals, no overspend); each settle counts once however often it is retried; a crashed
worker's reservation returns after one lease (Redis) or counts at its reservation when the object
is dropped (in-process: nothing outlives the process).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import fakeredis
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from statek import Budget, BudgetExceededError
from statek.executors.budget import BudgetLedger, Reservation, reserve
from statek.executors.budget_redis import RedisStore
from statek.executors.budget_store import Account, Claim, Grant, clear_store_events
from statek.executors.estimate import PICO, CallEstimate

LIMIT_NANO = 1_000_000  # $0.001
LEASE_MS = 10_000
costs = st.integers(min_value=1, max_value=LIMIT_NANO // 3)
fractions = st.sampled_from([0, 1, 2, 3, 4])  # quarters of the reservation the call really cost
_ids = itertools.count()


class RedisStoreMachine(RuleBasedStateMachine):
    """Two workers (two clients of one server) share one account; one may crash."""

    live = Bundle("live")
    settled = Bundle("settled")

    def __init__(self) -> None:
        super().__init__()
        server = fakeredis.FakeServer()
        self.now = 1_000_000
        self.stores = [
            RedisStore(
                fakeredis.FakeRedis(server=server),
                clock=lambda: self.now,
                lease_seconds=LEASE_MS / 1000,
                renew_in_background=False,
            )
            for _ in range(2)
        ]
        self.account = (Account("tenant:t", "2026-12-06", LIMIT_NANO * 1000, None, None, None, True),)
        self.spent = 0  # nano
        self.held: dict[str, tuple[int, int]] = {}  # id -> (nano, lease expiry in ms)
        self.crashed: set[str] = set()

    def _reserved(self) -> int:
        return sum(nano for nano, _ in self.held.values())

    @rule(target=live, worker=st.integers(0, 1), nano=costs)
    def reserve(self, worker: int, nano: int) -> object:
        claim = Claim(f"r{next(_ids)}", nano * 1000, 10, 10)
        result = self.stores[worker].reserve(self.account, claim)
        self._expire()
        fits = self.spent + self._reserved() + nano <= LIMIT_NANO
        assert isinstance(result, Grant) == fits, (result, self.spent, self._reserved(), nano)
        if not fits:
            return None
        self.stores[worker].hold(self.account, claim, result)
        self.held[claim.reservation_id] = (nano, self.now + LEASE_MS)
        return (worker, claim)

    def _expire(self) -> None:
        for rid, (_, expiry) in list(self.held.items()):
            if expiry <= self.now:
                del self.held[rid]

    @rule(target=settled, entry=consumes(live), quarter=fractions, failed=st.booleans())
    def settle(self, entry: object, quarter: int, failed: bool) -> object:
        if entry is None:
            return None
        worker, claim = entry  # type: ignore[misc]
        if claim.reservation_id in self.crashed:
            return None
        used = claim.pico * quarter // 4
        self.stores[worker].settle(self.account, claim, None if failed else used, 20, 100, failed)
        self._expire()
        self.held.pop(claim.reservation_id, None)
        if not failed:
            self.spent += -(-used // 1000)
        return (worker, claim)

    @rule(entry=settled, worker=st.integers(0, 1))
    def retry_settle(self, entry: object, worker: int) -> None:
        if entry is None:
            return
        _, claim = entry  # type: ignore[misc]
        self.stores[worker].settle(self.account, claim, claim.pico, 20, 100, False)  # counts nothing

    @rule(entry=consumes(live))
    def release(self, entry: object) -> None:
        if entry is None:
            return
        worker, claim = entry  # type: ignore[misc]
        if claim.reservation_id in self.crashed:
            return
        self.stores[worker].release(self.account, claim)
        self._expire()
        self.held.pop(claim.reservation_id, None)

    @rule(entry=live)
    def crash(self, entry: object) -> None:
        """The worker dies mid-call: its lease is no longer renewed (the other calls' still are)."""
        if entry is None:
            return
        worker, claim = entry  # type: ignore[misc]
        with self.stores[worker]._lock:
            self.stores[worker]._leases.pop(claim.reservation_id, None)
        self.crashed.add(claim.reservation_id)

    @rule()
    def tick(self) -> None:
        """A third of a lease passes; the live workers renew their leases."""
        self.now += LEASE_MS // 3
        self._expire()
        for store in self.stores:
            store.renew_now()
        for rid, (nano, _) in list(self.held.items()):
            if rid not in self.crashed:
                self.held[rid] = (nano, self.now + LEASE_MS)

    @invariant()
    def the_account_matches_the_model(self) -> None:
        status = self.stores[0].status("tenant:t", "2026-12-06")
        self._expire()
        assert status.get("spent_pico", 0) == self.spent * 1000
        assert status.get("reserved_pico", 0) == self._reserved() * 1000
        assert status.get("spent_pico", 0) + status.get("reserved_pico", 0) <= LIMIT_NANO * 1000


class MemoryStoreMachine(RuleBasedStateMachine):
    """The in-process accounting: the same rules; a crash drops the reservation object."""

    live = Bundle("live")
    settled = Bundle("settled")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = BudgetLedger("shared", Budget(usd=LIMIT_NANO * 1000 / 10**PICO))
        self.spent = 0  # pico
        self.held: dict[int, int] = {}

    @rule(target=live, nano=costs)
    def reserve(self, nano: int) -> object:
        pico = nano * 1000
        fits = self.spent + sum(self.held.values()) + pico <= LIMIT_NANO * 1000
        try:
            held = reserve((self.ledger,), CallEstimate("P", "m", 10, 10, 20, pico))
        except BudgetExceededError:
            assert not fits
            return None
        assert fits
        self.held[id(held)] = pico
        return held

    @rule(target=settled, held=consumes(live), quarter=fractions, failed=st.booleans())
    def settle(self, held: Reservation | None, quarter: int, failed: bool) -> object:
        if held is None:
            return None
        pico = self.held.pop(id(held))
        if failed:
            held.settle_failure(10, 10)
        else:
            used = pico * quarter // 4
            from decimal import Decimal

            held.settle(Decimal(used).scaleb(-PICO), 10, 10, 10, 10)
            self.spent += used
        return held

    @rule(held=settled)
    def retry_settle(self, held: Reservation | None) -> None:
        if held is not None:
            held.settle_failure(0, 0)  # a second settlement does nothing

    @rule(held=consumes(live))
    def release(self, held: Reservation | None) -> None:
        if held is not None:
            self.held.pop(id(held))
            held.release()

    @rule(held=consumes(live))
    def crash(self, held: Reservation | None) -> None:
        """The call's owner vanished without settling: counted at its reservation."""
        if held is None:
            return
        self.spent += self.held.pop(id(held))
        held.__del__()  # what the collector does; the reservation is settled by the next budget call
        self.ledger.status()

    @invariant()
    def the_ledger_matches_the_model(self) -> None:
        status = self.ledger.status()
        assert status.spent_usd.scaleb(PICO) == self.spent
        assert status.reserved_usd.scaleb(PICO) == sum(self.held.values())
        assert self.spent + sum(self.held.values()) <= LIMIT_NANO * 1000


@pytest.fixture(autouse=True)
def _forget_store_events() -> Iterator[None]:
    yield
    clear_store_events()  # process-wide counters: later tests' expositions must not see them


TestRedisStore = RedisStoreMachine.TestCase
TestRedisStore.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestMemoryStore = MemoryStoreMachine.TestCase
TestMemoryStore.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
