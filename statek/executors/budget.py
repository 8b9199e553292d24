"""Budgets: a job that would overspend is stopped before the call is sent, not found on the invoice.

::

    with Job("nightly-report", budget=Budget(usd="2.50", calls=200)):
        ...                     # a call that would pass $2.50 raises BudgetExceededError, unsent

A :class:`Budget` holds a job's limits: USD, tokens (input + output), calls, and the original
STATEK's ``STATEK_MAX_TOKEN_USAGE`` guard (``approx_tokens``: ``(bytes sent + bytes received) // 4``).
A job without ``budget=`` takes the environment's (:meth:`Budget.from_env`); ``Budget()`` has no limit.

Before a call is sent, it is estimated (:func:`~statek.executors.estimate.estimate_call`, or
:func:`~statek.executors.estimate.estimate_request_body` for a JSON body) at its **worst case**: the
output at the request's cap, else at the model's maximum (:mod:`statek.executors.output_limits`;
``reserve="estimate"`` keeps the old 4,096-token guess as an explicit opt-in). :func:`reserve`
checks, for the job and every ancestor with a budget, ``spent + in flight + this call <= limit``. A
call that passes holds that amount as a **reservation** until it finishes;
:meth:`Reservation.settle` then replaces it with the call's real usage. So concurrent calls cannot
all slip under the same remaining budget, and with worst-case reservations they cannot overspend it
together (unless a model nobody knows writes past
:data:`~statek.executors.output_limits.UNKNOWN_MAX_OUTPUT` without a cap). With ``cap_output=True``
the reservation is what the remaining budget allows and the request is sent with that cap
(:attr:`Reservation.output_cap`, :mod:`statek.executors.output_cap`).

Unpriced models under a USD limit follow the budget's ``unpriced`` policy: ``"refuse"`` (the
default: the call is refused, reason ``"unpriced"``) or ``"allow"`` (the call goes; it counts
against the token, call and byte limits, a provider-reported cost counts against the USD limit, and
:attr:`BudgetStatus.unpriced_calls` says how many calls the USD figure leaves out). Never ``$0``.

A budget with a ``key`` or ``period`` is shared (:mod:`statek.executors.budget_store`): one account
per key and UTC period, in this process's memory or, with ``STATEK_BUDGET_STORE=redis://...``, in
Redis for every worker and machine (:mod:`statek.executors.budget_redis`). See ``docs/budgets.md``.

Integration: the budget consumer of the metering path (:mod:`statek.telemetry.budget`) calls
:func:`reserve_call` (an ``LLM_API`` call) or :func:`reserve_request` (a request body a
client-library hook read) before the call is sent, and settles the reservation when it ends; a
refusal reaches every consumer of the call record as ``refused``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, NoReturn

from .._deferred import defer, drain, pending
from ..exceptions import BudgetExceededError, ConfigurationError
from ..settings import BUDGET_STORE_ENV, values_of
from .budget_limits import Budget, BudgetStatus, ReserveMode, UnpricedPolicy
from .budget_store import (
    DEFAULT_KEY,
    Account,
    Claim,
    Grant,
    MissingKeyAttribute,
    RemoteStore,
    StoreUnavailable,
    account_name,
    count_store_event,
    window_of,
)
from .estimate import (
    PICO,
    CallEstimate,
    call_numbers,
    estimate_call,
    estimate_request_body,
    from_pico,
    output_price,
)
from .output_limits import InvalidOutputCap

if TYPE_CHECKING:
    from ..llm_api import LLM_API, PreparedRequest
    from .job import Job

__all__ = [
    "Budget",
    "BudgetLedger",
    "BudgetStatus",
    "CallEstimate",
    "ReserveMode",
    "Reservation",
    "UnpricedPolicy",
    "account_status",
    "estimate_call",
    "estimate_request_body",
    "reserve",
    "reserve_call",
    "reserve_request",
    "set_shared_store",
    "shared_store",
]

# ----------------------------------------------------------------------------- one job's ledger
_log = logging.getLogger("statek.budget")
_LOCK = threading.Lock()
"""The one lock of every :class:`BudgetLedger` (see there)."""


class BudgetLedger:
    """One job's budget: its limits, its spend and the reservations of its calls in flight.

    Thread-safe. Spend grows only through :meth:`Reservation.settle` / ``settle_failure``; it counts
    every call made in the job or in its children. Money is kept as integer pico-dollars
    (:data:`~statek.executors.estimate.PICO`): exact, and cheap enough for every call.

    Every ledger shares one lock (:data:`_LOCK`): a call checks and holds its estimate on its job's
    and all its ancestors' ledgers in one critical section (all or none, no release dance), and a
    section is a few integer comparisons, far shorter than any wait it could cause.
    """

    __slots__ = (
        "_account",
        "_limit_pico",
        "_reserved_approx",
        "_reserved_calls",
        "_reserved_pico",
        "_reserved_tokens",
        "_spent_bytes",
        "_spent_calls",
        "_spent_pico",
        "_spent_tokens",
        "_unpriced_calls",
        "budget",
        "cap_output",
        "job_id",
        "refusals",
        "shared",
        "worst_case",
    )

    def __init__(self, job_id: str, budget: Budget) -> None:
        self.job_id = job_id
        self.budget = budget
        self.shared = budget.shared
        """Whether the job's calls count against a shared account (see :mod:`.budget_store`), not here."""
        self.worst_case = budget.reserve == "worst_case"
        self.cap_output = budget.cap_output
        self._account: BudgetLedger | tuple[RemoteStore, str, str] | None = None
        # A limit finer than a pico-dollar is rounded down: never allow more than was set.
        self._limit_pico = None if budget.usd is None else int(budget.usd.scaleb(PICO))
        self._spent_pico = self._spent_tokens = self._spent_calls = self._spent_bytes = 0
        self._reserved_pico = self._reserved_tokens = self._reserved_calls = self._reserved_approx = 0
        self._unpriced_calls = self.refusals = 0

    def __repr__(self) -> str:
        return f"BudgetLedger({self.job_id!r}, {self.status()})"

    def status(self) -> BudgetStatus:
        """A consistent snapshot of limits, spend and reservations. For a shared budget: its account's
        (the one its job's last call counted against), shared with every job of the same key."""
        account = self._account
        if isinstance(account, BudgetLedger):
            return account.status()
        if account is not None:
            return _remote_status(self.budget, *account)
        _drain_abandoned()
        with _LOCK:
            return BudgetStatus(
                self.budget,
                from_pico(self._spent_pico),
                self._spent_tokens,
                self._spent_calls,
                self._spent_bytes // 4,
                from_pico(self._reserved_pico),
                self._reserved_tokens,
                self._reserved_calls,
                self._unpriced_calls,
                self.refusals,
            )

    def span_attributes(self) -> dict[str, int | float | str]:
        """The budget and what remained, as ``statek.job.budget.*`` span attributes (floats at this edge)."""
        status = self.status()
        budget = self.budget
        out: dict[str, int | float | str] = {"statek.job.budget.refusals": status.refusals}
        if budget.usd is not None and status.remaining_usd is not None:
            out["statek.job.budget.usd"] = float(budget.usd)
            out["statek.job.budget.remaining_usd"] = float(status.remaining_usd)
            out["statek.job.budget.unpriced"] = budget.unpriced
            out["statek.job.budget.unpriced_calls"] = status.unpriced_calls
        if budget.tokens is not None and status.remaining_tokens is not None:
            out["statek.job.budget.tokens"] = budget.tokens
            out["statek.job.budget.remaining_tokens"] = status.remaining_tokens
        if budget.calls is not None and status.remaining_calls is not None:
            out["statek.job.budget.calls"] = budget.calls
            out["statek.job.budget.remaining_calls"] = status.remaining_calls
        if budget.approx_tokens is not None and status.remaining_approx_tokens is not None:
            out["statek.job.budget.approx_tokens"] = budget.approx_tokens
            out["statek.job.budget.remaining_approx_tokens"] = status.remaining_approx_tokens
        return out

    def _check(self, held: Reservation, hold: bool = False) -> None:
        """Raise :class:`BudgetExceededError` if ``held`` does not fit, else hold it when ``hold`` is
        true (one ledger: check and hold in one call); call with :data:`_LOCK` held."""
        budget = self.budget
        limit = self._limit_pico
        if limit is not None:
            pico = held.pico
            if pico is None:
                if budget.unpriced == "refuse":
                    self._refuse("unpriced", held)
            elif self._spent_pico + self._reserved_pico + pico > limit:
                self._refuse("usd", held)
        tokens = budget.tokens
        if tokens is not None and self._spent_tokens + self._reserved_tokens + held.tokens > tokens:
            self._refuse("tokens", held)
        calls = budget.calls
        if calls is not None and self._spent_calls + self._reserved_calls >= calls:
            self._refuse("calls", held)
        approx = budget.approx_tokens
        # The original guard: stop the job once (bytes sent + received) // 4 exceeds the limit. Only
        # the prompt about to be sent is known, so only it is held; its answer may take the job past
        # the limit, and then every next call refuses.
        if approx is not None and self._spent_bytes // 4 + self._reserved_approx + held.input_tokens > approx:
            self._refuse("approx_tokens", held)
        if hold:  # _hold(), inlined: the common case of one budget per call
            if held.pico is not None:
                self._reserved_pico += held.pico
            self._reserved_tokens += held.tokens
            self._reserved_approx += held.input_tokens
            self._reserved_calls += 1

    def _hold(self, held: Reservation) -> None:
        """Add ``held`` to what is in flight; call with :data:`_LOCK` held."""
        if held.pico is not None:
            self._reserved_pico += held.pico
        self._reserved_tokens += held.tokens
        self._reserved_approx += held.input_tokens
        self._reserved_calls += 1

    def _unhold(self, held: Reservation) -> None:
        """Take ``held`` out of what is in flight, counting nothing; call with :data:`_LOCK` held."""
        if held.pico is not None:
            self._reserved_pico -= held.pico
        self._reserved_tokens -= held.tokens
        self._reserved_approx -= held.input_tokens
        self._reserved_calls -= 1

    def _refuse(self, reason: str, held: Reservation) -> NoReturn:
        """Count and raise a refusal; call with :data:`_LOCK` held."""
        self.refusals += 1
        limit: Decimal | int
        spent: Decimal | int
        reserved: Decimal | int
        needed: Decimal | int | None
        if reason in ("usd", "unpriced"):
            limit, spent = self.budget.usd or Decimal(0), from_pico(self._spent_pico)
            reserved, needed = from_pico(self._reserved_pico), held.estimate.usd
        elif reason == "tokens":
            limit, spent = self.budget.tokens or 0, self._spent_tokens
            reserved, needed = self._reserved_tokens, held.tokens
        elif reason == "calls":
            limit, spent, reserved, needed = (
                self.budget.calls or 0,
                self._spent_calls,
                self._reserved_calls,
                1,
            )
        else:
            limit, spent = self.budget.approx_tokens or 0, self._spent_bytes // 4
            reserved, needed = self._reserved_approx, held.input_tokens
        raise BudgetExceededError(
            job_id=self.job_id,
            reason=reason,
            limit=limit,
            spent=spent,
            reserved=reserved,
            estimate=needed,
            provider=held.provider,
            model=held.model,
        )

    def _settle(
        self, held: Reservation, pico: int | None, tokens: int, wire_bytes: int, failed: bool
    ) -> None:
        """Replace ``held`` with what the call used; call with :data:`_LOCK` held."""
        if held.pico is not None:
            self._reserved_pico -= held.pico
        self._reserved_tokens -= held.tokens
        self._reserved_approx -= held.input_tokens
        self._reserved_calls -= 1
        self._spent_calls += 1
        self._spent_tokens += tokens
        self._spent_bytes += wire_bytes
        if pico is not None:
            self._spent_pico += pico
        elif not failed:
            self._unpriced_calls += 1


