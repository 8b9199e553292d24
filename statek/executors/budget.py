"""Budgets: a job that would overspend is stopped before the call is sent, not found on the invoice.

::

    with Job("nightly-report", budget=Budget(usd="2.50", calls=200)):
        ...                     # a call that would pass $2.50 raises BudgetExceededError, unsent

A :class:`Budget` holds a job's limits: USD, tokens (input + output), calls, and the original
STATEK's ``STATEK_MAX_TOKEN_USAGE`` guard (``approx_tokens``: ``(bytes sent + bytes received) // 4``).
A job without ``budget=`` takes the environment's (:meth:`Budget.from_env`); ``Budget()`` has no limit.

Before a call is sent, it is estimated (:func:`~statek.executors.estimate.estimate_call`, or
:func:`~statek.executors.estimate.estimate_request_body` for a JSON body) and :func:`reserve`
checks, for the job and every ancestor with a budget, ``spent + in flight + estimate <= limit``.
A call that passes holds that estimate as a **reservation** until it finishes; :meth:`Reservation.settle` then replaces it with the call's real
usage. So concurrent calls cannot all slip under the same remaining budget: together they can
overshoot by at most the difference between some calls' real cost and their estimates. A call that
cost more than estimated is recorded as it was, and the job's next calls refuse.

The estimate is :mod:`statek.executors.estimate`'s: prompt size, output cap, cached share where
known, the price table's rate (its error is documented there and in ``docs/budgets.md``).

Unpriced models under a USD limit follow the budget's ``unpriced`` policy: ``"refuse"`` (the
default: the call is refused, reason ``"unpriced"``) or ``"allow"`` (the call goes; it counts
against the token, call and byte limits, a provider-reported cost counts against the USD limit, and
:attr:`BudgetStatus.unpriced_calls` says how many calls the USD figure leaves out). Never ``$0``.

A budget lives in one process's memory. A fleet budget is watched by Prometheus instead (the
cost burn-rate alert of the mixin under ``dashboards/``); see ``docs/budgets.md``.

Integration: the budget consumer of the metering path (:mod:`statek.telemetry.budget`) calls
:func:`reserve_call` (an ``LLM_API`` call) or :func:`reserve_request` (a request body a
client-library hook read) before the call is sent, and settles the reservation when it ends; a
refusal reaches every consumer of the call record as ``refused``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Literal, NoReturn

from ..exceptions import BudgetExceededError, ConfigurationError
from ..settings import (
    BUDGET_CALLS_ENV,
    BUDGET_TOKENS_ENV,
    BUDGET_UNPRICED_ENV,
    BUDGET_USD_ENV,
    MAX_TOKEN_USAGE_ENV,
    values_of,
)
from .estimate import PICO, CallEstimate, call_numbers, estimate_call, estimate_request_body, from_pico

if TYPE_CHECKING:
    from ..llm_api import LLM_API, PreparedRequest
    from .job import Job

__all__ = [
    "Budget",
    "BudgetLedger",
    "BudgetStatus",
    "CallEstimate",
    "Reservation",
    "UnpricedPolicy",
    "estimate_call",
    "estimate_request_body",
    "reserve",
    "reserve_call",
    "reserve_request",
]

UnpricedPolicy = Literal["refuse", "allow"]
"""What a USD budget does with a call to a model that has no price: refuse it, or let it go uncounted."""
_POLICIES: tuple[UnpricedPolicy, ...] = ("refuse", "allow")


# ----------------------------------------------------------------------------- limits
@dataclass(frozen=True, slots=True, init=False)
class Budget:
    """A job's limits; ``None`` means no limit on that measure. ``Budget()`` limits nothing.

    ``usd``: spend in US dollars (exact ``Decimal``; strings and ints accepted). ``tokens``: input
    plus output tokens. ``calls``: calls sent, failed ones included. ``approx_tokens``: the original
    STATEK guard, ``(bytes sent + bytes received) // 4``. ``unpriced``: the policy for calls to
    models with no price under a USD limit (see the module docstring). Bad values raise
    :class:`~statek.exceptions.ConfigurationError`.
    """

    usd: Decimal | None = None
    tokens: int | None = None
    calls: int | None = None
    approx_tokens: int | None = None
    unpriced: UnpricedPolicy = "refuse"

    def __init__(
        self,
        usd: Decimal | str | int | None = None,
        *,
        tokens: int | None = None,
        calls: int | None = None,
        approx_tokens: int | None = None,
        unpriced: UnpricedPolicy = "refuse",
    ) -> None:
        object.__setattr__(self, "usd", _usd(usd, "Budget(usd=...)"))
        object.__setattr__(self, "tokens", _count(tokens, "Budget(tokens=...)"))
        object.__setattr__(self, "calls", _count(calls, "Budget(calls=...)"))
        object.__setattr__(self, "approx_tokens", _count(approx_tokens, "Budget(approx_tokens=...)"))
        object.__setattr__(self, "unpriced", _policy(unpriced, "Budget(unpriced=...)"))

    @property
    def is_limited(self) -> bool:
        """Whether any measure has a limit."""
        return not (
            self.usd is None and self.tokens is None and self.calls is None and self.approx_tokens is None
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Budget:
        """The default budget of a job: ``STATEK_BUDGET_USD``, ``STATEK_BUDGET_TOKENS``,
        ``STATEK_BUDGET_CALLS``, ``STATEK_MAX_TOKEN_USAGE`` and ``STATEK_BUDGET_UNPRICED`` (empty or
        unset: no limit / ``refuse``), from ``environ`` or else the process environment and the
        ``.env`` file (:func:`statek.settings.environment`). A bad value raises
        ``ConfigurationError`` naming the variable."""
        raw = (
            values_of(_ENV_NAMES) if environ is None else tuple(environ.get(name, "") for name in _ENV_NAMES)
        )
        cached = _from_env_cache.get(raw)
        if cached is None:
            usd, tokens, calls, approx, policy = (value.strip() for value in raw)
            cached = cls(
                _usd(usd or None, BUDGET_USD_ENV),
                tokens=_count(tokens or None, BUDGET_TOKENS_ENV),
                calls=_count(calls or None, BUDGET_CALLS_ENV),
                approx_tokens=_count(approx or None, MAX_TOKEN_USAGE_ENV),
                unpriced=_policy(policy.lower() or "refuse", BUDGET_UNPRICED_ENV),
            )
            _from_env_cache[raw] = cached
        return cached

    def __str__(self) -> str:
        parts = []
        if self.usd is not None:
            parts.append(f"${self.usd}")
        if self.tokens is not None:
            parts.append(f"{self.tokens:,} tokens")
        if self.calls is not None:
            parts.append(f"{self.calls:,} calls")
        if self.approx_tokens is not None:
            parts.append(f"{self.approx_tokens:,} approximate tokens")
        return ", ".join(parts) or "no limit"


_ENV_NAMES = (BUDGET_USD_ENV, BUDGET_TOKENS_ENV, BUDGET_CALLS_ENV, MAX_TOKEN_USAGE_ENV, BUDGET_UNPRICED_ENV)
_from_env_cache: dict[tuple[str, ...], Budget] = {}


def _usd(value: object, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{where} must be an amount in US dollars such as 2.50, not {value!r}")
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise ConfigurationError(
            f"{where} must be an amount in US dollars such as 2.50, not {value!r}"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"{where} must be a finite amount of 0 or more US dollars, not {value!r}")
    return amount


def _count(value: object, where: str) -> int | None:
    if value is None:
        return None
    text = value.strip().replace("_", "") if isinstance(value, str) else value
    number = None
    if isinstance(text, (int, str)) and not isinstance(text, bool):
        try:
            number = int(text)
        except ValueError:
            pass
    if number is None or number < 0:
        raise ConfigurationError(f"{where} must be a whole number of 0 or more, not {value!r}")
    return number


def _policy(value: object, where: str) -> UnpricedPolicy:
    if value not in _POLICIES:
        raise ConfigurationError(f"{where} must be 'refuse' or 'allow', not {value!r}")
    return value  # type: ignore[return-value]


# ----------------------------------------------------------------------------- one job's ledger
_LOCK = threading.Lock()
"""The one lock of every :class:`BudgetLedger` (see there)."""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A job's budget at one moment: the limits, what was spent, what is held by calls in flight.

    ``spent_usd`` sums the costs of the calls that had one; ``unpriced_calls`` counts the calls it
    leaves out (only possible under ``unpriced="allow"``). ``remaining_*`` is ``limit - spent -
    in flight`` (``None`` without a limit; below zero when a call cost more than its estimate).
    """

    budget: Budget
    spent_usd: Decimal
    spent_tokens: int
    spent_calls: int
    spent_approx_tokens: int
    reserved_usd: Decimal
    reserved_tokens: int
    reserved_calls: int
    unpriced_calls: int
    refusals: int

    @property
    def remaining_usd(self) -> Decimal | None:
        """USD left to reserve, or ``None`` without a USD limit."""
        limit = self.budget.usd
        return None if limit is None else limit - self.spent_usd - self.reserved_usd

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left to reserve, or ``None`` without a token limit."""
        limit = self.budget.tokens
        return None if limit is None else limit - self.spent_tokens - self.reserved_tokens

    @property
    def remaining_calls(self) -> int | None:
        """Calls left to reserve, or ``None`` without a call limit."""
        limit = self.budget.calls
        return None if limit is None else limit - self.spent_calls - self.reserved_calls

    @property
    def remaining_approx_tokens(self) -> int | None:
        """``STATEK_MAX_TOKEN_USAGE`` left (settled calls only), or ``None`` without that limit."""
        limit = self.budget.approx_tokens
        return None if limit is None else limit - self.spent_approx_tokens

    def __str__(self) -> str:
        parts = []
        budget = self.budget
        if budget.usd is not None:
            parts.append(f"${_money(self.spent_usd)} of ${_money(budget.usd)}")
        if budget.tokens is not None:
            parts.append(f"{self.spent_tokens:,} of {budget.tokens:,} tokens")
        if budget.calls is not None:
            parts.append(f"{self.spent_calls:,} of {budget.calls:,} calls")
        if budget.approx_tokens is not None:
            parts.append(f"{self.spent_approx_tokens:,} of {budget.approx_tokens:,} approximate tokens")
        text = "spent " + ", ".join(parts) if parts else "no limit"
        if self.unpriced_calls:
            text += f" (+{self.unpriced_calls:,} unpriced calls, not in the USD figure)"
        if self.refusals:
            text += f"; calls refused: {self.refusals:,}"
        return text


def _money(amount: Decimal) -> str:
    """``amount`` without trailing zeros and never in exponent notation."""
    return f"{amount.normalize():f}"


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
        "job_id",
        "refusals",
    )

    def __init__(self, job_id: str, budget: Budget) -> None:
        self.job_id = job_id
        self.budget = budget
        # A limit finer than a pico-dollar is rounded down: never allow more than was set.
        self._limit_pico = None if budget.usd is None else int(budget.usd.scaleb(PICO))
        self._spent_pico = self._spent_tokens = self._spent_calls = self._spent_bytes = 0
        self._reserved_pico = self._reserved_tokens = self._reserved_calls = self._reserved_approx = 0
        self._unpriced_calls = self.refusals = 0

    def __repr__(self) -> str:
        return f"BudgetLedger({self.job_id!r}, {self.status()})"

    def status(self) -> BudgetStatus:
        """A consistent snapshot of limits, spend and reservations."""
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
class Reservation:
    """The estimate of one call in flight, held against every budget of its job's lineage.

    Exactly one of :meth:`settle` / :meth:`settle_failure` must follow; a second one does nothing.
    The estimate is kept as plain numbers (``pico`` USD, ``tokens``, ``input_tokens``), read by
    every ledger on the call's path; :attr:`estimate` gives it back as a :class:`CallEstimate`.
    """

    __slots__ = ("input_tokens", "ledgers", "model", "output_tokens", "pico", "provider", "tokens")

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
        with _LOCK:
            ledgers, self.ledgers = self.ledgers, ()
            for ledger in ledgers:
                ledger._settle(self, pico, tokens, wire, False)

    def settle_failure(self, bytes_sent: int = 0, bytes_received: int = 0) -> None:
        """The call failed for good: it counts as a call with its bytes, no tokens and no cost."""
        with _LOCK:
            ledgers, self.ledgers = self.ledgers, ()
            for ledger in ledgers:
                ledger._settle(self, None, 0, bytes_sent + bytes_received, True)


def ledgers_of(job: Job | None) -> tuple[BudgetLedger, ...]:
    """The budgets a call made in ``job`` counts against: its own and every ancestor's, innermost first."""
    if job is None:
        return ()
    return tuple(each.budget for each in job.lineage if each.budget is not None)


