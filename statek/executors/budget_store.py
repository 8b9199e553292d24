"""Shared budgets: their names, their periods, and the stores that hold them.

A ``Budget`` with a ``key`` or a ``period`` is *shared*: every job whose key resolves to the same
name counts against one account, per period. ``key`` is a template over the job's attributes
(``"tenant:{tenant}"``; ``{job_id}`` is the job's id; default ``"{job_id}"``); ``period`` is
``"day"`` or ``"month"``, in UTC: a day account runs from 00:00:00 UTC to the next 00:00:00 UTC, a
month account from the first of the month. A call reserves in the window it starts in and settles
there, so a call straddling midnight counts against the day it started.

Where the accounts live is the store (:data:`~statek.settings.BUDGET_STORE_ENV`): this process's
memory by default, or Redis (:mod:`statek.executors.budget_redis`), shared by every worker and
machine. A job's own, unshared budget always lives in its process: only its process can spend it.

This module knows no ledger: it names accounts and describes what a store must do
(:class:`RemoteStore`); :mod:`statek.executors.budget` does the accounting.
"""

from __future__ import annotations

import logging
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal, Protocol

__all__ = [
    "DEFAULT_KEY",
    "Account",
    "Claim",
    "Grant",
    "Period",
    "Refusal",
    "RemoteStore",
    "StoreUnavailable",
    "account_name",
    "clear_store_events",
    "count_store_event",
    "store_events",
    "window_end",
    "window_of",
]

Period = Literal["day", "month"]
"""How long a shared budget's account runs before a new one starts (UTC)."""
DEFAULT_KEY = "{job_id}"
"""The key of a budget with a ``period`` and no ``key``: one account per job id, per period."""

_FORMATTER = string.Formatter()
_log = logging.getLogger("statek.budget")

_events: dict[tuple[str, str], int] = {}
_events_lock = threading.Lock()


def count_store_event(event: str, store: str, amount: int = 1) -> None:
    """Count one budget-store event (``"error"``: a command failed, or ``"lease_expiry"``: a
    reservation whose process stopped renewing it was returned); the first of each kind per store
    is logged. Read by :func:`store_events` (the ``statek.budget.store.errors`` and
    ``statek.budget.lease_expiries`` counters)."""
    with _events_lock:
        count = _events.get((event, store), 0)
        _events[(event, store)] = count + amount
    if not count:
        _log.warning("statek budget store %s: first %s (counted from now on)", store, event.replace("_", " "))


def store_events() -> dict[tuple[str, str], int]:
    """A snapshot of the counted events: ``{(event, store): count}``."""
    with _events_lock:
        return dict(_events)


def clear_store_events() -> None:
    """Forget the counted events (tests: these counters are process-wide, like the store itself)."""
    with _events_lock:
        _events.clear()


class MissingKeyAttribute(KeyError):
    """A budget key names a job attribute the job does not have."""


def check_key(template: str) -> str:
    """``template`` if it is a usable key template (plain ``{name}`` fields only), else ``ValueError``."""
    for _, field, spec, conversion in _FORMATTER.parse(template):
        if field is not None and (not field.isidentifier() or spec or conversion):
            raise ValueError(f"budget key {template!r}: use plain {{attribute}} fields, not {{{field}}}")
    return template


def account_name(template: str, job_id: str, attributes: Mapping[str, str]) -> str:
    """The account a job's key template names: ``{job_id}`` and each ``{attribute}`` replaced.
    Raises :class:`MissingKeyAttribute` naming an attribute the job lacks."""
    out = []
    for literal, field, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        if field is None:
            continue
        if field == "job_id":
            out.append(job_id)
        elif field in attributes:
            out.append(attributes[field])
        else:
            raise MissingKeyAttribute(field)
    return "".join(out)


def window_of(period: Period | None, now: datetime | None = None) -> str:
    """The UTC window a call at ``now`` (default: the current time) counts in: ``"2026-12-06"`` for
    a day, ``"2026-12"`` for a month, ``""`` for a budget without a period."""
    if period is None:
        return ""
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{at:%Y-%m-%d}" if period == "day" else f"{at:%Y-%m}"