# ----------------------------------------------------------------------------- reservations
_abandoned = pending
"""Work left by collected objects (:mod:`statek._deferred`): a reservation collected while still held
is settled at its reservation by the next budget call (a finalizer must not take :data:`_LOCK`: the
collector may run it in a thread that holds it)."""
_drain_abandoned = drain


class Reservation:
    """What one call in flight holds against every budget of its job's lineage.

    Exactly one of :meth:`settle` / :meth:`settle_failure` / :meth:`settle_abandoned` /
    :meth:`release` must follow; a second one does nothing. A reservation collected while still held
    is settled at its reservation (spent, as far as the budget knows). The numbers are ``pico``
    USD, ``tokens`` and ``input_tokens``; :attr:`estimate` gives them back as a
    :class:`CallEstimate`. ``output_cap``: with a ``cap_output`` budget, the output cap the request
    must be sent with (what the budget let it reserve), else ``None``. ``remote``: the shared
    store's accounts, when a shared budget lives in one.
    """

    __slots__ = (
        "__weakref__",
        "claim",
        "input_tokens",
        "ledgers",
        "live",
        "model",
        "output_cap",
        "output_tokens",
        "pico",
        "provider",
        "remote",
        "tokens",
    )

    def __init__(
        self,
        ledgers: tuple[BudgetLedger, ...],
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        pico: int | None,
    ) -> None:
        self.ledgers = ledgers
        self.provider = provider
        self.model = model
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.tokens = input_tokens + output_tokens
        self.pico = pico
        self.output_cap: int | None = None
        self.remote: tuple[RemoteStore, tuple[Account, ...]] | None = None
        self.claim: Claim | None = None
        self.live = False
        """Held and not yet settled (a refused reservation never was)."""

    def __del__(self) -> None:
        if self.live:
            defer(self.settle_abandoned)  # resurrected until settled (PEP 442: __del__ runs only once)

    @property
    def estimate(self) -> CallEstimate:
        """What was reserved."""
        return CallEstimate(
            self.provider, self.model, self.input_tokens, self.output_tokens, self.tokens, self.pico
        )

    def settle(
        self,
        cost: Decimal | None,
        input_tokens: int,
        output_tokens: int,
        bytes_sent: int,
        bytes_received: int,
    ) -> None:
        """The call succeeded: replace the estimate with what it really used (``cost`` ``None``:
        unpriced)."""
        tokens, wire = input_tokens + output_tokens, bytes_sent + bytes_received
        # Truncated to the pico-dollar (exact for every price with up to six decimals per million
        # tokens; a finer one loses less than 10**-12 USD): this runs after every budgeted call.
        pico = None if cost is None else int(cost.scaleb(PICO))
        self._settle(pico, tokens, wire, False)

    def settle_failure(self, bytes_sent: int = 0, bytes_received: int = 0) -> None:
        """The call failed for good: it counts as a call with its bytes, no tokens and no cost."""
        self._settle(None, 0, bytes_sent + bytes_received, True)

    def settle_abandoned(self, bytes_sent: int = 0, bytes_received: int = 0) -> None:
        """The call's usage is unknown (an answer without usage, a stream dropped unread, a provider
        that returned nothing): it counts at its reservation, spent as far as the budget knows."""
        self._settle(self.pico, self.tokens, bytes_sent + bytes_received, False)

    def release(self) -> None:
        """The call was never sent: drop the reservation, count nothing."""
        self.live = False
        with _LOCK:
            ledgers, self.ledgers = self.ledgers, ()
            for ledger in ledgers:
                ledger._unhold(self)
        remote, self.remote = self.remote, None
        if remote is not None and self.claim is not None:
            remote[0].release(remote[1], self.claim)

    def _settle(self, pico: int | None, tokens: int, wire: int, failed: bool) -> None:
        self.live = False
        with _LOCK:
            ledgers, self.ledgers = self.ledgers, ()
            for ledger in ledgers:
                ledger._settle(self, pico, tokens, wire, failed)
        remote, self.remote = self.remote, None
        if remote is not None and self.claim is not None:
            remote[0].settle(remote[1], self.claim, pico, tokens, wire, failed)
        if _abandoned:
            _drain_abandoned()