def reserve(ledgers: Iterable[BudgetLedger], estimate: CallEstimate) -> Reservation:
    """Hold ``estimate`` against every ledger (a job's :attr:`~statek.executors.job.Job.budgets`),
    all or none: raises :class:`~statek.exceptions.BudgetExceededError` when any of them would pass
    a limit, holding nothing then."""
    held = Reservation(
        tuple(ledgers),
        estimate.provider,
        estimate.model,
        estimate.input_tokens,
        estimate.output_tokens,
        estimate.pico_usd,
    )
    with _LOCK:
        for ledger in held.ledgers:
            ledger._check(held)
        for ledger in held.ledgers:
            ledger._hold(held)
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
    the transport must then send nothing. Settle the reservation when the answer is read
    (:meth:`Reservation.settle`) or the call fails (:meth:`Reservation.settle_failure`)."""
    ledgers = job.budgets if job is not None else ()
    if not ledgers:
        return None
    estimate = estimate_request_body(
        provider,
        model,
        body,
        pricing_provider=pricing_provider,
        max_output_tokens=max_output_tokens,
        cached_tokens=cached_tokens,
        cache_write=cache_write,
    )
    return reserve(ledgers, estimate)


def reserve_call(job: Job | None, api: LLM_API, params: PreparedRequest) -> Reservation | None:
    """For ``LLM_API`` calls: estimate and reserve when the job or an ancestor has a budget, else
    ``None`` (and no estimate is made). Raises :class:`~statek.exceptions.BudgetExceededError`."""
    ledgers = job.budgets if job is not None else ()
    if not ledgers:
        return None
    prompt, output, pico = call_numbers(api, params)
    held = Reservation(ledgers, api.provider_key, params.model, prompt, output, pico)
    with _LOCK:  # reserve(), inlined: this runs before every budgeted call
        if len(ledgers) == 1:
            ledgers[0]._check(held, True)
        else:
            for ledger in ledgers:
                ledger._check(held)
            for ledger in ledgers:
                ledger._hold(held)
    return held