def window_end(window: str) -> datetime:
    """The first instant after ``window`` (UTC); ``window`` ``""`` never ends (``datetime.max``)."""
    if not window:
        return datetime.max.replace(tzinfo=timezone.utc)
    if len(window) == 10:
        return datetime.strptime(window, "%Y-%m-%d").replace(tzinfo=timezone.utc) + timedelta(days=1)
    start = datetime.strptime(window, "%Y-%m").replace(tzinfo=timezone.utc)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Account:
    """One shared account: its resolved name, its window and its limits (pico-USD, tokens, calls,
    approximate tokens; ``None``: unlimited), and whether a USD limit refuses unpriced calls."""

    name: str
    window: str
    usd_pico: int | None
    tokens: int | None
    calls: int | None
    approx_tokens: int | None
    refuse_unpriced: bool

    @property
    def label(self) -> str:
        """``name`` and window, as ``statek budget show`` prints them."""
        return f"{self.name}@{self.window}" if self.window else self.name


@dataclass(frozen=True, slots=True)
class Claim:
    """What one call asks of its accounts. ``pico`` ``None``: unpriced. With ``rate_pico`` set (a
    ``cap_output`` budget), the store may grant fewer output tokens, down to ``min_output``: the
    call then costs at most ``fixed_pico + output * rate_pico``."""

    reservation_id: str
    pico: int | None
    input_tokens: int
    output_tokens: int
    fixed_pico: int | None = None
    rate_pico: int | None = None
    min_output: int = 1


@dataclass(frozen=True, slots=True)
class Grant:
    """What a store held for a call: the output tokens it may write and its reservation."""

    output_tokens: int
    pico: int | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a store refused a claim: the measure, which account, and its numbers in that measure's unit
    (pico-USD for ``usd``)."""

    reason: str
    account: Account
    limit: int
    spent: int
    reserved: int
    needed: int | None


class StoreUnavailable(Exception):
    """The store could not be reached or answered wrongly; ``store`` names it without credentials."""

    def __init__(self, store: str, cause: BaseException) -> None:
        self.store = store
        super().__init__(f"budget store {store} unavailable: {type(cause).__name__}")


class RemoteStore(Protocol):
    """A store shared across processes. Each method is one atomic operation on the server; a
    reservation is a lease the store keeps alive while the call runs (:meth:`hold`) and that
    expires after ``lease_seconds`` once its process stops renewing it (a killed worker).
    ``settle`` and ``release`` are idempotent per reservation id: a retried command counts once.
    """

    name: str
    """Where the store is (``redis://host:6379/0``), never with credentials."""
    allow_when_unavailable: bool
    """The policy when the store cannot be reached: ``True`` lets the call go unbudgeted."""

    def reserve(self, accounts: tuple[Account, ...], claim: Claim) -> Grant | Refusal:
        """Check ``claim`` against every account and hold it in all of them, or in none."""
        ...

    def settle(
        self,
        accounts: tuple[Account, ...],
        grant: Claim,
        pico: int | None,
        tokens: int,
        wire_bytes: int,
        failed: bool,
    ) -> None:
        """Replace the reservation with what the call used (a failed call: bytes, no tokens)."""
        ...

    def release(self, accounts: tuple[Account, ...], claim: Claim) -> None:
        """Drop the reservation of a call that was never sent; nothing is counted."""
        ...

    def hold(self, accounts: tuple[Account, ...], claim: Claim, grant: Grant) -> None:
        """Keep renewing the reservation's lease until it is settled or released."""
        ...

    def status(self, account_name: str, window: str) -> dict[str, int]:
        """The account's counters: ``spent_pico``, ``spent_tokens``, ``spent_calls``,
        ``spent_bytes``, ``unpriced_calls``, ``reserved_pico``, ``reserved_tokens``,
        ``reserved_calls``, ``refusals``, ``lease_expiries`` and the limits last seen (``limit_*``,
        ``-1``: none)."""
        ...