def ledgers_of(job: Job | None) -> tuple[BudgetLedger, ...]:
    """The budgets a call made in ``job`` counts against: its own and every ancestor's, innermost first."""
    if job is None:
        return ()
    return tuple(each.budget for each in job.lineage if each.budget is not None)


def reserve(ledgers: Iterable[BudgetLedger], estimate: CallEstimate) -> Reservation:
    """Hold ``estimate`` against every ledger (a job's :attr:`~statek.executors.job.Job.budgets`),
    all or none: raises :class:`~statek.exceptions.BudgetExceededError` when any of them would pass
    a limit, holding nothing then. Ledgers of shared budgets are held as plain ledgers here: use
    :func:`reserve_call` / :func:`reserve_request` for a job's calls."""
    held = Reservation(
        tuple(ledgers),
        estimate.provider,
        estimate.model,
        estimate.input_tokens,
        estimate.output_tokens,
        estimate.pico_usd,
    )
    if _abandoned:
        _drain_abandoned()
    with _LOCK:
        for ledger in held.ledgers:
            ledger._check(held)
        for ledger in held.ledgers:
            ledger._hold(held)
    held.live = True
    return held


def reserve_request(
    job: Job | None,
    provider: str,
    model: str,
    body: bytes | str,
    *,
    pricing_provider: str | None = None,
    max_output_tokens: int | None = None,
    cached_tokens: int = 0,
    cache_write: bool = False,
) -> Reservation | None:
    """For a call metered from its raw JSON request body (an httpx transport under an official SDK):
    when the job or an ancestor has a budget, estimate the body (:func:`estimate_request_body`) and
    reserve it; else ``None``, at no cost. Raises :class:`~statek.exceptions.BudgetExceededError`:
    the transport must then send nothing. With a ``cap_output`` budget, the transport must send the
    reservation's :attr:`~Reservation.output_cap` (:func:`statek.executors.output_cap.cap_body`).
    Settle the reservation when the answer is read (:meth:`Reservation.settle`) or the call fails
    (:meth:`Reservation.settle_failure`)."""
    ledgers = job.budgets if job is not None else ()
    if not ledgers or job is None:
        return None
    worst_case, cap_output = _modes(ledgers)
    pricing = pricing_provider or provider
    try:
        estimate = estimate_request_body(
            provider,
            model,
            body,
            pricing_provider=pricing,
            max_output_tokens=max_output_tokens,
            cached_tokens=cached_tokens,
            cache_write=cache_write,
            worst_case=worst_case,
        )
    except InvalidOutputCap as bad:
        _refuse_cap(job, ledgers[0], provider, model, bad)
    return _reserve(
        job,
        ledgers,
        provider,
        model,
        estimate.input_tokens,
        estimate.output_tokens,
        estimate.pico_usd,
        pricing if cap_output else None,
    )


def reserve_call(job: Job | None, api: LLM_API, params: PreparedRequest) -> Reservation | None:
    """For ``LLM_API`` calls: estimate and reserve when the job or an ancestor has a budget, else
    ``None`` (and no estimate is made). Raises :class:`~statek.exceptions.BudgetExceededError`. With
    a ``cap_output`` budget the request must be sent with the reservation's
    :attr:`~Reservation.output_cap` as its ``max_tokens``."""
    ledgers = job.budgets if job is not None else ()
    if not ledgers or job is None:
        return None
    if len(ledgers) == 1:
        only = ledgers[0]
        worst_case, cap_output, shared = only.worst_case, only.cap_output, only.shared
    else:
        worst_case, cap_output = _modes(ledgers)
        shared = any(ledger.shared for ledger in ledgers)
    try:
        prompt, output, pico = call_numbers(api, params, 0, worst_case)
    except InvalidOutputCap as bad:
        _refuse_cap(job, ledgers[0], api.provider_key, params.model, bad)
    if cap_output or shared or _abandoned:
        pricing = (api.pricing_provider or api.provider_key) if cap_output else None
        return _reserve(job, ledgers, api.provider_key, params.model, prompt, output, pico, pricing)
    held = Reservation(ledgers, api.provider_key, params.model, prompt, output, pico)
    with _LOCK:  # reserve(), inlined: this runs before every budgeted call
        if len(ledgers) == 1:
            ledgers[0]._check(held, True)
        else:
            for ledger in ledgers:
                ledger._check(held)
            for ledger in ledgers:
                ledger._hold(held)
    held.live = True
    return held


def _modes(ledgers: tuple[BudgetLedger, ...]) -> tuple[bool, bool]:
    """Worst case when any budget of the call wants it; capped when any budget caps."""
    return any(ledger.worst_case for ledger in ledgers), any(ledger.cap_output for ledger in ledgers)


def _refusal(job_id: str, reason: str, provider: str, model: str, detail: str) -> BudgetExceededError:
    """A refusal by a rule rather than by an amount (a bad cap, a missing key attribute, a store that
    is down): nothing was spent or reserved for it."""
    return BudgetExceededError(
        job_id=job_id,
        reason=reason,
        limit=0,
        spent=0,
        reserved=0,
        estimate=None,
        provider=provider,
        model=model,
        detail=detail,
    )


def _refuse_cap(job: Job, ledger: BudgetLedger, provider: str, model: str, bad: InvalidOutputCap) -> NoReturn:
    ledger.refusals += 1
    raise _refusal(
        job.job_id, "output_cap", provider, model, f"{bad}; a budget cannot bound such a call"
    ) from None


def _reserve(
    job: Job,
    ledgers: tuple[BudgetLedger, ...],
    provider: str,
    model: str,
    prompt: int,
    output: int,
    pico: int | None,
    cap_pricing: str | None,
) -> Reservation:
    """The general reservation: shared accounts, an output cap set by the room left, or both."""
    if _abandoned:
        _drain_abandoned()
    local: list[BudgetLedger] = []
    accounts: list[Account] = []
    store: RemoteStore | None = None
    for ledger in ledgers:
        if not ledger.shared:
            local.append(ledger)
            continue
        budget = ledger.budget
        try:
            name = account_name(budget.key or DEFAULT_KEY, job.job_id, job.attributes)
        except MissingKeyAttribute as missing:
            ledger.refusals += 1
            raise _refusal(
                job.job_id,
                "budget_key",
                provider,
                model,
                f"its budget key {budget.key!r} names attribute {missing.args[0]!r}, which it lacks",
            ) from None
        window = window_of(budget.period)
        store = shared_store()
        if store is None:
            account = _memory_account(name, window, budget)
            ledger._account = account
            local.append(account)
        else:
            ledger._account = (store, name, window)
            accounts.append(_account_of(name, window, budget))
    held = Reservation(tuple(local), provider, model, prompt, output, pico)
    rate = fixed = None
    if cap_pricing is not None and pico is not None:
        rate = output_price(cap_pricing, model)
        if rate:
            fixed = max(pico - output * rate, 0)
    with _LOCK:
        if rate and fixed is not None:
            _fit_output(held, local, fixed, rate)
        for ledger in local:
            ledger._check(held)
        for ledger in local:
            ledger._hold(held)
    held.live = True
    if accounts and store is not None:
        _reserve_remote(job, held, store, tuple(accounts), fixed, rate)
    if cap_pricing is not None:
        held.output_cap = held.output_tokens
    return held


def _fit_output(held: Reservation, ledgers: list[BudgetLedger], fixed: int, rate: int) -> None:
    """Lower ``held``'s output to what every ledger has room for (call with :data:`_LOCK` held).
    Left as it is when not even one output token fits: the check then refuses the call."""
    room: int | None = None
    for ledger in ledgers:
        limit = ledger._limit_pico
        if limit is not None:
            left = (limit - ledger._spent_pico - ledger._reserved_pico - fixed) // rate
            room = left if room is None else min(room, left)
        if ledger.budget.tokens is not None:
            left = ledger.budget.tokens - ledger._spent_tokens - ledger._reserved_tokens - held.input_tokens
            room = left if room is None else min(room, left)
    if room is not None and 1 <= room < held.output_tokens:
        _set_output(held, room, fixed, rate)


def _set_output(held: Reservation, output: int, fixed: int, rate: int) -> None:
    held.output_tokens = output
    held.tokens = held.input_tokens + output
    held.pico = fixed + output * rate


def _reserve_remote(
    job: Job,
    held: Reservation,
    store: RemoteStore,
    accounts: tuple[Account, ...],
    fixed: int | None,
    rate: int | None,
) -> None:
    """Hold ``held`` in the shared store too, or undo the local holds and raise."""
    claim = Claim(
        uuid.uuid4().hex,
        held.pico,
        held.input_tokens,
        held.output_tokens,
        fixed,
        rate if fixed is not None else None,
    )
    try:
        granted = store.reserve(accounts, claim)
    except StoreUnavailable as down:
        count_store_event("error", store.name)
        if store.allow_when_unavailable:
            return  # the policy: the call goes, counted only where it is local
        held.release()
        raise _refusal(
            job.job_id, "store", held.provider, held.model, f"{down}; refusing the call (on_error=refuse)"
        ) from None
    except BaseException:
        held.release()
        raise
    if not isinstance(granted, Grant):
        held.release()
        refused = granted
        money = refused.reason in ("usd", "unpriced")
        raise BudgetExceededError(
            job_id=refused.account.label,
            reason=refused.reason,
            limit=from_pico(refused.limit) if money else refused.limit,
            spent=from_pico(refused.spent) if money else refused.spent,
            reserved=from_pico(refused.reserved) if money else refused.reserved,
            estimate=(None if refused.needed is None else from_pico(refused.needed))
            if money
            else refused.needed,
            provider=held.provider,
            model=held.model,
        )
    if granted.output_tokens < held.output_tokens and fixed is not None and rate:
        with _LOCK:  # the store left less room than the local ledgers: hold only what was granted
            for ledger in held.ledgers:
                ledger._unhold(held)
            _set_output(held, granted.output_tokens, fixed, rate)
            for ledger in held.ledgers:
                ledger._hold(held)
    final = Claim(
        claim.reservation_id,
        held.pico,
        held.input_tokens,
        held.output_tokens,
        claim.fixed_pico,
        claim.rate_pico,
    )
    held.claim, held.remote = final, (store, accounts)
    store.hold(accounts, final, granted)


# ----------------------------------------------------------------------------- the shared store
_memory: dict[tuple[str, str], BudgetLedger] = {}
_store: tuple[str, RemoteStore | None] | None = None
_store_lock = threading.Lock()


def _memory_account(name: str, window: str, budget: Budget) -> BudgetLedger:
    """The in-process account of a shared budget in ``window``; earlier windows are dropped once
    a later one starts (their calls in flight still settle into the ledger they hold)."""
    key = (name, window)
    account = _memory.get(key)
    if account is None:
        with _store_lock:
            account = _memory.get(key)
            if account is None:
                for old in [k for k in _memory if k[0] == name and k[1] < window]:
                    del _memory[old]
                label = f"{name}@{window}" if window else name
                account = _memory[key] = BudgetLedger(label, _account_budget(budget))
    return account


def _account_budget(budget: Budget) -> Budget:
    """The limits an account enforces (its key and period are its name)."""
    return Budget(
        budget.usd,
        tokens=budget.tokens,
        calls=budget.calls,
        approx_tokens=budget.approx_tokens,
        unpriced=budget.unpriced,
        reserve=budget.reserve,
        cap_output=budget.cap_output,
    )


def _account_of(name: str, window: str, budget: Budget) -> Account:
    return Account(
        name,
        window,
        None if budget.usd is None else int(budget.usd.scaleb(PICO)),
        budget.tokens,
        budget.calls,
        budget.approx_tokens,
        budget.unpriced == "refuse",
    )


def shared_store() -> RemoteStore | None:
    """The store of shared budgets (:data:`~statek.settings.BUDGET_STORE_ENV`): ``None`` for this
    process's memory (unset or ``memory``), else the remote store, made once per setting. A bad
    setting raises :class:`~statek.exceptions.ConfigurationError`."""
    global _store
    (url,) = values_of((BUDGET_STORE_ENV,))
    url = url.strip()
    current = _store
    if current is not None and current[0] == url:
        return current[1]
    with _store_lock:
        if _store is None or _store[0] != url:
            _close(_store)
            _store = (url, _open_store(url))
        return _store[1]


def set_shared_store(store: RemoteStore | None) -> None:
    """Use ``store`` for shared budgets from now on, whatever the environment says (tests, and
    applications that build their own client); ``None`` goes back to the environment's. The store
    it replaces is closed (:meth:`RedisStore.close`)."""
    global _store
    with _store_lock:
        (url,) = values_of((BUDGET_STORE_ENV,))
        if _store is not None and (store is None or _store[1] is not store):
            _close(_store)
        _store = None if store is None else (url.strip(), store)


def _close(entry: tuple[str, RemoteStore | None] | None) -> None:
    """Stop a store that is replaced (its renewal thread ends; its leases expire)."""
    close = getattr(entry[1], "close", None) if entry is not None else None
    if close is not None:
        try:
            close(timeout=0)
        except Exception:  # noqa: BLE001 - a store that cannot close is left to the collector
            _log.debug("statek could not close a replaced budget store", exc_info=True)


def _open_store(url: str) -> RemoteStore | None:
    if url in ("", "memory"):
        return None
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .budget_redis import RedisStore  # lazy: redis-py is an optional extra

        return RedisStore.from_url(url)
    raise ConfigurationError(
        f"{BUDGET_STORE_ENV} must be 'memory' or a redis:// URL, not {url.split('://')[0]!r}"
    )


def account_status(name: str, window: str = "", store_url: str | None = None) -> tuple[dict[str, int], str]:
    """A shared account's counters (see :meth:`RemoteStore.status`; money in pico-USD) and where they
    were read: the store ``store_url`` names, else the configured one. The in-process store can only
    show this process's accounts (``({}, "memory")`` for one it never saw). Raises
    :class:`StoreUnavailable` when the store cannot be reached."""
    store = _open_store(store_url.strip()) if store_url is not None else shared_store()
    if store is not None:
        return store.status(name, window), store.name
    ledger = _memory.get((name, window))
    if ledger is None:
        return {}, "memory"
    status = ledger.status()
    limit = ledger._limit_pico
    return {
        "spent_pico": int(status.spent_usd.scaleb(PICO)),
        "spent_tokens": status.spent_tokens,
        "spent_calls": status.spent_calls,
        "spent_bytes": ledger._spent_bytes,
        "unpriced_calls": status.unpriced_calls,
        "reserved_pico": int(status.reserved_usd.scaleb(PICO)),
        "reserved_tokens": status.reserved_tokens,
        "reserved_calls": status.reserved_calls,
        "refusals": status.refusals,
        "lease_expiries": 0,
        "limit_pico": -1 if limit is None else limit,
        "limit_tokens": -1 if ledger.budget.tokens is None else ledger.budget.tokens,
        "limit_calls": -1 if ledger.budget.calls is None else ledger.budget.calls,
    }, "memory"


def _remote_status(budget: Budget, store: RemoteStore, name: str, window: str) -> BudgetStatus:
    try:
        counts = store.status(name, window)
    except StoreUnavailable:
        count_store_event("error", store.name)
        counts = {}
    return BudgetStatus(
        budget,
        from_pico(counts.get("spent_pico", 0)),
        counts.get("spent_tokens", 0),
        counts.get("spent_calls", 0),
        counts.get("spent_bytes", 0) // 4,
        from_pico(counts.get("reserved_pico", 0)),
        counts.get("reserved_tokens", 0),
        counts.get("reserved_calls", 0),
        counts.get("unpriced_calls", 0),
        counts.get("refusals", 0),
    )
